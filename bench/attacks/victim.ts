/**
 * The victim: a separate process of legitimate clients that measures what
 * an attack costs everybody else, from 127.0.0.1 while attackers use other
 * loopback addresses. Three probes run side by side:
 *
 * - healthz: GET /healthz on a fresh connection every 250 ms;
 * - upgrade: a new WebSocket upgrade with a fresh token every 500 ms (into a
 *   password-protected room with the right password when asked), closed
 *   once open;
 * - broadcast: two clients joined before the attack; one sends a stamped
 *   text message every 250 ms, the other times its arrival.
 *
 * Each probe gives up after PROBE_TIMEOUT_MS. On `stop` (stdin) the victim
 * starts no more probes, gives those under way one more second, prints
 * `samples <json>` and exits; probes still waiting then are reported as
 * failures with the time they had waited.
 *
 * Run by bench/attacks/run.ts: node --import tsx bench/attacks/victim.ts '<json options>'
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { HOST, mintToken } from './common.ts';

const PROBE_TIMEOUT_MS = 8000;
const HEALTHZ_EVERY_MS = 250;
const UPGRADE_EVERY_MS = 500;
const BROADCAST_EVERY_MS = 250;
const RECONNECT_AFTER_MS = 1000;
/** After `stop`, how long probes already under way may still finish. */
const STOP_GRACE_MS = 1000;

export interface VictimOptions {
  port: number;
  secret: string;
  /** Room of the upgrade probe, and the password to send with it. */
  upgradeRoom: string;
  password?: string;
}

export type ProbeKind = 'healthz' | 'upgrade' | 'broadcast';

/** One probe: when it started (epoch ms), how long it took, and how it ended. */
export interface Sample {
  k: ProbeKind;
  t: number;
  ms: number;
  ok: boolean;
  err?: string;
}

const options = JSON.parse(process.argv[2] ?? '{}') as VictimOptions;
const samples: Sample[] = [];
const pending = new Set<{ k: ProbeKind; t: number; started: number }>();
let stopping = false;

function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Runs one probe; `body` calls `done` once (later calls are ignored). */
function probe(k: ProbeKind, body: (done: (ok: boolean, err?: string) => void) => void): void {
  const entry = { k, t: Date.now(), started: performance.now() };
  pending.add(entry);
  let finished = false;
  const done = (ok: boolean, err?: string): void => {
    if (finished || stopping) return;
    finished = true;
    clearTimeout(timer);
    pending.delete(entry);
    samples.push({ k, t: entry.t, ms: performance.now() - entry.started, ok, ...(err ? { err } : {}) });
  };
  const timer = setTimeout(() => done(false, 'timeout'), PROBE_TIMEOUT_MS);
  try {
    body(done);
  } catch (error) {
    done(false, error instanceof Error ? error.message : String(error));
  }
}

function healthz(): void {
  probe('healthz', (done) => {
    const request = http.get(
      { host: HOST, port: options.port, path: '/healthz', agent: false, timeout: PROBE_TIMEOUT_MS },
      (response) => {
        response.resume();
        response.on('end', () => done(response.statusCode === 200, `HTTP ${response.statusCode}`));
        response.on('error', (error: NodeJS.ErrnoException) => done(false, error.code ?? error.message));
      },
    );
    request.on('error', (error: NodeJS.ErrnoException) => done(false, error.code ?? error.message));
    request.on('timeout', () => request.destroy(new Error('timeout')));
  });
}

function socketUrl(room: string): string {
  return `ws://${HOST}:${options.port}/ws?room=${encodeURIComponent(room)}`;
}

function openClient(room: string, password?: string): WebSocket {
  const headers: Record<string, string> = {
    Authorization: `Bearer ${mintToken(options.secret, `victim-${randomBytes(4).toString('hex')}`)}`,
  };
  if (password !== undefined) headers['X-WebSocket-Room-Password'] = password;
  return new WebSocket(socketUrl(room), {
    headers,
    handshakeTimeout: PROBE_TIMEOUT_MS,
    perMessageDeflate: false,
  });
}

function upgrade(): void {
  probe('upgrade', (done) => {
    const ws = openClient(options.upgradeRoom, options.password);
    ws.on('open', () => {
      done(true);
      ws.terminate();
    });
    ws.on('unexpected-response', (_request, response) => {
      done(false, `HTTP ${response.statusCode}`);
      ws.terminate();
    });
    ws.on('error', (error: NodeJS.ErrnoException) => done(false, error.code ?? error.message));
    ws.on('close', () => done(false, 'closed'));
  });
}

// ---- broadcast pair --------------------------------------------------------

const sent = new Map<number, { t: number; at: number }>();
let sender: WebSocket | undefined;
let receiver: WebSocket | undefined;
let seq = 0;
let reconnecting = false;

function connectPair(): Promise<void> {
  const room = 'victim';
  const open = (ws: WebSocket) =>
    new Promise<void>((resolve) => {
      ws.once('open', () => resolve());
      ws.once('error', () => resolve());
      ws.once('close', () => resolve());
    });
  const rx = openClient(room);
  const tx = openClient(room);
  rx.on('error', () => {});
  tx.on('error', () => {});
  rx.on('message', (data: Buffer) => {
    const match = /^victim:(\d+)$/.exec(data.toString('utf8'));
    if (match === null) return;
    const entry = sent.get(Number(match[1]));
    if (entry === undefined) return;
    sent.delete(Number(match[1]));
    if (!stopping) samples.push({ k: 'broadcast', t: entry.t, ms: now() - entry.at, ok: true });
  });
  const lost = (): void => {
    if (stopping || reconnecting) return;
    reconnecting = true;
    sender = undefined;
    receiver = undefined;
    rx.terminate();
    tx.terminate();
    setTimeout(() => {
      reconnecting = false;
      if (!stopping) void connectPair();
    }, RECONNECT_AFTER_MS);
  };
  rx.on('close', lost);
  tx.on('close', lost);
  return Promise.all([open(rx), open(tx)]).then(() => {
    if (rx.readyState === WebSocket.OPEN && tx.readyState === WebSocket.OPEN) {
      receiver = rx;
      sender = tx;
    } else lost();
  });
}

function broadcast(): void {
  // A message still unanswered after the probe timeout is counted lost.
  const cutoff = now() - PROBE_TIMEOUT_MS;
  for (const [n, entry] of sent) {
    if (entry.at >= cutoff) continue;
    sent.delete(n);
    samples.push({ k: 'broadcast', t: entry.t, ms: PROBE_TIMEOUT_MS, ok: false, err: 'lost' });
  }
  if (sender === undefined || receiver === undefined) {
    samples.push({ k: 'broadcast', t: Date.now(), ms: 0, ok: false, err: 'not connected' });
    return;
  }
  const n = seq++;
  sent.set(n, { t: Date.now(), at: now() });
  sender.send(`victim:${n}`);
}

// ---- main --------------------------------------------------------------------

await Promise.race([connectPair(), new Promise((resolve) => setTimeout(resolve, PROBE_TIMEOUT_MS))]);
const timers = [
  setInterval(healthz, HEALTHZ_EVERY_MS),
  setInterval(upgrade, UPGRADE_EVERY_MS),
  setInterval(broadcast, BROADCAST_EVERY_MS),
];
process.stdout.write('ready\n');

const commands = createInterface({ input: process.stdin });
// Without its runner there is nobody to report to.
commands.on('close', () => {
  if (!stopping) process.exit(1);
});
commands.on('line', (line) => {
  if (line.trim() !== 'stop') return;
  for (const timer of timers) clearInterval(timer);
  // Probes sent just before the stop deserve their usual short answer time.
  const waitUntil = performance.now() + STOP_GRACE_MS;
  const finish = (): void => {
    if ((pending.size > 0 || sent.size > 0) && performance.now() < waitUntil) {
      setTimeout(finish, 50);
      return;
    }
    const at = performance.now();
    for (const entry of pending) {
      samples.push({ k: entry.k, t: entry.t, ms: at - entry.started, ok: false, err: 'unanswered at end' });
    }
    const end = now();
    for (const entry of sent.values()) {
      samples.push({ k: 'broadcast', t: entry.t, ms: end - entry.at, ok: false, err: 'unanswered at end' });
    }
    stopping = true;
    process.stdout.write(`samples ${JSON.stringify(samples)}\n`, () => process.exit(0));
  };
  finish();
});
