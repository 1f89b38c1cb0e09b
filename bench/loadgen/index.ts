/**
 * The load generator's public API: fan-out, handshake and idle-connection
 * runs, each spread over worker processes (worker.ts) that hold the sockets.
 * Workers run under `taskset -c <cpuList>` when a CPU list is given.
 *
 * Receive paths: the Node worker (worker.ts) does every mode; for fan-out
 * and self-test runs on plain WebSocket targets, `receivePath: 'go'` hands
 * the subscribers to the Go receiver (go/receiver, built by go-receiver.ts),
 * which speaks the same messages, while the publishers stay in one Node
 * worker; for handshake runs on such targets it runs the connect → upgrade
 * → close loops itself. Both report the same counts, histogram and CPU
 * figures.
 *
 * Worker count: by default as many as the 20,000-fd-per-process limit needs
 * (≤ 15,000 sockets each), and at least 2 when the generator may use more
 * than one core. Pinned to a single core, extra processes would only take
 * turns on it, so one process per 15,000 sockets is used.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Histogram } from './histogram.ts';
import { coreBusySeconds } from '../peer-process.ts';
import { ensureGoReceiver } from './go-receiver.ts';
import type { FromWorker, HeaderPool, ToWorker, WorkerResult, WorkerRoom } from './messages.ts';

export type { HeaderPool } from './messages.ts';

export interface Target {
  host: string;
  port: number;
  /** `centrifuge`: the Centrifuge client protocol v2 (JSON) on `path`, publishing through the server API. */
  protocol: 'ws' | 'socketio' | 'centrifuge';
  /** '/ws'; for Socket.IO, '/ws' means the default '/socket.io/'; for channels '/connection/websocket'. */
  path: string;
  headers?: Record<string, string>;
  /** Channel protocol only: the server API's key and path, and a connection token when the server wants one. */
  channel?: ChannelAccess;
}

/** How the channel benchmark reaches a server's API and channels. */
export interface ChannelAccess {
  apiKey: string;
  /** Default '/api/publish'. */
  apiPath?: string;
  /** The server API's port when it is not the WebSocket port (as with Centrifugo's internal port). */
  apiPort?: number;
  token?: string;
}

export interface FanoutSpec {
  target: Target;
  /**
   * Publishers are extra connections that also join the room (they count as members and receive too);
   * for a `centrifuge` target they are server API clients instead, and not members.
   * A room's name is the channel's name there.
   */
  /** Entries may share a name to spread one room over several servers (each with its own `target`). */
  rooms: Array<{ name: string; subscribers: number; publishers: number; target?: Target }>;
  /** Messages/s per publisher, open-loop: latency counts from the scheduled send time. */
  ratePerPublisher: number;
  /** ≥ 16 (Socket.IO: ≥ 26 characters); the first bytes carry the scheduled send time and a sequence number. */
  payloadBytes: number;
  warmupMs: number;
  durationMs: number;
  /** This fraction of each room's subscribers stop reading (socket.pause()) when measurement starts. */
  slowFraction?: number;
  workers?: number;
  /** e.g. '1' → workers run under `taskset -c 1`. */
  cpuList?: string;
  /** 'go' (plain WebSocket targets only, else the Node worker is used): subscribers in the Go receiver. Default 'node'. */
  receivePath?: ReceivePath;
}

/** Which program counts the subscribers' deliveries: the Node worker or the Go receiver. */
export type ReceivePath = 'go' | 'node';

export interface GeneratorCpu {
  /** Generator CPU-seconds (user + system, all workers) over the measured span. */
  seconds: number;
  /** seconds / (wall seconds × generator cores). */
  busyFraction: number;
  /** busyFraction > 0.9: the result may measure the generator, not the server. */
  limited: boolean;
  /**
   * Busy share (0–1) of the generator's pinned cores over the window, whoever used them
   * (the generator, kernel work done there, other processes); absent when not pinned.
   */
  coreBusyFraction?: number;
}

export interface FanoutResult {
  connected: number;
  connectFailures: number;
  /** Messages whose scheduled send time is inside the measurement window. */
  sent: number;
  /** All messages sent, warm-up included (for matching server counters). */
  sentTotal: number;
  /** sent × members, healthy members only when slow consumers exist. */
  expected: number;
  delivered: number;
  lost: number;
  deliveriesPerSec: number;
  latencyMs: { p50: number; p99: number; max: number; samples: number };
  generatorCpu: GeneratorCpu;
  /** framesReceived counts every data frame the slow members got over the whole run, backlog drained at the end. */
  slow?: { members: number; closedByServer: number; framesReceived: number };
  /** Channel protocol: what the server API made of the publications (failed = refused, failed or unanswered). */
  publish?: { accepted: number; failed: number; firstError: string };
  /** The receive path that counted the subscribers' deliveries. */
  receivePath: ReceivePath;
}

export interface HandshakeSpec {
  target: Target;
  concurrency: number;
  durationMs: number;
  /**
   * One header whose value changes per connection (a different bearer token
   * each, so no cache of verified tokens helps). The values are dealt out
   * to the workers without overlap; each worker takes its own in turn and
   * starts over only when it has used them all (counted in `headerReuses`).
   * Sent after `target.headers`.
   */
  headerPool?: HeaderPool;
  workers?: number;
  cpuList?: string;
  /** 'go' (plain WebSocket targets only, else the Node worker is used): the loops run in the Go worker. Default 'node'. */
  receivePath?: ReceivePath;
}

export interface HandshakeResult {
  upgrades: number;
  failures: number;
  perSec: number;
  latencyMs: { p50: number; p99: number; max: number };
  generatorCpu: GeneratorCpu;
  /** Connections that got a header pool value already used in this run (0 without a pool). */
  headerReuses: number;
  /** The program that ran the connect → upgrade → close loops. */
  receivePath: ReceivePath;
}

export interface IdleSpec {
  target: Target;
  connections: number;
  workers?: number;
  cpuList?: string;
}

export interface IdleHold {
  connected: number;
  failures: number;
  release(): Promise<void>;
}

const SOCKETS_PER_WORKER = 15_000;
const START_DELAY_MS = 100;
const GRACE_MAX_MS = 5000;
const GRACE_QUIET_MS = 600;
/** Longest wait for the line-rate peer's frames still in flight after a capacity run's window. */
const CAPACITY_DRAIN_MAX_MS = 20_000;
const workerFile = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** Number of CPUs in a taskset list such as '1', '0-3' or '1,3'. */
export function countCpus(cpuList: string): number {
  let n = 0;
  for (const part of cpuList.split(',')) {
    const [a, b] = part.split('-').map((x) => Number.parseInt(x, 10));
    n += b === undefined ? 1 : b - a! + 1;
  }
  return Math.max(1, n);
}

function generatorCores(workers: number, cpuList: string | undefined): number {
  return Math.min(workers, cpuList === undefined ? availableParallelism() : countCpus(cpuList));
}

function defaultWorkers(sockets: number, cpuList: string | undefined): number {
  const needed = Math.max(1, Math.ceil(sockets / SOCKETS_PER_WORKER));
  const cores = cpuList === undefined ? availableParallelism() : countCpus(cpuList);
  return cores > 1 ? Math.max(2, needed) : needed;
}

/** A worker process and a queue of its replies. */
class Worker {
  private readonly child: ChildProcess;
  private readonly inbox: FromWorker[] = [];
  private waiter: (() => void) | null = null;
  private exited = false;

  /** `binary`: the Go receiver's path, for a Go worker; the Node worker otherwise. */
  constructor(cpuList: string | undefined, binary?: string) {
    const command = binary === undefined ? [process.execPath, '--import', 'tsx', workerFile] : [binary];
    // Node's IPC channel in its default `json` serialization: JSON lines on NODE_CHANNEL_FD, which Go reads too.
    const stdio: ['inherit', 'inherit', 'inherit', 'ipc'] = ['inherit', 'inherit', 'inherit', 'ipc'];
    this.child =
      cpuList === undefined
        ? spawn(command[0]!, command.slice(1), { stdio })
        : spawn('taskset', ['-c', cpuList, ...command], { stdio });
    this.child.on('message', (m: FromWorker) => {
      this.inbox.push(m);
      this.waiter?.();
    });
    this.child.on('exit', () => {
      this.exited = true;
      this.waiter?.();
    });
    this.child.on('error', () => {
      this.exited = true;
      this.waiter?.();
    });
  }

  send(message: ToWorker): void {
    if (!this.exited && this.child.connected) this.child.send(message);
  }

  /** The next reply of type `type` (earlier replies of other types are dropped). */
  async next<T extends FromWorker['type']>(type: T): Promise<Extract<FromWorker, { type: T }>> {
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<FromWorker, { type: T }>;
      if (this.exited) throw new Error(`load generator worker exited before sending '${type}'`);
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = null;
    }
  }

  /** Ends the worker: release its sockets, then make sure the process is gone. */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.send({ type: 'release' });
    const gone = new Promise<void>((resolve) => {
      if (this.exited) resolve();
      else this.child.once('exit', () => resolve());
    });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(timer);
  }
}

function splitEvenly(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

function cpuResult(cpuUs: number, wallMs: number, cores: number, coreBusyFraction?: number): GeneratorCpu {
  const seconds = cpuUs / 1e6;
  const busyFraction = wallMs > 0 ? seconds / ((wallMs / 1000) * cores) : 0;
  return {
    seconds,
    busyFraction,
    limited: busyFraction > 0.9,
    ...(coreBusyFraction !== undefined ? { coreBusyFraction } : {}),
  };
}

const ms = (us: number): number => us / 1000;

/** The CPU numbers of a taskset list such as '1', '0-3' or '1,3'. */
function cpusOf(cpuList: string): number[] {
  const out: number[] = [];
  for (const part of cpuList.split(',')) {
    const [a, b] = part.split('-').map((x) => Number.parseInt(x, 10));
    for (let c = a!; c <= (b ?? a!); c++) out.push(c);
  }
  return out;
}

/**
 * Reads the busy CPU-seconds of the generator's cores at `winStart` and
 * `winEnd` (absolute ms); `fraction()` is their busy share over the window,
 * undefined without a CPU list or when /proc/stat could not be read.
 */
function watchCores(cpuList: string | undefined, winStart: number, winEnd: number): () => number | undefined {
  if (cpuList === undefined) return () => undefined;
  const cpus = cpusOf(cpuList);
  const read = (): number => cpus.reduce((n, c) => n + coreBusySeconds(c), 0);
  let first = NaN;
  let last = NaN;
  const now = (): number => performance.timeOrigin + performance.now();
  const t1 = setTimeout(() => (first = read()), Math.max(0, winStart - now()));
  const t2 = setTimeout(() => (last = read()), Math.max(0, winEnd - now()));
  return () => {
    clearTimeout(t1);
    clearTimeout(t2);
    const f = (last - first) / (((winEnd - winStart) / 1000) * cpus.length);
    return Number.isFinite(f) ? f : undefined;
  };
}

/**
 * Runs a fan-out measurement: connects every room's subscribers and
 * publishers, publishes open-loop through warm-up and the measurement
 * window, waits a grace period for in-flight deliveries, and returns the
 * counts, latency percentiles and generator CPU use.
 */
export async function runFanout(spec: FanoutSpec): Promise<FanoutResult> {
  const totalSockets = spec.rooms.reduce((n, r) => n + r.subscribers + r.publishers, 0);
  const workerCount = spec.workers ?? defaultWorkers(totalSockets, spec.cpuList);
  const plans: WorkerRoom[][] = Array.from({ length: workerCount }, () => []);
  const totalPublishers = spec.rooms.reduce((n, r) => n + r.publishers, 0);
  const channels = spec.target.protocol === 'centrifuge';
  if (channels && new Set(spec.rooms.map((r) => r.name)).size !== 1)
    throw new Error('a channel fan-out run measures exactly one channel');
  const healthy = new Map<string, number>();
  let publisherIndex = 0;
  let slowTotal = 0;
  for (const room of spec.rooms) {
    const slow = Math.round(room.subscribers * (spec.slowFraction ?? 0));
    slowTotal += slow;
    const members = room.subscribers - slow + (channels ? 0 : room.publishers);
    healthy.set(room.name, (healthy.get(room.name) ?? 0) + members);
    const subs = splitEvenly(room.subscribers, workerCount);
    const slows = splitEvenly(slow, workerCount);
    const pubs = splitEvenly(room.publishers, workerCount);
    // rotate so that small rooms do not all land on worker 0
    const shift = spec.rooms.indexOf(room) % workerCount;
    for (let w = 0; w < workerCount; w++) {
      const s = (w + shift) % workerCount;
      if (subs[s]! + pubs[s]! === 0) continue;
      plans[w]!.push({
        name: room.name,
        subscribers: subs[s]!,
        slow: Math.min(slows[s]!, subs[s]!),
        publishers: pubs[s]!,
        firstPublisher: publisherIndex,
        ...(room.target ? { target: room.target } : {}),
      });
      publisherIndex += pubs[s]!;
    }
  }

  const receivePath: ReceivePath = spec.receivePath === 'go' && plainWebSocket(spec) ? 'go' : 'node';
  const assignments =
    receivePath === 'go'
      ? splitForGo(plans)
      : plans.map((rooms) => ({ rooms, binary: undefined as string | undefined }));
  if (receivePath === 'go') {
    const binary = await ensureGoReceiver((line) => process.stderr.write(`${line}\n`));
    for (const a of assignments) if (a.binary !== undefined) a.binary = binary;
  }
  const workers = assignments.map((a) => new Worker(spec.cpuList, a.binary));
  try {
    workers.forEach((w, i) =>
      w.send({
        type: 'fanout',
        target: spec.target,
        worker: i,
        rooms: assignments[i]!.rooms,
        totalPublishers: Math.max(1, totalPublishers),
        ratePerPublisher: spec.ratePerPublisher,
        payloadBytes: spec.payloadBytes,
      }),
    );
    const connectedReplies = await Promise.all(workers.map((w) => w.next('connected')));
    const now = performance.timeOrigin + performance.now();
    const startAt = now + START_DELAY_MS;
    const winStart = startAt + spec.warmupMs;
    const winEnd = winStart + spec.durationMs;
    for (const w of workers) w.send({ type: 'start', startAt, winStart, winEnd });
    const cores = watchCores(spec.cpuList, winStart, winEnd);
    await sleep(winEnd - (performance.timeOrigin + performance.now()) + 20);
    const coreBusyFraction = cores();

    // Grace: wait while deliveries still arrive, up to GRACE_MAX_MS.
    await settle(workers, GRACE_MAX_MS);
    if (slowTotal > 0) {
      for (const w of workers) w.send({ type: 'drain' });
      await Promise.all(workers.map((w) => w.next('drained')));
    }
    for (const w of workers) w.send({ type: 'collect' });
    const results: WorkerResult[] = await Promise.all(workers.map((w) => w.next('result')));

    const histogram = new Histogram();
    const sentByRoom = new Map<string, number>();
    let delivered = 0;
    let cpuUs = 0;
    let sentTotal = 0;
    let pushesTotal = 0;
    const publish = { accepted: 0, failed: 0, firstError: '' };
    const slow = { members: 0, closedByServer: 0, framesReceived: 0 };
    for (const r of results) {
      histogram.merge(r.histogram, r.maxUs);
      delivered += r.delivered;
      cpuUs += r.cpuUs;
      sentTotal += r.sentTotal;
      for (const [room, n] of Object.entries(r.sentByRoom))
        sentByRoom.set(room, (sentByRoom.get(room) ?? 0) + n);
      slow.members += r.slowMembers;
      slow.closedByServer += r.slowClosed;
      slow.framesReceived += r.slowFrames;
      pushesTotal += r.pushesTotal;
      publish.accepted += r.publishAccepted;
      publish.failed += r.publishFailed;
      if (publish.firstError === '') publish.firstError = r.publishError;
    }
    let sent = 0;
    let expected = 0;
    for (const [room, n] of sentByRoom) {
      sent += n;
      expected += n * (healthy.get(room) ?? 0);
    }
    // Channel pushes are counted per frame, and a frame is placed in or out of the window by its
    // first publication only, so loss is counted over the whole run: every publication attempted
    // (warm-up included) × members, against every push received.
    const lost = channels
      ? Math.max(0, sentTotal * (healthy.values().next().value ?? 0) - pushesTotal)
      : Math.max(0, expected - delivered);
    const result: FanoutResult = {
      connected: connectedReplies.reduce((n, c) => n + c.connected, 0),
      connectFailures: connectedReplies.reduce((n, c) => n + c.failures, 0),
      sent,
      sentTotal,
      expected,
      delivered,
      lost,
      deliveriesPerSec: delivered / (spec.durationMs / 1000),
      latencyMs: {
        p50: ms(histogram.quantile(0.5)),
        p99: ms(histogram.quantile(0.99)),
        max: ms(histogram.maxUs),
        samples: histogram.total,
      },
      generatorCpu: cpuResult(
        cpuUs,
        spec.durationMs,
        generatorCores(workers.length, spec.cpuList),
        coreBusyFraction,
      ),
      receivePath,
    };
    if (slowTotal > 0) result.slow = slow;
    if (channels) result.publish = publish;
    return result;
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}

/** Whether every connection of a fan-out run speaks plain WebSocket (what the Go receiver speaks). */
function plainWebSocket(spec: FanoutSpec): boolean {
  return (
    spec.target.protocol === 'ws' && spec.rooms.every((r) => (r.target ?? spec.target).protocol === 'ws')
  );
}

/**
 * The Go receive path's workers for fan-out plans: each plan's subscribers
 * in a Go worker (binary filled in by the caller), and every publisher in one
 * Node worker after them (none when there are no publishers).
 */
function splitForGo(plans: WorkerRoom[][]): Array<{ rooms: WorkerRoom[]; binary: string | undefined }> {
  const out: Array<{ rooms: WorkerRoom[]; binary: string | undefined }> = [];
  for (const rooms of plans) {
    const subscribers = rooms.filter((r) => r.subscribers > 0).map((r) => ({ ...r, publishers: 0 }));
    if (subscribers.length > 0) out.push({ rooms: subscribers, binary: '' });
  }
  const publishers = plans
    .flat()
    .filter((r) => r.publishers > 0)
    .map((r) => ({ ...r, subscribers: 0, slow: 0 }));
  if (publishers.length > 0) out.push({ rooms: publishers, binary: undefined });
  return out;
}

/** A self-test of the generator's receive path against the line-rate peer. */
export interface CapacitySpec {
  /** The line-rate peer (protocol 'ws'). */
  target: Target;
  subscribers: number;
  warmupMs: number;
  durationMs: number;
  workers?: number;
  cpuList?: string;
  /** Which receive path counts the frames (default 'node'). */
  receivePath?: ReceivePath;
}

export interface CapacityResult {
  connected: number;
  connectFailures: number;
  /** Frames counted over the whole run, after the peer stopped and the sockets went quiet. */
  framesTotal: number;
  /** Frames that arrived inside the measurement window. */
  framesInWindow: number;
  framesPerSec: number;
  /** Frames per generator CPU-second in the window: what one fully busy generator core counts. */
  framesPerCpuSec: number;
  /** Frames per socket read inside the window: what the per-read costs were spread over. */
  framesPerRead: number;
  generatorCpu: GeneratorCpu;
  receivePath: ReceivePath;
}

/**
 * Connects `subscribers` to the line-rate peer, which writes frames to them
 * as fast as they read once they are all connected, and counts the frames
 * the same way a fan-out run counts deliveries. Returns the frames counted
 * inside the window (by arrival time), per second and per generator
 * CPU-second, and the total once no more frames arrive.
 */
export async function runCapacity(spec: CapacitySpec): Promise<CapacityResult> {
  const workerCount = spec.workers ?? defaultWorkers(spec.subscribers, spec.cpuList);
  const shares = splitEvenly(spec.subscribers, workerCount);
  const receivePath: ReceivePath = spec.receivePath === 'go' && spec.target.protocol === 'ws' ? 'go' : 'node';
  const binary =
    receivePath === 'go' ? await ensureGoReceiver((line) => process.stderr.write(`${line}\n`)) : undefined;
  const workers = shares.map(() => new Worker(spec.cpuList, binary));
  try {
    workers.forEach((w, i) =>
      w.send({
        type: 'fanout',
        target: spec.target,
        worker: i,
        rooms: [{ name: 'line-rate', subscribers: shares[i]!, slow: 0, publishers: 0, firstPublisher: 0 }],
        totalPublishers: 1,
        ratePerPublisher: 1,
        payloadBytes: 16,
        countAll: true,
      }),
    );
    const connectedReplies = await Promise.all(workers.map((w) => w.next('connected')));
    const startAt = performance.timeOrigin + performance.now() + START_DELAY_MS;
    const winStart = startAt + spec.warmupMs;
    const winEnd = winStart + spec.durationMs;
    for (const w of workers) w.send({ type: 'start', startAt, winStart, winEnd });
    const cores = watchCores(spec.cpuList, winStart, winEnd);
    await sleep(winEnd - (performance.timeOrigin + performance.now()) + 20);
    const coreBusyFraction = cores();
    await settle(workers, CAPACITY_DRAIN_MAX_MS);
    for (const w of workers) w.send({ type: 'collect' });
    const results = await Promise.all(workers.map((w) => w.next('result')));
    const framesInWindow = results.reduce((n, r) => n + r.windowDelivered, 0);
    const cpuUs = results.reduce((n, r) => n + r.cpuUs, 0);
    const reads = results.reduce((n, r) => n + r.windowReads, 0);
    return {
      connected: connectedReplies.reduce((n, c) => n + c.connected, 0),
      connectFailures: connectedReplies.reduce((n, c) => n + c.failures, 0),
      framesTotal: results.reduce((n, r) => n + r.delivered, 0),
      framesInWindow,
      framesPerSec: framesInWindow / (spec.durationMs / 1000),
      framesPerCpuSec: cpuUs > 0 ? framesInWindow / (cpuUs / 1e6) : 0,
      framesPerRead: reads > 0 ? framesInWindow / reads : 0,
      generatorCpu: cpuResult(
        cpuUs,
        spec.durationMs,
        generatorCores(workerCount, spec.cpuList),
        coreBusyFraction,
      ),
      receivePath,
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}

/** Polls the workers until no delivery arrived for GRACE_QUIET_MS (and nothing is pending), or `maxMs` passed. */
async function settle(workers: Worker[], maxMs: number): Promise<void> {
  const started = Date.now();
  let last = -1;
  let quietSince = Date.now();
  for (;;) {
    for (const w of workers) w.send({ type: 'poll' });
    const progress = await Promise.all(workers.map((w) => w.next('progress')));
    const total = progress.reduce((n, p) => n + p.delivered, 0);
    const pending = progress.reduce((n, p) => n + p.pending, 0);
    if (total !== last) {
      last = total;
      quietSince = Date.now();
    }
    if ((Date.now() - quietSince >= GRACE_QUIET_MS && pending === 0) || Date.now() - started >= maxMs) return;
    await sleep(100);
  }
}

/**
 * Runs `concurrency` connectors (split over the workers), each looping
 * connect → upgrade → close frame → wait for the server to close, for
 * `durationMs`. Latency is from connect() to the 101 response.
 */
export async function runHandshakes(spec: HandshakeSpec): Promise<HandshakeResult> {
  const workerCount = Math.min(
    spec.concurrency,
    spec.workers ?? defaultWorkers(spec.concurrency, spec.cpuList),
  );
  const shares = splitEvenly(spec.concurrency, workerCount);
  const pools = dealPool(spec.headerPool, workerCount);
  const receivePath: ReceivePath = spec.receivePath === 'go' && spec.target.protocol === 'ws' ? 'go' : 'node';
  const binary =
    receivePath === 'go' ? await ensureGoReceiver((line) => process.stderr.write(`${line}\n`)) : undefined;
  const workers = shares.map(() => new Worker(spec.cpuList, binary));
  try {
    workers.forEach((w, i) =>
      w.send({
        type: 'handshake',
        target: spec.target,
        worker: i,
        concurrency: shares[i]!,
        durationMs: spec.durationMs,
        ...(pools ? { headerPool: pools[i]! } : {}),
      }),
    );
    const replies = await Promise.all(workers.map((w) => w.next('handshakes')));
    const histogram = new Histogram();
    let upgrades = 0;
    let failures = 0;
    let cpuUs = 0;
    let elapsedMs = 0;
    let headerReuses = 0;
    for (const r of replies) {
      histogram.merge(r.histogram, r.maxUs);
      upgrades += r.upgrades;
      failures += r.failures;
      cpuUs += r.cpuUs;
      elapsedMs = Math.max(elapsedMs, r.elapsedMs);
      headerReuses += r.headerReuses;
    }
    return {
      upgrades,
      failures,
      perSec: upgrades / (elapsedMs / 1000),
      latencyMs: {
        p50: ms(histogram.quantile(0.5)),
        p99: ms(histogram.quantile(0.99)),
        max: ms(histogram.maxUs),
      },
      generatorCpu: cpuResult(cpuUs, elapsedMs, generatorCores(workerCount, spec.cpuList)),
      headerReuses,
      receivePath,
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}

/**
 * Deals a header pool out to `workers` without overlap (value j to worker
 * j mod workers); undefined without a pool. Throws for an empty pool or one
 * with fewer values than workers.
 */
export function dealPool(pool: HeaderPool | undefined, workers: number): HeaderPool[] | undefined {
  if (pool === undefined) return undefined;
  if (pool.values.length < workers)
    throw new Error(`the header pool has ${pool.values.length} values for ${workers} workers`);
  const shares: HeaderPool[] = Array.from({ length: workers }, () => ({ name: pool.name, values: [] }));
  pool.values.forEach((value, j) => shares[j % workers]!.values.push(value));
  return shares;
}

/** Opens `connections` idle connections (spread over source addresses and worker processes), resolves once all are open; release() closes them all. */
export async function holdIdle(spec: IdleSpec): Promise<IdleHold> {
  const workerCount = spec.workers ?? Math.max(1, Math.ceil(spec.connections / SOCKETS_PER_WORKER));
  const shares = splitEvenly(spec.connections, workerCount);
  const workers = shares.map(() => new Worker(spec.cpuList));
  try {
    workers.forEach((w, i) =>
      w.send({ type: 'idle', target: spec.target, worker: i, connections: shares[i]! }),
    );
    const replies = await Promise.all(workers.map((w) => w.next('connected')));
    let released: Promise<void> | null = null;
    return {
      connected: replies.reduce((n, r) => n + r.connected, 0),
      failures: replies.reduce((n, r) => n + r.failures, 0),
      release: () => (released ??= Promise.all(workers.map((w) => w.stop())).then(() => undefined)),
    };
  } catch (error) {
    await Promise.all(workers.map((w) => w.stop()));
    throw error;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
