/**
 * A load generator worker process. The orchestrator (index.ts) spawns it
 * with an IPC channel and drives it through one of three modes:
 *
 * - fanout: open the assigned subscriber/publisher connections, then on
 *   `start` publish open-loop (every message stamped with its *scheduled*
 *   time) while recording the latency of every delivery whose scheduled time
 *   falls inside the measurement window; chosen subscribers stop reading at
 *   the window start.
 * - idle: open connections and hold them, answering pings.
 * - channel fan-out (targets of protocol `centrifuge`): subscribers speak the
 *   Centrifuge client protocol (connect, subscribe, then count publication
 *   pushes, answering the server's `{}` pings), and each publisher is an
 *   HTTP client of the server API (http-publisher.ts) instead of a socket.
 * - handshake: `concurrency` loops of connect → upgrade → close.
 *
 * The receive path reads into one shared buffer (`onread`), so a read
 * allocates nothing, and each frame costs a header parse plus a copy of its
 * first few payload bytes.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
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
  closeFrame,
  maskedFrame,
  newMask,
  readDigits,
  roomPath,
  upgradeRequest,
} from './client-frames.ts';
import {
  CONNECT_ID,
  PushScanner,
  SUBSCRIBE_ID,
  connectFrame,
  pongFrame,
  replyKind,
  subscribeFrame,
} from './channel-frames.ts';
import { HttpPublisher } from './http-publisher.ts';
import type { FromWorker, HeaderPool, ToWorker, WorkerRoom } from './messages.ts';
import type { Target } from './index.ts';

const CONNECT_TIMEOUT_MS = 10_000;
const MAX_CONNECTING = 256;
const HEADER_END = Buffer.from('\r\n\r\n');
const SIO_OPEN_ACK = Buffer.from('40');
const SIO_PONG = Buffer.from('3');

const timeOrigin = performance.timeOrigin;
const readBuffer = Buffer.allocUnsafe(256 * 1024);

// Window bounds in absolute ms; deliveries scheduled inside count.
let winStart = Infinity;
let winEnd = -Infinity;
let nowMs = 0;
const histogram = new Histogram();
let delivered = 0;
/** Channel mode: every publication push received, warm-up and grace included (loss is counted from it). */
let pushesTotal = 0;
let slowFrames = 0;
/** Reads that carried WebSocket frames (after the upgrade), for frames-per-read figures. */
let reads = 0;
let workerIndex = 0;
let addressCursor = 0;

function send(message: FromWorker): void {
  process.send?.(message);
}

/** Next loopback source address, 127.0.0.2 … 127.0.0.254, staggered per worker. */
function nextLocalAddress(): string {
  const x = 2 + ((addressCursor++ + workerIndex * 61) % 253);
  return `127.0.0.${x}`;
}

/** One fan-out or idle connection: handshake, then frame parsing on the shared read buffer. */
class Conn extends FrameParser {
  socket: net.Socket | null = null;
  ready = false;
  upgraded = false;
  closedByServer = false;
  closingByUs = false;
  slow = false;
  private handshake: Buffer | null = Buffer.allocUnsafe(0);
  private readonly mask = newMask();
  private readonly sio: boolean;
  /** Centrifuge protocol: 0 = waiting for the connect reply, 1 = for the subscribe reply, 2 = subscribed. */
  private readonly scanner: PushScanner | null;
  private phase = 0;
  private settle: ((ok: boolean) => void) | null;

  constructor(
    readonly target: Target,
    readonly room: string,
    settle: (ok: boolean) => void,
  ) {
    super(
      target.protocol === 'socketio'
        ? SIO_PREFIX.length + SIO_STAMP_DIGITS
        : target.protocol === 'centrifuge'
          ? 125
          : BINARY_STAMP_BYTES,
    );
    this.sio = target.protocol === 'socketio';
    this.scanner = target.protocol === 'centrifuge' ? new PushScanner() : null;
    this.scanPayload = this.scanner !== null;
    this.settle = settle;
  }

  open(): void {
    const t = this.target;
    const socket = net.connect({
      host: t.host,
      port: t.port,
      localAddress: nextLocalAddress(),
      noDelay: true,
      onread: { buffer: readBuffer, callback: (n: number, buf: Buffer) => this.onRead(n, buf) },
    });
    this.socket = socket;
    const timer = setTimeout(() => this.fail(), CONNECT_TIMEOUT_MS);
    this.settle = wrapSettle(this.settle, () => clearTimeout(timer));
    socket.on('error', () => this.lost());
    socket.on('end', () => this.lost());
    socket.on('close', () => this.lost());
    socket.write(upgradeRequest(t.host, t.port, roomPath(t.protocol, t.path, this.room), t.headers));
  }

  private onRead(n: number, buf: Buffer): boolean {
    nowMs = timeOrigin + performance.now();
    if (this.upgraded) {
      reads++;
      this.feed(buf, 0, n);
      return true;
    }
    const hs = Buffer.concat([this.handshake!, buf.subarray(0, n)]);
    const end = hs.indexOf(HEADER_END);
    if (end < 0) {
      this.handshake = hs;
      return true;
    }
    this.handshake = null;
    if (hs.toString('latin1', 0, 12) !== 'HTTP/1.1 101') {
      this.fail();
      return true;
    }
    this.upgraded = true;
    if (this.scanner !== null) this.write(connectFrame(this.mask, this.target.channel?.token));
    else if (!this.sio) this.becomeReady();
    if (end + 4 < hs.length) this.feed(hs, end + 4, hs.length);
    return true;
  }

  protected override onPayload(chunk: Buffer, start: number, end: number): void {
    this.scanner?.push(chunk, start, end);
  }

  protected override onFrame(opcode: number, fin: boolean, prefixLen: number, length: number): void {
    const p = this.prefix;
    if (this.scanner !== null && (opcode === OPCODE_TEXT || opcode === 0)) {
      if (fin) this.channelMessage(prefixLen);
    } else if (opcode === OPCODE_BINARY) {
      if (prefixLen >= BINARY_STAMP_BYTES) this.delivery(p.readDoubleLE(0));
    } else if (opcode === OPCODE_TEXT) {
      if (!this.sio) return;
      const c0 = p[0];
      if (c0 === 0x34 && p[1] === 0x32) {
        // 42["m","<digits>…
        if (prefixLen >= SIO_PREFIX.length + SIO_STAMP_DIGITS)
          this.delivery(readDigits(p, SIO_PREFIX.length, 16) / 1000);
      } else if (c0 === 0x32 && length === 1) this.write(maskedFrame(OPCODE_TEXT, SIO_PONG, this.mask));
      else if (c0 === 0x30) this.write(maskedFrame(OPCODE_TEXT, SIO_OPEN_ACK, this.mask));
      else if (c0 === 0x34 && p[1] === 0x30) this.becomeReady();
    } else if (opcode === OPCODE_PING) {
      this.write(maskedFrame(OPCODE_PONG, Buffer.from(p.subarray(0, prefixLen)), this.mask));
    } else if (opcode === OPCODE_CLOSE) {
      this.closedByServer = true;
      this.close();
    }
  }

  /** One whole Centrifuge message (one or more replies, pushes and pings). */
  private channelMessage(prefixLen: number): void {
    const scanner = this.scanner!;
    if (this.phase < 2) {
      const kind = replyKind(this.prefix, prefixLen, this.phase === 0 ? CONNECT_ID : SUBSCRIBE_ID);
      if (kind === 'error') {
        scanner.reset();
        this.fail();
        return;
      }
      if (kind === 'ok' && this.phase++ === 0) this.write(subscribeFrame(this.mask, this.room));
      else if (kind === 'ok') this.becomeReady();
    }
    if (scanner.ping) this.write(pongFrame(this.mask));
    if (scanner.pubs > 0) {
      const n = scanner.pubs;
      const ts = scanner.firstStampMs;
      pushesTotal += n;
      // The frame's first publication is its oldest: its latency stands for all n, an upper bound.
      if (ts >= winStart && ts < winEnd) {
        delivered += n;
        histogram.record((nowMs - ts) * 1000, n);
      }
    }
    scanner.reset();
  }

  private delivery(ts: number): void {
    if (this.slow) {
      slowFrames++;
      return;
    }
    if (ts >= winStart && ts < winEnd) {
      delivered++;
      histogram.record((nowMs - ts) * 1000);
    }
  }

  private becomeReady(): void {
    if (this.ready) return;
    this.ready = true;
    this.settle?.(true);
    this.settle = null;
  }

  write(frame: Buffer): void {
    if (this.socket !== null && !this.socket.destroyed) this.socket.write(frame);
  }

  private fail(): void {
    this.settle?.(false);
    this.settle = null;
    this.close();
  }

  /** The socket ended, errored or closed: server-side close unless we started it. */
  private lost(): void {
    if (!this.closingByUs) this.closedByServer = true;
    this.fail();
  }

  close(): void {
    this.closingByUs = this.closingByUs || !this.closedByServer;
    this.socket?.destroy();
  }
}

function wrapSettle(settle: ((ok: boolean) => void) | null, before: () => void): (ok: boolean) => void {
  return (ok) => {
    before();
    settle?.(ok);
  };
}

/** Opens `conns` with at most MAX_CONNECTING handshakes in flight; resolves with the counts. */
function openAll(
  make: Array<(settle: (ok: boolean) => void) => Conn>,
): Promise<{ conns: Conn[]; failures: number }> {
  return new Promise((resolve) => {
    const conns: Conn[] = [];
    let next = 0;
    let pending = 0;
    let failures = 0;
    const launch = (): void => {
      while (pending < MAX_CONNECTING && next < make.length) {
        pending++;
        const conn = make[next++]!((ok) => {
          pending--;
          if (!ok) failures++;
          launch();
        });
        conns.push(conn);
        conn.open();
      }
      if (pending === 0 && next === make.length) resolve({ conns, failures });
    };
    launch();
  });
}

// ---- fan-out ----------------------------------------------------------------

interface Publisher {
  conn: Conn;
  room: string;
  template: MessageTemplate;
  firstAt: number;
  k: number;
}

/** A channel-mode publisher: the server API over HTTP. */
interface ApiPublisher {
  http: HttpPublisher;
  room: string;
  firstAt: number;
  k: number;
}

let conns: Conn[] = [];
let publishers: Publisher[] = [];
const apiPublishers: ApiPublisher[] = [];
let intervalMs = 1;
let tickTimer: NodeJS.Timeout | null = null;
const sentByRoom: Record<string, number> = {};
let sentTotal = 0;
let cpuStart: NodeJS.CpuUsage | null = null;
let cpuUs = 0;
const timers: NodeJS.Timeout[] = [];
/** Self-test: count every frame, and those that arrive inside the window by arrival time. */
let countAll = false;
let windowDelivered = 0;
let windowReads = 0;

async function setupFanout(message: Extract<ToWorker, { type: 'fanout' }>): Promise<void> {
  intervalMs = 1000 / message.ratePerPublisher;
  countAll = message.countAll === true;
  // The line-rate peer starts writing as soon as everyone is connected, before `start` arrives.
  if (countAll) [winStart, winEnd] = [-Infinity, Infinity];
  const make: Array<(settle: (ok: boolean) => void) => Conn> = [];
  const roles: Array<{ room: WorkerRoom; kind: 'sub' | 'slow' | 'pub'; index: number }> = [];
  for (const room of message.rooms) {
    sentByRoom[room.name] = 0;
    for (let i = 0; i < room.subscribers; i++)
      roles.push({ room, kind: i < room.slow ? 'slow' : 'sub', index: i });
    const target = room.target ?? message.target;
    for (let i = 0; i < room.publishers; i++) {
      if (target.protocol !== 'centrifuge') {
        roles.push({ room, kind: 'pub', index: i });
        continue;
      }
      const global = room.firstPublisher + i;
      apiPublishers.push({
        http: new HttpPublisher({
          host: target.host,
          port: target.channel?.apiPort ?? target.port,
          apiKey: target.channel?.apiKey ?? '',
          channel: room.name,
          payloadBytes: message.payloadBytes,
          ...(target.channel?.apiPath ? { path: target.channel.apiPath } : {}),
        }),
        room: room.name,
        firstAt: (global / message.totalPublishers) * intervalMs,
        k: 0,
      });
    }
  }
  for (const role of roles)
    make.push((settle) => new Conn(role.room.target ?? message.target, role.room.name, settle));
  const opened = await openAll(make);
  conns = opened.conns;
  conns.forEach((conn, i) => {
    const role = roles[i]!;
    // a slow member's frames never count as healthy deliveries, before or after it pauses
    conn.slow = role.kind === 'slow';
    if (role.kind === 'pub') {
      const global = role.room.firstPublisher + role.index;
      publishers.push({
        conn,
        room: role.room.name,
        template: new MessageTemplate(
          message.target.protocol === 'socketio' ? 'socketio' : 'ws',
          message.payloadBytes,
          newMask(),
        ),
        firstAt: (global / message.totalPublishers) * intervalMs,
        k: 0,
      });
    }
  });
  slowConns = conns.filter((_, i) => roles[i]!.kind === 'slow');
  publishers = publishers.filter((p) => p.conn.ready);
  send({ type: 'connected', connected: conns.filter((c) => c.ready).length, failures: opened.failures });
}

let slowConns: Conn[] = [];

function start(startAt: number, ws: number, we: number): void {
  if (!countAll) [winStart, winEnd] = [ws, we];
  for (const p of publishers) p.firstAt += startAt;
  for (const p of apiPublishers) p.firstAt += startAt;
  const at = (abs: number, fn: () => void): void => {
    timers.push(setTimeout(fn, Math.max(0, abs - (timeOrigin + performance.now()))));
  };
  at(startAt, () => {
    tick();
    tickTimer = setInterval(tick, 1);
  });
  at(ws, () => {
    for (const c of slowConns) c.socket?.pause();
    cpuStart = process.cpuUsage();
    windowDelivered = -delivered;
    windowReads = -reads;
  });
  at(we, () => {
    windowDelivered += delivered;
    windowReads += reads;
    tick();
    if (tickTimer !== null) clearInterval(tickTimer);
    tickTimer = null;
    const used = process.cpuUsage(cpuStart ?? undefined);
    cpuUs = used.user + used.system;
  });
}

/** Sends every message whose scheduled time has come, stamped with that scheduled time. */
function tick(): void {
  const now = timeOrigin + performance.now();
  for (const p of publishers) {
    let due = 0;
    while (true) {
      const t = p.firstAt + (p.k + due) * intervalMs;
      if (t > now || t >= winEnd) break;
      due++;
    }
    if (due === 0) continue;
    const len = p.template.frame.length;
    const out = Buffer.allocUnsafe(due * len);
    for (let j = 0; j < due; j++) {
      const t = p.firstAt + p.k * intervalMs;
      p.template.writeTo(out, j * len, t, p.k);
      if (t >= winStart) sentByRoom[p.room]!++;
      sentTotal++;
      p.k++;
    }
    p.conn.write(out);
  }
  for (const p of apiPublishers) {
    for (;;) {
      const t = p.firstAt + p.k * intervalMs;
      if (t > now || t >= winEnd) break;
      p.http.publish(t);
      if (t >= winStart) sentByRoom[p.room]!++;
      sentTotal++;
      p.k++;
    }
  }
}

/** Lets the paused subscribers read again until they go quiet, so their totals are final. */
function drain(): void {
  for (const c of slowConns) c.socket?.resume();
  let last = -1;
  let quietSince = Date.now();
  const started = Date.now();
  const check = setInterval(() => {
    if (slowFrames !== last) {
      last = slowFrames;
      quietSince = Date.now();
    }
    if (Date.now() - quietSince >= 300 || Date.now() - started >= 3000) {
      clearInterval(check);
      send({ type: 'drained' });
    }
  }, 50);
}

function collect(): void {
  send({
    type: 'result',
    sentByRoom,
    sentTotal,
    delivered,
    windowDelivered,
    windowReads,
    histogram: Array.from(histogram.counts),
    maxUs: histogram.maxUs,
    cpuUs,
    slowMembers: slowConns.length,
    slowClosed: slowConns.filter((c) => c.closedByServer).length,
    slowFrames,
    pushesTotal,
    publishAccepted: apiPublishers.reduce((n, p) => n + p.http.accepted, 0),
    publishFailed: apiPublishers.reduce((n, p) => n + p.http.failed + p.http.pending, 0),
    publishError: apiPublishers.find((p) => p.http.firstError !== undefined)?.http.firstError ?? '',
  });
}

// ---- idle ---------------------------------------------------------------------

async function setupIdle(target: Target, count: number): Promise<void> {
  const make = Array.from(
    { length: count },
    () => (settle: (ok: boolean) => void) => new Conn(target, 'idle', settle),
  );
  const opened = await openAll(make);
  conns = opened.conns;
  send({ type: 'connected', connected: conns.filter((c) => c.ready).length, failures: opened.failures });
}

// ---- handshakes -----------------------------------------------------------------

function runHandshakes(
  target: Target,
  concurrency: number,
  durationMs: number,
  pool: HeaderPool | undefined,
): void {
  const hist = new Histogram();
  let upgrades = 0;
  let failures = 0;
  // One pool value per connection, in turn; a value used a second time is counted.
  let poolCursor = 0;
  let headerReuses = 0;
  const headersOf = (): Record<string, string> | undefined => {
    if (pool === undefined) return target.headers;
    const n = pool.values.length;
    if (poolCursor >= n) headerReuses++;
    const value = pool.values[poolCursor++ % n]!;
    return { ...target.headers, [pool.name]: value };
  };
  let running = concurrency;
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  const cpu0 = process.cpuUsage();
  const path = roomPath(target.protocol, target.path, 'handshake');
  const mask = newMask();
  const bye = closeFrame(mask);

  const finish = (): void => {
    if (--running > 0) return;
    const used = process.cpuUsage(cpu0);
    send({
      type: 'handshakes',
      upgrades,
      failures,
      histogram: Array.from(hist.counts),
      maxUs: hist.maxUs,
      cpuUs: used.user + used.system,
      elapsedMs: performance.now() - t0,
      headerReuses,
    });
  };

  const once = (): void => {
    if (performance.now() >= deadline) {
      finish();
      return;
    }
    const begun = performance.now();
    let upgraded = false;
    let done = false;
    let head: Buffer = Buffer.alloc(0);
    const socket = net.connect({ host: target.host, port: target.port, localAddress: nextLocalAddress() });
    const timer = setTimeout(() => {
      if (!upgraded) failures++;
      upgraded = true; // counted
      socket.destroy();
    }, 5000);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) return;
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (head.indexOf(HEADER_END) < 0) return;
      upgraded = true;
      if (head.toString('latin1', 0, 12) === 'HTTP/1.1 101') {
        hist.record((performance.now() - begun) * 1000);
        upgrades++;
        // The server answers our close frame and closes TCP first, so TIME_WAIT stays on its side.
        socket.write(bye);
      } else {
        failures++;
        socket.destroy();
      }
    });
    socket.on('error', () => {
      if (!upgraded) failures++;
      upgraded = true;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (done) return;
      done = true;
      if (!upgraded) failures++;
      once();
    });
    socket.write(upgradeRequest(target.host, target.port, path, headersOf()));
  };
  for (let i = 0; i < concurrency; i++) once();
}

// ---- control ----------------------------------------------------------------------

function release(): void {
  for (const t of timers) clearTimeout(t);
  if (tickTimer !== null) clearInterval(tickTimer);
  for (const c of conns) c.close();
  for (const p of apiPublishers) p.http.close();
  send({ type: 'released' });
  process.disconnect?.();
}

process.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'fanout':
      workerIndex = message.worker;
      void setupFanout(message);
      break;
    case 'idle':
      workerIndex = message.worker;
      void setupIdle(message.target, message.connections);
      break;
    case 'handshake':
      workerIndex = message.worker;
      runHandshakes(message.target, message.concurrency, message.durationMs, message.headerPool);
      break;
    case 'start':
      start(message.startAt, message.winStart, message.winEnd);
      break;
    case 'poll':
      send({
        type: 'progress',
        delivered: delivered + pushesTotal,
        pending: apiPublishers.reduce((n, p) => n + p.http.pending, 0),
      });
      break;
    case 'drain':
      drain();
      break;
    case 'collect':
      collect();
      break;
    case 'release':
      release();
      break;
  }
});
// The orchestrator went away: nothing left to report to.
process.on('disconnect', () => {
  for (const c of conns) c.close();
  setTimeout(() => process.exit(0), 100).unref();
});
