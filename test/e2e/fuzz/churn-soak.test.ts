// Churn and soak: tens of thousands of connections to one wshub server over
// loopback, most of them ending badly. A pool of clients loops over
// scenarios picked at random (seeded): clean close handshakes, TCP resets
// (RST) at every stage, FINs without a close frame, disconnects in the
// middle of the handshake, handshakes that stall, clients that stop
// reading and never close, slow readers of a busy room, refused
// handshakes, garbage frames. Clients that stall are left alone: the
// server must reap them itself (handshake timeout, heartbeat, send limits).
//
// At the end nothing may be left: no socket on the server or anywhere in
// the process, no connection or room in the hub, no timer, listener or file
// descriptor beyond what was there before, and heap growth after a full
// GC bounded.
//
// The run stops by itself after WSHUB_SOAK_CONNECTS connects (default
// 20,000) or WSHUB_SOAK_SECONDS seconds (default 75), whichever comes
// first. For a longer manual run:
//
//   WSHUB_SOAK_CONNECTS=300000 WSHUB_SOAK_SECONDS=900 \
//     node --import tsx --test --test-timeout=1200000 test/e2e/fuzz/churn-soak.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createWshub } from '../../../src/index.ts';
import { Opcode, encodeFrame, randomMask } from '../../../src/protocol/frame.ts';
import { assertNoLeaks, closeServer, openConnections, trackSockets } from '../../helpers/leaks.ts';

const TARGET_CONNECTS = Number(process.env.WSHUB_SOAK_CONNECTS ?? 20_000);
const MAX_SECONDS = Number(process.env.WSHUB_SOAK_SECONDS ?? 75);
/** At least this many connects, or the run proved too little (a very busy machine). */
const MIN_CONNECTS = Math.min(TARGET_CONNECTS, Number(process.env.WSHUB_SOAK_MIN_CONNECTS ?? 5_000));
const SEED = Number(process.env.WSHUB_SOAK_SEED ?? 20_261_202);
/** Clients working at once. */
const LANES = 48;
/** Source addresses: each has its own ephemeral port range, so TIME_WAIT never runs one out. */
const SOURCES = Array.from({ length: 16 }, (_, i) => `127.0.0.${i + 2}`);

const HANDSHAKE_TIMEOUT = 1_000;
const PING_PERIOD = 1_000;
const PONG_WAIT = 1_000;
const WRITE_TIMEOUT = 1_000;

/** A small seeded PRNG (mulberry32): the same seed, the same mix of scenarios. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Forces a full collection (the flag is set at run time, so no node option is needed). */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => {
    gc();
    gc();
  };
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout' || name === 'Immediate').length;
}

function listenerCounts(emitter: NodeJS.EventEmitter): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of emitter.eventNames()) out[String(name)] = emitter.listenerCount(name);
  return out;
}

// ---- the client side --------------------------------------------------------------

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

function head(room: string, key = KEY): string {
  return (
    `GET /ws?room=${room} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`
  );
}

/** A client socket with what the scenarios need to wait for. */
class Client {
  readonly socket: Socket;
  readonly closed: Promise<void>;
  /** Bytes received after the handshake's response head. */
  received: Buffer = Buffer.alloc(0);
  status = '';
  /** Whether the server closed first (FIN or RST seen before we destroyed). */
  serverClosed = false;
  private destroyedByUs = false;
  private waiter: (() => void) | null = null;

  constructor(port: number, localAddress: string) {
    this.socket = connect({ port, host: '127.0.0.1', localAddress });
    this.socket.setNoDelay(true);
    this.socket.on('error', () => {});
    this.socket.on('end', () => {
      if (!this.destroyedByUs) this.serverClosed = true;
      this.wake();
    });
    this.closed = new Promise((resolve) =>
      this.socket.once('close', () => {
        if (!this.destroyedByUs) this.serverClosed = true;
        this.wake();
        resolve();
      }),
    );
    let headDone = false;
    let pending = Buffer.alloc(0);
    this.socket.on('data', (chunk: Buffer) => {
      if (headDone) {
        this.received = this.received.length === 0 ? chunk : Buffer.concat([this.received, chunk]);
      } else {
        pending = Buffer.concat([pending, chunk]);
        const end = pending.indexOf('\r\n\r\n');
        if (end >= 0) {
          headDone = true;
          this.status = /^HTTP\/1\.1 (\d{3})/.exec(pending.toString('latin1', 0, 16))?.[1] ?? 'garbage';
          this.received = pending.subarray(end + 4);
        }
      }
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Waits until `condition` holds or the socket closes; false after `ms`. */
  async until(condition: () => boolean, ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    while (!condition()) {
      if (this.socket.destroyed) return condition();
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return true;
  }

  connected(): Promise<boolean> {
    return new Promise((resolve) => {
      if (!this.socket.connecting) return resolve(!this.socket.destroyed);
      this.socket.once('connect', () => resolve(true));
      this.socket.once('close', () => resolve(false));
    });
  }

  async handshake(room: string, ms = 5_000): Promise<boolean> {
    if (!(await this.connected())) return false;
    this.socket.write(head(room));
    return (await this.until(() => this.status !== '', ms)) && this.status === '101';
  }

  send(opcode: number, payload: Buffer | string): void {
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
    if (!this.socket.destroyed) this.socket.write(encodeFrame(opcode, bytes, { mask: randomMask() }));
  }

  /** Whether a close frame from the server has arrived (frames are not otherwise parsed). */
  sawCloseFrame(code: number): boolean {
    const b = this.received;
    for (let i = 0; i + 3 < b.length; i++) {
      if (b[i] === 0x88 && b[i + 1]! >= 2 && b[i + 1]! <= 125 && b.readUInt16BE(i + 2) === code) return true;
    }
    return false;
  }

  destroy(): void {
    this.destroyedByUs = true;
    this.socket.destroy();
  }

  reset(): void {
    this.destroyedByUs = true;
    this.socket.resetAndDestroy();
  }
}

// ---- scenarios -------------------------------------------------------------------------

interface Run {
  port: number;
  random: () => number;
  source: () => string;
  /** Clients left for the server to reap, with why. */
  parked: Array<{ client: Client; kind: string }>;
  counts: Map<string, number>;
  failures: string[];
}

type Scenario = (run: Run) => Promise<void>;

function fail(run: Run, what: string): void {
  if (run.failures.length < 20) run.failures.push(what);
}

const SCENARIOS: Array<[name: string, weight: number, scenario: Scenario]> = [
  [
    'clean close',
    30,
    async (run) => {
      const c = new Client(run.port, run.source());
      if (!(await c.handshake(`c${Math.floor(run.random() * 40)}`))) {
        fail(run, `clean: handshake ${c.status || 'no answer'}`);
        return c.destroy();
      }
      c.send(Opcode.TEXT, 'hello');
      // The room sends it back (everyone in a room gets its messages, the sender too).
      if (!(await c.until(() => c.received.includes('hello'), 5_000))) fail(run, 'clean: no echo');
      c.send(Opcode.CLOSE, Buffer.from([0x03, 0xe8]));
      if (!(await c.until(() => c.serverClosed, 5_000))) fail(run, 'clean: the server did not close');
      c.destroy();
    },
  ],
  [
    'reset after the handshake',
    15,
    async (run) => {
      const c = new Client(run.port, run.source());
      if (await c.handshake(`r${Math.floor(run.random() * 40)}`)) {
        // Sometimes in the middle of a frame.
        if (run.random() < 0.5) c.socket.write(Buffer.from([0x81, 0xfe, 0x10]));
      }
      c.reset();
    },
  ],
  [
    'FIN without a close frame',
    10,
    async (run) => {
      const c = new Client(run.port, run.source());
      if (await c.handshake('fin')) {
        c.socket.end();
        if (!(await c.until(() => c.serverClosed, 5_000))) fail(run, 'fin: the server did not close');
      }
      c.destroy();
    },
  ],
  [
    'gone in the middle of the handshake',
    15,
    async (run) => {
      const c = new Client(run.port, run.source());
      if (await c.connected()) {
        const bytes = Buffer.from(head('mid'));
        c.socket.write(bytes.subarray(0, Math.floor(run.random() * bytes.length)));
        if (run.random() < 0.5) await sleep(1);
      }
      if (run.random() < 0.5) c.reset();
      else c.destroy();
    },
  ],
  [
    'handshake that stalls',
    3,
    async (run) => {
      const c = new Client(run.port, run.source());
      if (await c.connected()) {
        const bytes = Buffer.from(head('stall'));
        c.socket.write(bytes.subarray(0, Math.floor(run.random() * (bytes.length - 4))));
      }
      run.parked.push({ client: c, kind: 'stalled handshake' });
    },
  ],
  [
    'half-open: stops reading, never closes',
    3,
    async (run) => {
      const c = new Client(run.port, run.source());
      if (await c.handshake('silent')) c.socket.pause();
      run.parked.push({ client: c, kind: 'silent client' });
    },
  ],
  [
    'slow reader of a busy room',
    6,
    async (run) => {
      const c = new Client(run.port, run.source());
      if (!(await c.handshake('busy'))) return c.destroy();
      if (run.random() < 0.3) {
        // Never reads again: the server's send limits must cut it.
        c.socket.pause();
        run.parked.push({ client: c, kind: 'reader that stopped' });
        return;
      }
      for (let i = 0; i < 5 && !c.socket.destroyed; i++) {
        c.socket.pause();
        await sleep(20 + run.random() * 80);
        c.socket.resume();
        await sleep(5);
      }
      c.destroy();
    },
  ],
  [
    'refused handshake',
    8,
    async (run) => {
      const c = new Client(run.port, run.source());
      if (await c.connected()) {
        c.socket.write(head('x', 'not-a-key'));
        await c.until(() => c.status !== '', 5_000);
        if (c.status !== '400') fail(run, `refused: status ${c.status || 'none'}`);
      }
      c.destroy();
    },
  ],
  [
    'garbage frames',
    10,
    async (run) => {
      const c = new Client(run.port, run.source());
      if (await c.handshake('g')) {
        // An unmasked frame, then noise: 1002 from the server.
        c.socket.write(Buffer.concat([Buffer.from([0x81, 0x02, 0x68, 0x69]), randomBytes(32)]));
        if (!(await c.until(() => c.sawCloseFrame(1002), 5_000))) fail(run, 'garbage: no 1002');
      }
      c.destroy();
    },
  ],
];

function picker(random: () => number): () => [string, Scenario] {
  const total = SCENARIOS.reduce((sum, [, weight]) => sum + weight, 0);
  return () => {
    let r = random() * total;
    for (const [name, weight, scenario] of SCENARIOS) {
      r -= weight;
      if (r < 0) return [name, scenario];
    }
    const [name, , scenario] = SCENARIOS[0]!;
    return [name, scenario];
  };
}

// ---- the run ------------------------------------------------------------------------------

test('churn and soak: every way a connection can end, and nothing left behind', async (t) => {
  const gc = collector();
  const ws = createWshub({
    allowUnauthenticated: true,
    messageValidation: false,
    handshakeTimeout: HANDSHAKE_TIMEOUT,
    pingPeriod: PING_PERIOD,
    pongWait: PONG_WAIT,
    writeTimeout: WRITE_TIMEOUT,
    closeTimeout: 1_000,
    sendBehavior: 'close',
    sendQueueSize: 64,
    sendQueueBytes: 256 * 1024,
    maxPendingHandshakes: 4_096,
    maxPendingHandshakesPerAddress: 1_024,
    // The churn comes from a few addresses on purpose; per-address limits have their own tests.
    maxConnsPerIp: 0,
    maxHandshakesPerIp: 0,
  });
  const server = trackSockets(ws.createServer());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  const baseline = {
    fds: openFds(),
    timers: activeTimers(),
    server: listenerCounts(server),
    process: listenerCounts(process),
  };

  const random = prng(SEED);
  let sourceIndex = 0;
  const run: Run = {
    port,
    random,
    source: () => SOURCES[sourceIndex++ % SOURCES.length]!,
    parked: [],
    counts: new Map(),
    failures: [],
  };
  const pick = picker(random);

  // A busy room for the slow readers: 2 KiB every 5 ms.
  const busy = Buffer.alloc(2_048, 0x61);
  const publisher = setInterval(() => ws.hub.broadcastRoom('busy', Opcode.TEXT, busy), 5);
  // Also when an assertion fails: nothing may keep the test process alive.
  t.after(async () => {
    clearInterval(publisher);
    for (const { client } of run.parked) client.destroy();
    await ws.shutdown({ timeout: 500 });
    await closeServer(server);
  });

  let connects = 0;
  const times = new Map<string, number>();
  let heapBaseline = 0;
  const started = performance.now();
  const deadline = started + MAX_SECONDS * 1_000;
  const lane = async (): Promise<void> => {
    while (connects < TARGET_CONNECTS && performance.now() < deadline) {
      connects++;
      if (connects === 2_000) {
        // The baseline is taken once everything has been warmed up.
        gc();
        heapBaseline = process.memoryUsage().heapUsed;
      }
      const [name, scenario] = pick();
      const began = performance.now();
      run.counts.set(name, (run.counts.get(name) ?? 0) + 1);
      // A scenario that hangs is a failure, not a hung test.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        scenario(run),
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            fail(run, `${name}: took more than 15 s`);
            resolve();
          }, 15_000);
        }),
      ]);
      clearTimeout(timer);
      if (process.env.WSHUB_SOAK_DEBUG) times.set(name, (times.get(name) ?? 0) + performance.now() - began);
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
  clearInterval(publisher);
  const seconds = (performance.now() - started) / 1_000;

  // Every client left alone must have been cut off by the server itself,
  // in time: they are all still open on this side (a client that does not
  // read does not even see the server's FIN), so the server's own count
  // says whether it reaped them.
  const reapWithin = Math.max(HANDSHAKE_TIMEOUT, PING_PERIOD + PONG_WAIT, WRITE_TIMEOUT) + 4_000;
  await sleep(reapWithin);
  const unreaped = { serverSockets: await openConnections(server), hub: ws.health().active_connections };
  for (const { client } of run.parked) client.destroy();

  const summary = {
    connects,
    seconds: Math.round(seconds),
    perSecond: Math.round(connects / seconds),
    parked: run.parked.length,
    scenarios: Object.fromEntries(run.counts),
  };
  console.log(`churn: ${JSON.stringify(summary)}`);
  if (process.env.WSHUB_SOAK_DEBUG) {
    const mean = [...times].map(([name, ms]) => [name, Math.round(ms / (run.counts.get(name) ?? 1))]);
    console.log(`churn: mean ms per scenario ${JSON.stringify(Object.fromEntries(mean))}`);
  }
  assert.deepEqual(run.failures, [], `scenarios went wrong: ${JSON.stringify(summary)}`);
  assert.deepEqual(
    unreaped,
    { serverSockets: 0, hub: 0 },
    `${run.parked.length} clients left alone: not all reaped by the server within ${reapWithin} ms`,
  );
  assert.ok(connects >= MIN_CONNECTS, `only ${connects} connects in ${MAX_SECONDS} s`);

  // Nothing left: sockets, hub state, timers, listeners, fds.
  await assertNoLeaks(server, { timeoutMs: 5_000 });
  assert.equal(await openConnections(server), 0);
  const health = ws.health();
  assert.equal(health.active_connections, 0, 'connections left in the hub');
  assert.equal(health.rooms, 0, 'rooms left in the hub');
  // Closing sockets may hold an fd or a timer for a moment longer.
  const settle = performance.now() + 3_000;
  while (performance.now() < settle && (openFds() > baseline.fds + 2 || activeTimers() > baseline.timers)) {
    await sleep(50);
  }
  assert.ok(openFds() <= baseline.fds + 2, `fds: ${baseline.fds} before, ${openFds()} after`);
  assert.ok(activeTimers() <= baseline.timers, `timers: ${baseline.timers} before, ${activeTimers()} after`);
  assert.deepEqual(listenerCounts(server), baseline.server, 'server listeners');
  assert.deepEqual(listenerCounts(process), baseline.process, 'process listeners');

  // Heap: after a full collection, back near where it was after warm-up.
  run.parked.length = 0;
  gc();
  await sleep(100);
  gc();
  const growth = process.memoryUsage().heapUsed - heapBaseline;
  console.log(`churn: heap growth after gc ${(growth / 1024 / 1024).toFixed(1)} MiB`);
  assert.ok(heapBaseline > 0, 'the run ended before the heap baseline was taken');
  // Measured noise is about ±2 MiB; a Connection kept alive by mistake costs
  // about 1 KiB, so a leak of one per connect shows well above this bound.
  assert.ok(growth < 3 * 1024 * 1024, `heap grew by ${growth} bytes over ${connects} connects`);
});
