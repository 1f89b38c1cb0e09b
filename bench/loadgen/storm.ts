/**
 * The reconnection-storm run: a steady group (subscribers and a publisher in
 * one room) receives messages at a fixed rate the whole time while a storm
 * of clients connects to another room within `spreadMs`, from many source
 * addresses and several worker processes (storm-worker.ts), retrying when
 * refused. Returns the storm's figures (time until all joined, connect
 * latency, refusals and retries), the steady group's delivery latency and
 * loss before, during and after the storm, and the server's CPU and peak RSS
 * over the storm when a probe is given.
 *
 * Timeline of one run (absolute ms):
 *   publish start → warm-up → "before" window (beforeMs) → storm start T0 →
 *   every client done (joined or given up), at least T0 + spreadMs: "during" →
 *   "after" window (afterMs) → publisher stops → roll call → grace → collect.
 * Everything is bounded: connects, each attempt, the retries (deadline
 * after T0), the roll call and the grace period; workers that do not answer
 * are killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Histogram } from './histogram.ts';
import { nowMs } from './storm-client.ts';
import type { Target } from './index.ts';
import type {
  FromStormWorker,
  RetryPolicy,
  StormWorkerResult,
  ToStormWorker,
  WindowCounts,
} from './storm-messages.ts';

export type { RetryPolicy } from './storm-messages.ts';

const workerFile = fileURLToPath(new URL('./storm-worker.ts', import.meta.url));
/** Most storm clients one worker process holds (each is one descriptor; the limit is 20,000 per process). */
export const MAX_CLIENTS_PER_WORKER = 15_000;
const REPLY_TIMEOUT_MS = 30_000;
const PROBE_EVERY_MS = 100;
const ROLL_CALL_MAX_MS = 5_000;
const GRACE_QUIET_MS = 300;
const GRACE_MAX_MS = 3_000;
/** Storm workers run at this niceness, so that the steady group's process (on the same core) is served first. */
const STORM_NICENESS = 10;

/** The default retry policy of storm clients. */
export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 10,
  attemptTimeoutMs: 8_000,
  backoffMs: 250,
  maxBackoffMs: 4_000,
  jitterMs: 500,
  maxRetryAfterSec: 10,
};

/** What the server looks like from outside (the peer's /proc figures). */
export interface ServerProbe {
  cpuSeconds(): number;
  rssBytes(): number;
  /** Busy CPU-seconds of the server's core since boot (all processes); gives others' share of it. */
  coreBusySeconds?(): number;
}

export interface StormSpec {
  target: Target;
  steadyRoom: string;
  stormRoom: string;
  /** Steady subscribers (the publisher is one more member). */
  steadySubscribers: number;
  /** Messages/s of the steady publisher. */
  steadyRate: number;
  payloadBytes: number;
  stormClients: number;
  /** The storm's clients start evenly (jittered) within this many ms. */
  spreadMs: number;
  /** Source addresses of the storm: 127.0.0.2 … 127.0.0.(1 + addresses), at most 253. */
  addresses: number;
  /** Storm worker processes (default: enough for MAX_CLIENTS_PER_WORKER, at least 4). */
  workers?: number;
  warmupMs: number;
  beforeMs: number;
  afterMs: number;
  /** No attempt starts later than this after the storm's start. */
  deadlineMs: number;
  retry?: Partial<RetryPolicy>;
  /** taskset CPU list of the generator processes. */
  cpuList?: string;
  probe?: ServerProbe;
}

/** Latency and loss of the steady group in one window. */
export interface SteadyWindow {
  fromMs: number;
  toMs: number;
  sent: number;
  expected: number;
  delivered: number;
  lost: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface StormResult {
  clients: number;
  connected: number;
  gaveUp: number;
  closedAfterJoin: number;
  /** Storm start → last join acknowledged (NaN unless every client joined). */
  allJoinedMs: number;
  /** Storm start → half and 99% of the clients joined (NaN when fewer joined). */
  halfJoinedMs: number;
  p99JoinedMs: number;
  /** The storm's "during" window: T0 → every client done, at least spreadMs. */
  stormMs: number;
  attempts: number;
  retries: number;
  retryAfterHonoured: number;
  refusals: Record<string, number>;
  failures: Record<string, number>;
  /** connect() → join acknowledged, successful attempts. */
  attemptLatencyMs: { p50: number; p99: number; max: number };
  /** Scheduled start → join acknowledged, retries included. */
  clientLatencyMs: { p50: number; p99: number; max: number };
  /** Latest first attempt behind its schedule (the generator's lag), ms. */
  maxLaunchLagMs: number;
  rollCall: { expected: number; received: number };
  steady: {
    members: number;
    connectFailures: number;
    before: SteadyWindow;
    during: SteadyWindow;
    after: SteadyWindow;
  };
  /**
   * Server CPU-seconds over the storm window, its busy share, RSS before and at peak (storm and
   * after), and the share of the server's core other processes took in the window (NaN unknown).
   */
  server?: {
    cpuSec: number;
    busyFraction: number;
    rssBeforeBytes: number;
    peakRssBytes: number;
    otherLoad: number;
  };
  /** Generator CPU-seconds of all workers from the storm's start until they were done. */
  generatorCpuSec: number;
}

/** A worker process and a queue of its replies. */
class StormWorkerProcess {
  private readonly child: ChildProcess;
  private readonly inbox: FromStormWorker[] = [];
  private waiter: (() => void) | null = null;
  private exited = false;

  constructor(cpuList: string | undefined, niceness: number) {
    const node = [process.execPath, '--import', 'tsx', workerFile];
    const command = [...(cpuList !== undefined ? ['taskset', '-c', cpuList] : [])];
    if (niceness > 0) command.push('nice', '-n', String(niceness));
    command.push(...node);
    this.child = spawn(command[0]!, command.slice(1), { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromStormWorker) => {
      this.inbox.push(m);
      this.waiter?.();
    });
    const gone = (): void => {
      this.exited = true;
      this.waiter?.();
    };
    this.child.on('exit', gone);
    this.child.on('error', gone);
  }

  send(message: ToStormWorker): void {
    if (!this.exited && this.child.connected) this.child.send(message);
  }

  /** The next reply of type `type` (earlier replies of other types are dropped), bounded in time. */
  async next<T extends FromStormWorker['type']>(
    type: T,
    timeoutMs = REPLY_TIMEOUT_MS,
  ): Promise<Extract<FromStormWorker, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<FromStormWorker, { type: T }>;
      if (this.exited) throw new Error(`storm generator worker exited before sending '${type}'`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`storm generator worker sent no '${type}' within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  /** Releases the worker's sockets, then makes sure the process is gone. */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.send({ type: 'release' });
    const gone = new Promise<void>((resolve) => {
      if (this.exited) resolve();
      else this.child.once('exit', () => resolve());
    });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

const toMs = (us: number): number => us / 1000;

function latency(h: Histogram): { p50: number; p99: number; max: number } {
  return { p50: toMs(h.quantile(0.5)), p99: toMs(h.quantile(0.99)), max: toMs(h.maxUs) };
}

function steadyWindow(from: number, to: number, w: WindowCounts, members: number): SteadyWindow {
  const h = new Histogram();
  h.merge(w.histogram, w.maxUs);
  const expected = w.sent * members;
  return {
    fromMs: from,
    toMs: to,
    sent: w.sent,
    expected,
    delivered: w.delivered,
    lost: Math.max(0, expected - w.delivered),
    p50Ms: toMs(h.quantile(0.5)),
    p99Ms: toMs(h.quantile(0.99)),
    maxMs: toMs(h.maxUs),
  };
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** Samples the server's CPU and RSS every PROBE_EVERY_MS while a run lasts. */
class ProbeSampler {
  readonly samples: Array<{ at: number; cpu: number; rss: number; core: number }> = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly probe: ServerProbe) {
    this.sample();
    this.timer = setInterval(() => this.sample(), PROBE_EVERY_MS);
  }

  sample(): void {
    this.samples.push({
      at: nowMs(),
      cpu: this.probe.cpuSeconds(),
      rss: this.probe.rssBytes(),
      core: this.probe.coreBusySeconds?.() ?? NaN,
    });
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /**
   * Server CPU over [from, to) (the last sample at or before `from` to the first at or after
   * `to`), and the share of its core that other processes took over those samples' span.
   */
  cpuBetween(from: number, to: number): { cpuSec: number; otherLoad: number } {
    const before = [...this.samples].reverse().find((s) => s.at <= from) ?? this.samples[0]!;
    const after = this.samples.find((s) => s.at >= to) ?? this.samples[this.samples.length - 1]!;
    const cpuSec = after.cpu - before.cpu;
    const span = (after.at - before.at) / 1000;
    const others = (after.core - before.core - cpuSec) / span;
    return { cpuSec, otherLoad: span > 0 ? Math.min(1, Math.max(0, others)) : NaN };
  }

  rssAt(at: number): number {
    return ([...this.samples].reverse().find((s) => s.at <= at) ?? this.samples[0]!).rss;
  }

  peakRss(from: number, to: number): number {
    let peak = NaN;
    for (const s of this.samples) if (s.at >= from && s.at <= to && !(s.rss <= peak)) peak = s.rss;
    return peak;
  }
}

/** Runs one reconnection storm; see the module comment. */
export async function runStorm(spec: StormSpec): Promise<StormResult> {
  if (spec.addresses < 1 || spec.addresses > 253) throw new Error('addresses must be 1 … 253');
  const retry: RetryPolicy = { ...DEFAULT_RETRY, ...spec.retry };
  const stormWorkers = spec.workers ?? Math.max(4, Math.ceil(spec.stormClients / MAX_CLIENTS_PER_WORKER));
  const steady = new StormWorkerProcess(spec.cpuList, 0);
  const storm = Array.from(
    { length: stormWorkers },
    () => new StormWorkerProcess(spec.cpuList, STORM_NICENESS),
  );
  const all = [steady, ...storm];
  let sampler: ProbeSampler | undefined;
  try {
    steady.send({
      type: 'steady',
      target: spec.target,
      room: spec.steadyRoom,
      subscribers: spec.steadySubscribers,
      ratePerSec: spec.steadyRate,
      payloadBytes: spec.payloadBytes,
    });
    storm.forEach((w, i) =>
      w.send({
        type: 'storm',
        target: spec.target,
        room: spec.stormRoom,
        worker: i,
        workers: stormWorkers,
        clients: spec.stormClients,
        addresses: spec.addresses,
        rollCaller: i === 0,
        retry,
      }),
    );
    const steadyReady = await steady.next('ready');
    if (steadyReady.connected === 0) throw new Error('no steady client could connect');
    const stormReady = await Promise.all(storm.map((w) => w.next('ready')));
    if (stormReady[0]!.connected !== 1) throw new Error('the roll-call connection could not connect');

    if (spec.probe) sampler = new ProbeSampler(spec.probe);
    const publishAt = nowMs() + 100;
    const beforeFrom = publishAt + spec.warmupMs;
    const t0 = beforeFrom + spec.beforeMs;
    const deadlineAt = t0 + spec.deadlineMs;
    steady.send({ type: 'publish', startAt: publishAt });
    for (const w of storm) w.send({ type: 'launch', startAt: t0, spreadMs: spec.spreadMs, deadlineAt });

    // Wait until every storm client is done (joined or given up); attempts end by deadline + attempt timeout.
    const hardStop = deadlineAt + retry.attemptTimeoutMs + 2_000;
    await sleep(t0 - nowMs());
    let lastReadyAt = 0;
    for (;;) {
      await sleep(100);
      for (const w of storm) w.send({ type: 'poll' });
      const progress = await Promise.all(storm.map((w) => w.next('progress')));
      const done = progress.reduce((n, p) => n + p.done, 0);
      lastReadyAt = Math.max(...progress.map((p) => p.lastReadyAt));
      if (done >= spec.stormClients || nowMs() > hardStop) break;
    }
    const stormEnd = Math.max(nowMs(), t0 + spec.spreadMs);
    const afterTo = stormEnd + spec.afterMs;
    await sleep(afterTo - nowMs());
    steady.send({ type: 'stop', at: afterTo });

    // Roll call: one message to the storm room; count receipts until they stop or all arrived.
    let connectedNow = 0;
    for (const w of storm) w.send({ type: 'poll' });
    connectedNow = (await Promise.all(storm.map((w) => w.next('progress')))).reduce(
      (n, p) => n + p.connected,
      0,
    );
    storm[0]!.send({ type: 'rollcall' });
    const rollStart = Date.now();
    let received = 0;
    let lastChange = Date.now();
    while (Date.now() - rollStart < ROLL_CALL_MAX_MS) {
      await sleep(50);
      for (const w of storm) w.send({ type: 'poll' });
      const got = (await Promise.all(storm.map((w) => w.next('progress')))).reduce(
        (n, p) => n + p.rollCallReceived,
        0,
      );
      if (got !== received) lastChange = Date.now();
      received = got;
      if (received >= connectedNow || (received > 0 && Date.now() - lastChange > 1_000)) break;
    }

    // Grace: in-flight steady deliveries.
    const graceStart = Date.now();
    let last = -1;
    let quietSince = Date.now();
    while (Date.now() - graceStart < GRACE_MAX_MS) {
      steady.send({ type: 'poll' });
      const p = await steady.next('progress');
      if (p.delivered !== last) {
        last = p.delivered;
        quietSince = Date.now();
      } else if (Date.now() - quietSince >= GRACE_QUIET_MS) break;
      await sleep(50);
    }
    sampler?.stop();

    const windows: Array<[number, number]> = [
      [beforeFrom, t0],
      [t0, stormEnd],
      [stormEnd, afterTo],
    ];
    steady.send({ type: 'collect', windows });
    for (const w of storm) w.send({ type: 'collect', windows: [] });
    const steadyResult = await steady.next('steady-result');
    const stormResults: StormWorkerResult[] = await Promise.all(storm.map((w) => w.next('storm-result')));

    const attempt = new Histogram();
    const client = new Histogram();
    const ready = new Histogram();
    const refusals: Record<string, number> = {};
    const failures: Record<string, number> = {};
    let connected = 0;
    let gaveUp = 0;
    let closedAfterJoin = 0;
    let attempts = 0;
    let retryAfterHonoured = 0;
    let rollCallReceived = 0;
    let generatorCpuUs = 0;
    let maxLaunchLagMs = 0;
    let tried = 0;
    for (const r of stormResults) {
      tried += r.tried;
      attempt.merge(r.attemptHistogram, r.attemptMaxUs);
      client.merge(r.clientHistogram, r.clientMaxUs);
      ready.merge(r.readyHistogram, r.readyMaxUs);
      addCounts(refusals, r.refusals);
      addCounts(failures, r.failures);
      connected += r.connected;
      gaveUp += r.gaveUp;
      closedAfterJoin += r.closedAfterJoin;
      attempts += r.attempts;
      retryAfterHonoured += r.retryAfterHonoured;
      rollCallReceived += r.rollCallReceived;
      generatorCpuUs += r.cpuUs;
      maxLaunchLagMs = Math.max(maxLaunchLagMs, r.maxLaunchLagMs);
      lastReadyAt = Math.max(lastReadyAt, r.lastReadyAt);
    }
    const clients = spec.stormClients;
    const members = steadyResult.members;
    const [before, during, after] = windows.map(([from, to], i) =>
      steadyWindow(from - t0, to - t0, steadyResult.windows[i]!, members),
    ) as [SteadyWindow, SteadyWindow, SteadyWindow];
    const result: StormResult = {
      clients,
      connected,
      gaveUp,
      closedAfterJoin,
      allJoinedMs: connected === clients && clients > 0 ? lastReadyAt - t0 : NaN,
      halfJoinedMs: connected >= clients / 2 ? toMs(ready.quantile(clients / 2 / connected)) : NaN,
      p99JoinedMs: connected >= clients * 0.99 ? toMs(ready.quantile((clients * 0.99) / connected)) : NaN,
      stormMs: stormEnd - t0,
      attempts,
      retries: attempts - tried,
      retryAfterHonoured,
      refusals,
      failures,
      attemptLatencyMs: latency(attempt),
      clientLatencyMs: latency(client),
      maxLaunchLagMs,
      rollCall: { expected: connectedNow, received: rollCallReceived },
      steady: {
        members,
        connectFailures: steadyReady.failures,
        before,
        during,
        after,
      },
      generatorCpuSec: generatorCpuUs / 1e6,
    };
    if (sampler !== undefined) {
      const { cpuSec, otherLoad } = sampler.cpuBetween(t0, stormEnd);
      result.server = {
        cpuSec,
        otherLoad,
        busyFraction: cpuSec / ((stormEnd - t0) / 1000),
        rssBeforeBytes: sampler.rssAt(t0),
        peakRssBytes: sampler.peakRss(t0, afterTo),
      };
    }
    return result;
  } finally {
    sampler?.stop();
    await Promise.all(all.map((w) => w.stop()));
  }
}
