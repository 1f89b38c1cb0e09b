/**
 * Benchmark peers (bench/peers/*.ts), started the way the orchestrator
 * starts them: room fan-out with the sender included and the opcode kept,
 * room isolation, the `stats` line, SIGTERM, the uWS native-addon check and
 * the JWT handshake variant; the floor peers (bare-net, tcp-handle) answer
 * a close frame and close.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';

const START_TIMEOUT_MS = 15_000;
const MESSAGE_TIMEOUT_MS = 3_000;

interface Peer {
  proc: ChildProcessWithoutNullStreams;
  port: number;
  stderr: () => string;
  stats(): Promise<Record<string, unknown>>;
  /** Sends SIGTERM and resolves with the exit code and signal. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcessWithoutNullStreams>();

/** Spawns a peer and resolves once it printed its `listening on` line. */
async function startPeer(
  name: string,
  extra: string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Peer> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', `bench/peers/${name}.ts`, '--port', '0', ...extra],
    {
      env,
      stdio: 'pipe',
    },
  );
  running.add(proc);
  const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  void exited.then(() => running.delete(proc));
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk: string) => (stderr += chunk));
  const lines = createInterface({ input: proc.stdout });
  const pending: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  lines.on('line', (line) => {
    const waiter = waiters.shift();
    if (waiter !== undefined) waiter(line);
    else pending.push(line);
  });
  const nextLine = (timeoutMs: number): Promise<string> => {
    const line = pending.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${name}: no stdout line; stderr: ${stderr}`)),
        timeoutMs,
      );
      waiters.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
      void exited.then(([code]) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited with ${code}; stderr: ${stderr}`));
      });
    });
  };
  const first = await nextLine(START_TIMEOUT_MS);
  const match = /^listening on http:\/\/127\.0\.0\.1:(\d+)$/.exec(first);
  assert.ok(match, `unexpected first line from ${name}: ${first}`);
  return {
    proc,
    port: Number(match[1]),
    stderr: () => stderr,
    async stats() {
      proc.stdin.write('stats\n');
      const line = await nextLine(MESSAGE_TIMEOUT_MS);
      assert.match(line, /^stats \{/);
      return JSON.parse(line.slice('stats '.length)) as Record<string, unknown>;
    },
    async stop() {
      proc.kill('SIGTERM');
      const [code, signal] = await exited;
      return { code, signal };
    },
  };
}

/** Resolves with the exit code of a peer that is expected to stop by itself. */
async function exitCodeOf(
  name: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stderr: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', `bench/peers/${name}.ts`, '--port', '0'], {
    env,
    stdio: 'pipe',
  });
  running.add(proc);
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk: string) => (stderr += chunk));
  proc.stdout.resume();
  const timer = setTimeout(() => proc.kill('SIGKILL'), START_TIMEOUT_MS);
  const [code] = (await once(proc, 'exit')) as [number | null];
  clearTimeout(timer);
  running.delete(proc);
  return { code, stderr };
}

interface Received {
  data: Buffer;
  binary: boolean;
}

/** A ws client that queues what it receives. */
class Client {
  readonly ws: WebSocket;
  private readonly queue: Received[] = [];
  private waiter: ((m: Received) => void) | undefined;

  constructor(url: string, headers: Record<string, string> = {}) {
    this.ws = new WebSocket(url, { headers, perMessageDeflate: false });
    // Errors surface through opened(); a refused or terminated handshake must not throw later.
    this.ws.on('error', () => {});
    this.ws.on('message', (data: Buffer, binary: boolean) => {
      const waiter = this.waiter;
      this.waiter = undefined;
      if (waiter !== undefined) waiter({ data, binary });
      else this.queue.push({ data, binary });
    });
  }

  /** Resolves when open; rejects with the HTTP status of a refused handshake. */
  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => {
        res.resume();
        reject(new Error(`refused with ${res.statusCode}`));
      });
      this.ws.once('error', reject);
    });
  }

  next(timeoutMs = MESSAGE_TIMEOUT_MS): Promise<Received> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error('no message'));
      }, timeoutMs);
      this.waiter = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
    });
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    // Not events.once: a terminated handshake emits 'error' before 'close'.
    const closed = new Promise<void>((resolve) => this.ws.once('close', () => resolve()));
    this.ws.terminate();
    await closed;
  }
}

after(() => {
  for (const proc of running) proc.kill('SIGKILL');
});

const RELAY_PEERS = ['wshub', 'ws-naive', 'ws-preframed', 'uws'] as const;
/** Peers that only complete the handshake: the floors of idle memory and upgrade cost. */
const FLOOR_PEERS = ['bare-net', 'tcp-handle'] as const;

/** Sends a close frame and resolves once the peer answered with 1000 and closed TCP. */
async function closedByPeer(client: Client): Promise<void> {
  const closed = new Promise<number>((resolve) => client.ws.once('close', (code: number) => resolve(code)));
  client.ws.close(1000);
  assert.equal(await closed, 1000);
}

/** Polls `condition` every 20 ms for up to 3 s. */
async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + MESSAGE_TIMEOUT_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail('condition not reached within 3 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** What each peer's stats report for slow-consumer counters when nothing was slow. */
const IDLE_COUNTERS: Record<string, { dropped: number; closed: number }> = {
  wshub: { dropped: 0, closed: 0 },
  'ws-naive': { dropped: -1, closed: -1 },
  'ws-preframed': { dropped: -1, closed: -1 },
  uws: { dropped: -1, closed: -1 },
  socketio: { dropped: -1, closed: -1 },
  'bare-net': { dropped: -1, closed: -1 },
  'tcp-handle': { dropped: -1, closed: -1 },
};

function assertStats(stats: Record<string, unknown>, name: string, connections: number): void {
  assert.deepEqual(Object.keys(stats).sort(), [
    'closed',
    'connections',
    'cpuSystem',
    'cpuUser',
    'dropped',
    'heapUsed',
    'rss',
  ]);
  for (const key of ['rss', 'heapUsed', 'cpuUser', 'cpuSystem'] as const) {
    assert.ok(Number.isInteger(stats[key]) && (stats[key] as number) > 0, `${key}=${String(stats[key])}`);
  }
  assert.equal(stats.connections, connections);
  assert.equal(stats.dropped, IDLE_COUNTERS[name]?.dropped);
  assert.equal(stats.closed, IDLE_COUNTERS[name]?.closed);
}

describe('benchmark peers relay to their room only', { concurrency: true }, () => {
  for (const name of RELAY_PEERS) {
    test(name, async () => {
      const peer = await startPeer(name);
      const url = (room: string) => `ws://127.0.0.1:${peer.port}/ws?room=${room}`;
      const a1 = new Client(url('A'));
      const a2 = new Client(url('A'));
      const b1 = new Client(url('B'));
      try {
        await Promise.all([a1.opened(), a2.opened(), b1.opened()]);
        if (name === 'uws') assert.match(peer.stderr(), /native addon .*\.node/);

        a1.ws.send('hello text');
        a1.ws.send(Buffer.from([0, 1, 2, 255]), { binary: true });
        for (const client of [a1, a2]) {
          const text = await client.next();
          assert.equal(text.binary, false);
          assert.equal(text.data.toString(), 'hello text');
          const binary = await client.next();
          assert.equal(binary.binary, true);
          assert.deepEqual([...binary.data], [0, 1, 2, 255]);
        }
        // B's own message must be the first thing B sees: A's traffic never reached it.
        b1.ws.send('only B');
        const first = await b1.next();
        assert.equal(first.data.toString(), 'only B');
        // Exactly one copy each: a second message arrives next, not a duplicate.
        a2.ws.send('second');
        assert.equal((await a1.next()).data.toString(), 'second');
        assert.equal((await a2.next()).data.toString(), 'second');

        assertStats(await peer.stats(), name, 3);
      } finally {
        await Promise.all([a1.close(), a2.close(), b1.close()]);
      }
      const exit = await peer.stop();
      assert.ok(exit.code === 0 || exit.signal === 'SIGTERM', `exit ${exit.code} ${exit.signal}`);
    });
  }

  test('socketio (Engine.IO v4 over ws)', async () => {
    const peer = await startPeer('socketio');
    const eio = async (room: string): Promise<Client> => {
      const client = new Client(
        `ws://127.0.0.1:${peer.port}/socket.io/?EIO=4&transport=websocket&room=${room}`,
      );
      await client.opened();
      assert.match((await client.next()).data.toString(), /^0\{"sid":/);
      client.ws.send('40');
      assert.match((await client.next()).data.toString(), /^40\{"sid":/);
      return client;
    };
    const [a1, a2, b1] = await Promise.all([eio('A'), eio('A'), eio('B')]);
    try {
      a1.ws.send('42["m","hello"]');
      for (const client of [a1, a2]) {
        const m = await client.next();
        assert.equal(m.binary, false);
        assert.equal(m.data.toString(), '42["m","hello"]');
      }
      b1.ws.send('42["m","only B"]');
      assert.equal((await b1.next()).data.toString(), '42["m","only B"]');
      assertStats(await peer.stats(), 'socketio', 3);
    } finally {
      await Promise.all([a1.close(), a2.close(), b1.close()]);
    }
    const exit = await peer.stop();
    assert.ok(exit.code === 0 || exit.signal === 'SIGTERM', `exit ${exit.code} ${exit.signal}`);
  });

  for (const name of FLOOR_PEERS) {
    test(`${name} completes the handshake, holds the socket, and answers a close frame`, async () => {
      const peer = await startPeer(name);
      const client = new Client(`ws://127.0.0.1:${peer.port}/ws?room=A`);
      try {
        await client.opened();
        client.ws.send('discarded');
        await assert.rejects(client.next(300), /no message/);
        assertStats(await peer.stats(), name, 1);
        if (name === 'bare-net') {
          const other = new Client(`ws://127.0.0.1:${peer.port}/elsewhere`);
          await assert.rejects(other.opened(), /refused with 404/);
        }
        await closedByPeer(client);
        await waitFor(async () => (await peer.stats()).connections === 0);
      } finally {
        await client.close();
      }
      const exit = await peer.stop();
      assert.ok(exit.code === 0 || exit.signal === 'SIGTERM', `exit ${exit.code} ${exit.signal}`);
    });
  }

  test('uws refuses to run on the JavaScript fallback (exit code 3)', async () => {
    const { code, stderr } = await exitCodeOf('uws', { ...process.env, UWS_USE_FALLBACK: '1' });
    assert.equal(code, 3);
    assert.match(stderr, /not in use/);
  });
});

describe('JWT handshake variant', { concurrency: true }, () => {
  const secret = 'bench-secret-0123456789abcdef-0123456789abcdef';
  let dir = '';
  let secretFile = '';
  let token = '';
  let forged = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wshub-peers-'));
    secretFile = join(dir, 'secret');
    writeFileSync(secretFile, `${secret}\n`);
    const sign = (key: string) =>
      new SignJWT({ sub: 'bench' })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(key));
    token = await sign(secret);
    forged = await sign(`${secret}-other`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const name of ['wshub', 'ws-naive', 'ws-preframed', 'uws', 'socketio', ...FLOOR_PEERS]) {
    test(name, async () => {
      const peer = await startPeer(name, ['--jwt-secret-file', secretFile]);
      const url =
        name === 'socketio'
          ? `ws://127.0.0.1:${peer.port}/socket.io/?EIO=4&transport=websocket&room=A`
          : `ws://127.0.0.1:${peer.port}/ws?room=A`;
      const anonymous = new Client(url);
      // Engine.IO answers every refused upgrade with 400, whatever allowRequest said.
      const refused = name === 'socketio' ? /refused with 400/ : /refused with (401|403)/;
      await assert.rejects(anonymous.opened(), refused);
      const wrong = new Client(url, { Authorization: `Bearer ${forged}` });
      await assert.rejects(wrong.opened(), refused);
      const client = new Client(url, { Authorization: `Bearer ${token}` });
      try {
        await client.opened();
        if (name === 'socketio') {
          assert.match((await client.next()).data.toString(), /^0\{/);
        } else if ((FLOOR_PEERS as readonly string[]).includes(name)) {
          await closedByPeer(client);
        } else {
          client.ws.send('with token');
          assert.equal((await client.next()).data.toString(), 'with token');
        }
      } finally {
        await Promise.all([anonymous.close(), wrong.close(), client.close()]);
      }
      await peer.stop();
    });
  }
});
