// A slowloris flood against `wshub serve` run as its own process with a
// small descriptor limit: thousands of slow sockets from 40 loopback
// addresses, reconnecting when dropped. While it runs, /healthz answers, a
// new client upgrades and an established client keeps receiving
// broadcasts, each within a stated bound. The flood is bounded in sockets,
// connection attempts and time, and is torn down at the end.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { dial } from '../../../src/client/dial.ts';
import { MessageQueue } from '../../../src/client/messages.ts';
import { cliCommand } from '../../helpers/cli.ts';

/** Descriptors the server process may hold: far fewer than the flood's sockets. */
const FD_LIMIT = 2048;
/** Slow sockets held open at once. */
const FLOOD = 3_000;
/** Attacker addresses 127.0.0.2 … 127.0.0.41: more than the total cap / the per-address cap. */
const ADDRESSES = 40;
/** Bound on connection attempts over the whole test, reconnects included. */
const MAX_ATTEMPTS = 12_000;

interface Serve {
  child: ChildProcess;
  port: number;
  stderr(): string;
}

async function startServe(): Promise<Serve> {
  const child = spawn(
    'bash',
    [
      '-c',
      `ulimit -n ${FD_LIMIT} && exec "$@"`,
      'bash',
      process.execPath,
      ...cliCommand(),
      'serve',
      '--port',
      '0',
      '--allow-unauthenticated',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wshub serve did not listen: ${stderr}`)), 20_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`wshub serve exited with ${code}: ${stderr}`));
    });
  });
  return { child, port, stderr: () => stderr };
}

/** Slow sockets that trickle their head and reconnect (after a pause) when the server drops them. */
class Flood {
  readonly live = new Set<Socket>();
  attempts = 0;
  closedByServer = 0;
  private stopped = false;
  private readonly ticker: NodeJS.Timeout;

  constructor(private readonly port: number) {
    this.ticker = setInterval(() => {
      for (const socket of this.live) if (socket.writable) socket.write('a');
    }, 1_000);
  }

  async open(count: number): Promise<void> {
    for (let i = 0; i < count; i += 250) {
      await Promise.all(
        Array.from({ length: Math.min(250, count - i) }, (_, j) => this.one((i + j) % ADDRESSES)),
      );
    }
  }

  private one(index: number): Promise<void> {
    if (this.stopped || this.attempts >= MAX_ATTEMPTS) return Promise.resolve();
    this.attempts++;
    return new Promise((resolve) => {
      const socket = connect({ port: this.port, host: '127.0.0.1', localAddress: `127.0.0.${2 + index}` });
      this.live.add(socket);
      socket.on('error', () => {});
      socket.on('connect', () => {
        socket.write('GET /ws?room=a HTTP/1.1\r\nHost: x\r\nX-Slow: ');
        resolve();
      });
      socket.on('close', () => {
        resolve();
        this.live.delete(socket);
        if (this.stopped) return;
        this.closedByServer++;
        setTimeout(() => void this.one(index), 500).unref();
      });
    });
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.ticker);
    for (const socket of this.live) socket.destroy();
  }
}

/** Resolves with `promise`, or rejects once `ms` passed. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

test('under a slowloris flood /healthz, new clients and established clients are still served', async () => {
  const serve = await startServe();
  const url = `ws://127.0.0.1:${serve.port}/ws?room=a`;
  const received = new MessageQueue();
  const sender = await dial(url, { timeoutMs: 3_000 });
  const listener = await dial(url, { timeoutMs: 3_000, handlers: received.handlers });
  const rssOf = () =>
    /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${serve.child.pid}/status`, 'utf8'))?.[1] ?? '?';
  const rssBefore = rssOf();
  const flood = new Flood(serve.port);
  const newcomers: Array<Awaited<ReturnType<typeof dial>>> = [];
  try {
    const started = performance.now();
    await within(flood.open(FLOOD), 15_000, 'opening the flood');
    const openedIn = performance.now() - started;
    // Far more slow sockets than the server has descriptors for, held while it is checked.
    assert.ok(flood.attempts >= FLOOD, `${flood.attempts} attempts`);

    for (let round = 0; round < 3; round++) {
      const t0 = performance.now();
      const health = await within(fetch(`http://127.0.0.1:${serve.port}/healthz`), 2_000, '/healthz');
      assert.equal(health.status, 200);
      assert.equal(((await health.json()) as { status: string }).status, 'healthy');
      const healthMs = performance.now() - t0;

      const t1 = performance.now();
      newcomers.push(await within(dial(url, { timeoutMs: 3_000 }), 3_000, 'a new client upgrade'));
      const upgradeMs = performance.now() - t1;

      const t2 = performance.now();
      await sender.sendText(`round ${round}`);
      const message = await within(received.next(), 2_000, 'a broadcast to an established client');
      assert.equal(message.text, `round ${round}`);
      const broadcastMs = performance.now() - t2;
      const descriptors = readdirSync(`/proc/${serve.child.pid}/fd`).length;
      const rss = rssOf();
      assert.ok(descriptors < FD_LIMIT - 64, `the server holds ${descriptors} descriptors`);
      console.log(
        `round ${round}: healthz ${healthMs.toFixed(0)} ms, upgrade ${upgradeMs.toFixed(0)} ms, ` +
          `broadcast ${broadcastMs.toFixed(0)} ms; server descriptors ${descriptors}, RSS ${rss} kB; ` +
          `flood ${flood.live.size} live, ${flood.attempts} attempts, ` +
          `${flood.closedByServer} dropped by the server`,
      );
      await sleep(300);
    }
    console.log(`flood of ${FLOOD} opened in ${openedIn.toFixed(0)} ms; server RSS before: ${rssBefore} kB`);
    assert.ok(flood.closedByServer > 0, 'the server dropped slow sockets to make room');
    assert.match(serve.stderr(), /"event":"handshake_limit"/, 'the limit was logged');
  } finally {
    flood.stop();
    for (const conn of newcomers) conn.terminate();
    sender.terminate();
    listener.terminate();
    if (serve.child.exitCode === null) serve.child.kill('SIGTERM');
    const exit = once(serve.child, 'exit');
    const timer = setTimeout(() => serve.child.kill('SIGKILL'), 15_000);
    await exit;
    clearTimeout(timer);
  }
  const lines = serve
    .stderr()
    .split('\n')
    .filter((line) => line.includes('"handshake_limit"'));
  // Rate-limited: a handful of lines for thousands of refusals and evictions.
  assert.ok(lines.length >= 1 && lines.length <= 3, `${lines.length} handshake_limit lines`);
});
