/**
 * A worker process of the reconnection-storm generator (driven by storm.ts
 * over IPC), in one of two roles:
 *
 * - steady: `subscribers` connections and one publisher in one room, all
 *   from 127.0.0.1; the publisher sends open-loop at a fixed rate, each
 *   message stamped with its scheduled send time, and every delivery is
 *   kept as (scheduled time, latency) so that latency and loss can be cut
 *   into windows (before, during and after the storm) once the storm's end
 *   is known.
 * - storm: a share of the storm's clients (storm-client.ts), launched at
 *   their scheduled times from source addresses 127.0.0.2 … 127.0.0.(1 + N);
 *   worker 0 also holds the roll-call connection of the storm room, opened
 *   before the storm, whose one message afterwards shows how many joined
 *   clients really are in the room.
 */
import net from 'node:net';
import { FrameParser } from './frame-parser.ts';
import { Histogram } from './histogram.ts';
import {
  BINARY_STAMP_BYTES,
  MessageTemplate,
  OPCODE_BINARY,
  OPCODE_CLOSE,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
  SIO_PREFIX,
  SIO_STAMP_DIGITS,
  maskedFrame,
  newMask,
  readDigits,
  roomPath,
  upgradeRequest,
} from './client-frames.ts';
import { StormClient, nowMs, type StormSink } from './storm-client.ts';
import type { Target } from './index.ts';
import type { FromStormWorker, ToStormWorker, WindowCounts } from './storm-messages.ts';

const CONNECT_TIMEOUT_MS = 10_000;
const MAX_CONNECTING = 64;
const HEADER_END = Buffer.from('\r\n\r\n');
/** Deliveries kept for the window cuts (10,000/s for ten minutes); later ones are not recorded. */
const MAX_SAMPLES = 6_000_000;

function send(message: FromStormWorker): void {
  process.send?.(message);
}

// ---- steady group --------------------------------------------------------------

let sampleCount = 0;
let sampleTimes = new Float64Array(1 << 16);
let sampleLatencyUs = new Float32Array(1 << 16);
let delivered = 0;

function recordDelivery(scheduledMs: number): void {
  delivered++;
  if (sampleCount >= MAX_SAMPLES || !Number.isFinite(scheduledMs)) return;
  if (sampleCount === sampleTimes.length) {
    const times = new Float64Array(sampleTimes.length * 2);
    times.set(sampleTimes);
    sampleTimes = times;
    const lat = new Float32Array(sampleLatencyUs.length * 2);
    lat.set(sampleLatencyUs);
    sampleLatencyUs = lat;
  }
  sampleTimes[sampleCount] = scheduledMs;
  sampleLatencyUs[sampleCount] = (nowMs() - scheduledMs) * 1000;
  sampleCount++;
}

/** A member of the steady room: joins, then records every stamped delivery. */
class SteadyConn extends FrameParser {
  socket: net.Socket | null = null;
  ready = false;
  private head: Buffer | null = Buffer.alloc(0);
  private upgraded = false;
  private readonly mask = newMask();
  private readonly sio: boolean;
  private settle: ((ok: boolean) => void) | null;

  constructor(
    readonly target: Target,
    readonly room: string,
    settle: (ok: boolean) => void,
    /** Roll-call connections do not record deliveries. */
    private readonly recording: boolean,
  ) {
    super(target.protocol === 'socketio' ? SIO_PREFIX.length + SIO_STAMP_DIGITS : BINARY_STAMP_BYTES);
    this.sio = target.protocol === 'socketio';
    this.settle = settle;
  }

  open(): void {
    const t = this.target;
    const socket = net.connect({ host: t.host, port: t.port, noDelay: true });
    this.socket = socket;
    const timer = setTimeout(() => this.done(false), CONNECT_TIMEOUT_MS);
    const settle = this.settle;
    this.settle = (ok) => {
      clearTimeout(timer);
      settle?.(ok);
    };
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.done(false));
    socket.on('close', () => this.done(false));
    socket.write(upgradeRequest(t.host, t.port, roomPath(t.protocol, t.path, this.room), t.headers));
  }

  private onData(chunk: Buffer): void {
    if (this.upgraded) return this.feed(chunk, 0, chunk.length);
    const head = Buffer.concat([this.head!, chunk]);
    const end = head.indexOf(HEADER_END);
    if (end < 0) {
      if (head.length > 8192) this.done(false);
      else this.head = head;
      return;
    }
    this.head = null;
    if (head.toString('latin1', 0, 12) !== 'HTTP/1.1 101') return this.done(false);
    this.upgraded = true;
    if (!this.sio) this.done(true);
    if (end + 4 < head.length) this.feed(head, end + 4, head.length);
  }

  protected override onFrame(opcode: number, _fin: boolean, prefixLen: number, length: number): void {
    const p = this.prefix;
    if (opcode === OPCODE_BINARY) {
      if (this.recording && prefixLen >= BINARY_STAMP_BYTES) recordDelivery(p.readDoubleLE(0));
    } else if (opcode === OPCODE_TEXT && this.sio) {
      if (p[0] === 0x34 && p[1] === 0x32) {
        if (this.recording && prefixLen >= SIO_PREFIX.length + SIO_STAMP_DIGITS)
          recordDelivery(readDigits(p, SIO_PREFIX.length, 16) / 1000);
      } else if (p[0] === 0x32 && length === 1)
        this.write(maskedFrame(OPCODE_TEXT, Buffer.from('3'), this.mask));
      else if (p[0] === 0x30) this.write(maskedFrame(OPCODE_TEXT, Buffer.from('40'), this.mask));
      else if (p[0] === 0x34 && p[1] === 0x30) this.done(true);
    } else if (opcode === OPCODE_PING) {
      this.write(maskedFrame(OPCODE_PONG, Buffer.from(p.subarray(0, prefixLen)), this.mask));
    } else if (opcode === OPCODE_CLOSE) {
      this.socket?.destroy();
    }
  }

  private done(ok: boolean): void {
    if (ok) this.ready = true;
    else if (!this.ready) this.socket?.destroy();
    this.settle?.(ok);
    this.settle = null;
  }

  write(frame: Buffer): void {
    if (this.socket !== null && !this.socket.destroyed) this.socket.write(frame);
  }

  close(): void {
    this.socket?.destroy();
  }
}

/** Opens connections with at most MAX_CONNECTING handshakes in flight. */
function openAll(make: Array<(settle: (ok: boolean) => void) => SteadyConn>): Promise<SteadyConn[]> {
  return new Promise((resolve) => {
    const conns: SteadyConn[] = [];
    let next = 0;
    let pending = 0;
    const launch = (): void => {
      while (pending < MAX_CONNECTING && next < make.length) {
        pending++;
        const conn = make[next++]!(() => {
          pending--;
          launch();
        });
        conns.push(conn);
        conn.open();
      }
      if (pending === 0 && next === make.length) resolve(conns);
    };
    launch();
  });
}

let steadyConns: SteadyConn[] = [];
let publisher: SteadyConn | null = null;
let template: MessageTemplate | null = null;
let intervalMs = 20;
let firstAt = Infinity;
let stopAt = Infinity;
let k = 0;
const scheduled: number[] = [];
let tickTimer: NodeJS.Timeout | null = null;
let cpuAtStart: NodeJS.CpuUsage | null = null;

async function setupSteady(m: Extract<ToStormWorker, { type: 'steady' }>): Promise<void> {
  intervalMs = 1000 / m.ratePerSec;
  const make = Array.from(
    { length: m.subscribers + 1 },
    () => (settle: (ok: boolean) => void) => new SteadyConn(m.target, m.room, settle, true),
  );
  steadyConns = await openAll(make);
  publisher = steadyConns.find((c) => c.ready) ?? null;
  template = new MessageTemplate(
    m.target.protocol === 'socketio' ? 'socketio' : 'ws',
    m.payloadBytes,
    newMask(),
  );
  const connected = steadyConns.filter((c) => c.ready).length;
  send({ type: 'ready', connected, failures: steadyConns.length - connected });
}

function publishTick(): void {
  if (publisher === null || template === null) return;
  const now = nowMs();
  let due = 0;
  for (;;) {
    const t = firstAt + (k + due) * intervalMs;
    if (t > now || t >= stopAt) break;
    due++;
  }
  if (due === 0) return;
  const len = template.frame.length;
  const out = Buffer.allocUnsafe(due * len);
  for (let j = 0; j < due; j++) {
    const t = firstAt + k * intervalMs;
    template.writeTo(out, j * len, t, k);
    scheduled.push(t);
    k++;
  }
  publisher.write(out);
}

function collectSteady(windows: Array<[number, number]>): void {
  const counts: WindowCounts[] = windows.map(([from, to]) => {
    const h = new Histogram();
    let n = 0;
    for (let i = 0; i < sampleCount; i++) {
      const t = sampleTimes[i]!;
      if (t >= from && t < to) {
        h.record(sampleLatencyUs[i]!);
        n++;
      }
    }
    return {
      sent: scheduled.filter((t) => t >= from && t < to).length,
      delivered: n,
      histogram: Array.from(h.counts),
      maxUs: h.maxUs,
    };
  });
  const used = process.cpuUsage(cpuAtStart ?? undefined);
  send({
    type: 'steady-result',
    windows: counts,
    members: steadyConns.filter((c) => c.ready).length,
    cpuUs: used.user + used.system,
  });
}

// ---- storm --------------------------------------------------------------------

const stormClients: StormClient[] = [];
let rollCaller: SteadyConn | null = null;
let stormSpec: Extract<ToStormWorker, { type: 'storm' }> | null = null;
let launchTimer: NodeJS.Timeout | null = null;
let lastCpuUs = 0;
const attemptHist = new Histogram();
const clientHist = new Histogram();
const readyHist = new Histogram();
let stormStartAt = 0;
const counts = {
  connected: 0,
  gaveUp: 0,
  closedAfterJoin: 0,
  attempts: 0,
  retryAfterHonoured: 0,
  lastReadyAt: 0,
  maxLaunchLagMs: 0,
  rollCall: 0,
};
const refusals: Record<string, number> = {};
const failures: Record<string, number> = {};

const sink: StormSink = {
  deadlineAt: Infinity,
  attempt: () => counts.attempts++,
  refused: (status, retryAfterSec) => {
    refusals[status] = (refusals[status] ?? 0) + 1;
    if (retryAfterSec !== undefined) counts.retryAfterHonoured++;
  },
  failed: (kind) => {
    failures[kind] = (failures[kind] ?? 0) + 1;
  },
  ready: (client, attemptUs, clientUs) => {
    counts.connected++;
    attemptHist.record(attemptUs);
    clientHist.record(clientUs);
    readyHist.record((client.readyAt - stormStartAt) * 1000);
    if (client.readyAt > counts.lastReadyAt) counts.lastReadyAt = client.readyAt;
    maybeDone();
  },
  gaveUp: () => {
    counts.gaveUp++;
    maybeDone();
  },
  closedAfterJoin: () => counts.closedAfterJoin++,
  rollCall: () => counts.rollCall++,
};

function maybeDone(): void {
  if (stormSpec === null || counts.connected + counts.gaveUp < stormClients.length) return;
  const used = process.cpuUsage(cpuAtStart ?? undefined);
  lastCpuUs = used.user + used.system;
}

/** Source address of global client `index`: 127.0.0.2 … 127.0.0.(1 + addresses). */
function sourceAddress(index: number, addresses: number): string {
  return `127.0.0.${2 + (index % addresses)}`;
}

async function setupStorm(m: Extract<ToStormWorker, { type: 'storm' }>): Promise<void> {
  stormSpec = m;
  for (let i = m.worker; i < m.clients; i += m.workers) {
    stormClients.push(new StormClient(m.target, m.room, sourceAddress(i, m.addresses), m.retry, sink));
  }
  let ok = true;
  if (m.rollCaller) {
    ok = await new Promise<boolean>((resolve) => {
      rollCaller = new SteadyConn(m.target, m.room, resolve, false);
      rollCaller.open();
    });
  }
  send({ type: 'ready', connected: ok ? 1 : 0, failures: ok ? 0 : 1 });
}

function launchStorm(startAt: number, spreadMs: number, deadlineAt: number): void {
  const m = stormSpec!;
  (sink as { deadlineAt: number }).deadlineAt = deadlineAt;
  stormStartAt = startAt;
  // Client i (global index) is due at startAt + (i + jitter) / clients × spread: evenly spread, jittered.
  const due = stormClients.map((c, j) => {
    const global = m.worker + j * m.workers;
    return { client: c, at: startAt + ((global + Math.random()) / m.clients) * spreadMs };
  });
  due.sort((a, b) => a.at - b.at);
  let next = 0;
  const tick = (): void => {
    const now = nowMs();
    if (cpuAtStart === null && now >= startAt) cpuAtStart = process.cpuUsage();
    while (next < due.length && due[next]!.at <= now) {
      const d = due[next++]!;
      const lag = now - d.at;
      if (lag > counts.maxLaunchLagMs) counts.maxLaunchLagMs = lag;
      d.client.start(d.at);
    }
    if (next >= due.length && launchTimer !== null) {
      clearInterval(launchTimer);
      launchTimer = null;
    }
  };
  launchTimer = setInterval(tick, 1);
  if (due.length === 0) maybeDone();
}

function stormResult(): void {
  if (lastCpuUs === 0 && cpuAtStart !== null) {
    const used = process.cpuUsage(cpuAtStart);
    lastCpuUs = used.user + used.system;
  }
  send({
    type: 'storm-result',
    clients: stormClients.length,
    connected: counts.connected,
    gaveUp: counts.gaveUp,
    closedAfterJoin: counts.closedAfterJoin,
    attempts: counts.attempts,
    tried: stormClients.filter((c) => c.attempts > 0).length,
    refusals,
    failures,
    retryAfterHonoured: counts.retryAfterHonoured,
    attemptHistogram: Array.from(attemptHist.counts),
    attemptMaxUs: attemptHist.maxUs,
    clientHistogram: Array.from(clientHist.counts),
    clientMaxUs: clientHist.maxUs,
    readyHistogram: Array.from(readyHist.counts),
    readyMaxUs: readyHist.maxUs,
    lastReadyAt: counts.lastReadyAt,
    maxLaunchLagMs: counts.maxLaunchLagMs,
    rollCallReceived: counts.rollCall,
    cpuUs: lastCpuUs,
  });
}

// ---- control ------------------------------------------------------------------

function release(): void {
  if (tickTimer !== null) clearInterval(tickTimer);
  if (launchTimer !== null) clearInterval(launchTimer);
  for (const c of steadyConns) c.close();
  for (const c of stormClients) c.close();
  rollCaller?.close();
  send({ type: 'released' });
  process.disconnect?.();
}

process.on('message', (message: ToStormWorker) => {
  switch (message.type) {
    case 'steady':
      void setupSteady(message);
      break;
    case 'storm':
      void setupStorm(message);
      break;
    case 'publish':
      firstAt = message.startAt;
      cpuAtStart = process.cpuUsage();
      tickTimer = setInterval(publishTick, 1);
      break;
    case 'stop':
      stopAt = message.at;
      break;
    case 'launch':
      launchStorm(message.startAt, message.spreadMs, message.deadlineAt);
      break;
    case 'rollcall':
      if (rollCaller !== null) {
        const t = new MessageTemplate(
          rollCaller.target.protocol === 'socketio' ? 'socketio' : 'ws',
          64,
          newMask(),
        );
        const out = Buffer.allocUnsafe(t.frame.length);
        t.writeTo(out, 0, nowMs(), 0);
        rollCaller.write(out);
      }
      break;
    case 'poll':
      send({
        type: 'progress',
        connected: counts.connected,
        done: counts.connected + counts.gaveUp,
        lastReadyAt: counts.lastReadyAt,
        rollCallReceived: counts.rollCall,
        delivered,
      });
      break;
    case 'collect':
      if (stormSpec !== null) stormResult();
      else collectSteady(message.windows);
      break;
    case 'release':
      release();
      break;
  }
});
// The orchestrator went away: nothing left to report to.
process.on('disconnect', () => {
  for (const c of steadyConns) c.close();
  for (const c of stormClients) c.close();
  rollCaller?.close();
  setTimeout(() => process.exit(0), 100).unref();
});
