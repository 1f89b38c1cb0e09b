/**
 * Scenario "workers": the real `wshub serve` with `--workers 1` against
 * `--workers 2`, with the built-in inter-process relay and with
 * `--broker redis://…` (a redis-server of its own on a free port), every
 * process — primary, workers, redis-server and the load generator — on the
 * same two cores (taskset -c 0,1), so the generator takes its share of them
 * and its CPU is reported with the rest.
 *
 * Per run (configurations interleaved: relay 1, relay 2, redis 1, redis 2),
 * each on a fresh server:
 * - idle memory: 10,000 idle connections (RSS summed over the tree, after −
 *   before, per connection; the tree's RSS before and with them);
 * - handshakes: 64 concurrent connectors for 3 s → upgrades/s, upgrades per
 *   server CPU-second (primary + workers), p99;
 * - fan-out: one room of 2,000 subscribers + the publisher, 64 B, a search
 *   for the highest rate with p99 < 250 ms and nothing lost (the generator
 *   shares the cores, see P99_LIMIT_MS) → deliveries/s, with the CPU of every process in the window
 *   of the best and of the first failing step, and what was full there.
 * Scaling factors are workers-2 / workers-1 per run (paired: both measured
 * back to back), summarised over the runs. The fan-out subscribers and the
 * handshake loops run in the suite's receive path (`--generator`, default
 * the Go worker), so the generator takes less of the shared cores.
 */
import { runHandshakes, holdIdle } from '../loadgen/index.ts';
import type { AttackServer } from '../attacks/server.ts';
import { summarize, type Summary } from '../summary.ts';
import { startBroker, type Broker } from './cross-node.ts';
import { runFanout, type FanoutResult, type ReceivePath } from '../loadgen/index.ts';
import { sleep, type ScenarioContext } from './context.ts';
import { sustainable } from './fanout.ts';
import { serveCommandLine, serverPids, startServeTree, treeFds, treeRss } from './serve-tree.ts';
import { cpusOf, limiters, shareBetween, snapshot, type CpuShare, type CpuSnapshot } from './workers-cpu.ts';

/** The ways workers are joined. */
export type RelayMode = 'relay' | 'redis';

/** Fan-out figures of one configuration. */
export interface WorkersFanout {
  subscribers: number;
  payloadBytes: number;
  /** Highest passing rate × members, per run. */
  maxDeliveriesPerSec: Summary;
  /** p99 of the best passing step, per run. */
  p99AtMaxMs: Summary;
  /** A failing step's generator was busy (> 90% of its cores): the maximum may be the generator's. */
  generatorBound: boolean;
  /** CPU in the window of the best passing step and of the first failing step above it, last run. */
  cpuAtMax?: CpuShare;
  cpuAtFail?: CpuShare;
  /** What was full in the first failing step of each run ('none': latency or loss below CPU saturation). */
  limiters: string[][];
}

/** Handshake figures of one configuration. */
export interface WorkersHandshakes {
  concurrency: number;
  perSec: Summary;
  /** Upgrades per CPU-second of the whole server tree (primary + workers). */
  perServerCpuSec: Summary;
  p99Ms: Summary;
  failures: Summary;
  /** CPU over the connectors' loop, last run. */
  cpu?: CpuShare;
  limiters: string[][];
}

/** Idle-memory figures of one configuration. */
export interface WorkersIdle {
  connections: number;
  connected: Summary;
  /** (tree RSS with the connections − before) / connected. */
  rssPerConnBytes: Summary;
  /** Tree RSS before any connection, and with all of them. */
  rssBeforeBytes: Summary;
  rssWithBytes: Summary;
}

/** One configuration: relay mode × worker count. */
export interface WorkersRow {
  mode: RelayMode;
  workers: number;
  fanout: WorkersFanout;
  handshakes: WorkersHandshakes;
  idle: WorkersIdle;
}

/** workers-2 / workers-1 of one relay mode, paired per run. */
export interface WorkersScaling {
  mode: RelayMode;
  fanout: Summary;
  handshakesPerSec: Summary;
  handshakesPerCpuSec: Summary;
  rssPerConn: Summary;
}

/** Everything the scenario measured. */
export interface WorkersResults {
  cpuList: string;
  /** The server command of each configuration (the --workers value and broker URL vary). */
  command: string;
  /** The load generator's receive path for the fan-out subscribers and the handshake loops (absent before the Go worker: node). */
  receivePath?: ReceivePath;
  rows: WorkersRow[];
  scaling: WorkersScaling[];
}

/** What the scenario runs (defaults: both modes, 1 and 2 workers). */
export interface WorkersOptions {
  modes?: RelayMode[];
  workerCounts?: number[];
  /** `source` runs src/ through tsx (tests); default `dist` (bin/wshub.js). */
  entry?: 'dist' | 'source';
  /** The CPU list of everything (default '0,1'). */
  cpuList?: string;
}

/** Per-run figures of one configuration (what the summaries and scaling factors are made of). */
export interface RunFigures {
  fanoutMax: number;
  fanoutP99: number;
  fanoutGeneratorBound: boolean;
  cpuAtMax?: CpuShare;
  cpuAtFail?: CpuShare;
  fanoutLimiters: string[];
  hsPerSec: number;
  hsPerCpuSec: number;
  hsP99: number;
  hsFailures: number;
  hsCpu: CpuShare;
  idleConnected: number;
  rssPerConn: number;
  rssBefore: number;
  rssWith: number;
}

const SERVER_ARGS = ['--allow-unauthenticated', '--allow-all-origins', '--message-validation', 'off'];
const CONCURRENCY = 64;
/** Run offset of the load generator between "connected" and its first send (as in window-probe.ts). */
const START_DELAY_MS = 100;
const FD_POLL_MS = 25;

let roomCounter = 0;

/** Sizes and timings of a full or quick run. */
function plan(quick: boolean) {
  return {
    idleConnections: quick ? 1_000 : 10_000,
    handshakeMs: quick ? 1_000 : 3_000,
    subscribers: quick ? 200 : 2_000,
    payloadBytes: 64,
    startRate: quick ? 100 : 50,
    search: (quick
      ? { factor: 4, maxUpSteps: 1, bisectSteps: 0, step: { warmupMs: 300, durationMs: 700 } }
      : {
          factor: 2,
          maxUpSteps: 9,
          bisectSteps: 1,
          step: { warmupMs: 300, durationMs: 1200 },
        }) satisfies SearchPlan,
  };
}

/** The `wshub serve` flags of a configuration. */
export function serveArgs(mode: RelayMode, workers: number, brokerUrl: string | undefined): string[] {
  const args = [...SERVER_ARGS, '--log-level', 'warn', '--workers', String(workers)];
  if (mode === 'redis') {
    if (brokerUrl === undefined) throw new Error('redis mode needs a broker URL');
    args.push('--broker', brokerUrl);
  }
  return args;
}

/** Waits (bounded) until the tree's descriptors are back near `base` (the last run's sockets closed). */
async function settleFds(server: AttackServer, base: number): Promise<void> {
  for (let waited = 0; treeFds(server) > base + 16 && waited < 5_000; waited += 100) await sleep(100);
}

/**
 * Runs one fan-out step and reads the CPU of every process inside its
 * measurement window, found by counting the tree's descriptors until the
 * run's sockets are open (as window-probe.ts does for one process).
 */
async function fanoutStep(
  ctx: ScenarioContext,
  server: AttackServer,
  broker: Broker | undefined,
  cpus: number[],
  cpuList: string,
  fdBase: number,
  subscribers: number,
  payloadBytes: number,
  rate: number,
  timing: { warmupMs: number; durationMs: number },
) {
  await settleFds(server, fdBase);
  const threshold = treeFds(server) + Math.max(1, Math.floor((subscribers + 1) * 0.98));
  let start: CpuSnapshot | undefined;
  let end: CpuSnapshot | undefined;
  const timers: NodeJS.Timeout[] = [];
  const poll = setInterval(() => {
    if (treeFds(server) < threshold) return;
    clearInterval(poll);
    timers.push(
      setTimeout(() => (start = snapshot(server, broker?.pid, cpus)), START_DELAY_MS + timing.warmupMs),
      setTimeout(
        () => (end = snapshot(server, broker?.pid, cpus)),
        START_DELAY_MS + timing.warmupMs + timing.durationMs,
      ),
    );
  }, FD_POLL_MS);
  try {
    const result = await runFanout({
      target: { host: '127.0.0.1', port: server.port, protocol: 'ws', path: '/ws' },
      rooms: [{ name: `workers-${++roomCounter}`, subscribers, publishers: 1 }],
      ratePerPublisher: rate,
      payloadBytes,
      ...timing,
      cpuList,
      ...(ctx.receivePath ? { receivePath: ctx.receivePath } : {}),
    });
    const share =
      start !== undefined && end !== undefined
        ? shareBetween(start, end, result.generatorCpu.seconds, cpus.length)
        : undefined;
    if (share === undefined) ctx.log('    (measurement window not found: no CPU figures for this step)');
    return { result, share };
  } finally {
    clearInterval(poll);
    for (const t of timers) clearTimeout(t);
  }
}

/** How the fan-out search steps: up by `factor` at most `maxUpSteps` times, then bisects. */
export interface SearchPlan {
  factor: number;
  maxUpSteps: number;
  bisectSteps: number;
  step: { warmupMs: number; durationMs: number };
}

/** One step of the search. */
export interface SearchStep {
  ratePerPublisher: number;
  deliveriesPerSec: number;
  p99Ms: number;
  lost: number;
  generatorLimited: boolean;
  pass: boolean;
}

/**
 * A rate passes when nothing is lost, every connection was made and p99
 * stays below this. It is looser than the hub fan-out's 100 ms because the
 * generator shares the server's cores here: its own turn on them is part of
 * every latency it measures.
 */
export const P99_LIMIT_MS = 250;

/**
 * The highest passing rate per publisher: from `startRate` up by
 * `plan.factor` until a step fails, then `plan.bisectSteps` bisections; when
 * the start fails, down by the factor (twice at most) until one passes.
 * Returns 0 when nothing passed.
 */
export async function searchRate(
  ctx: ScenarioContext,
  startRate: number,
  plan: SearchPlan,
  run: (rate: number) => Promise<FanoutResult>,
): Promise<{ best: number; steps: SearchStep[]; generatorBound: boolean }> {
  const steps: SearchStep[] = [];
  const step = async (rate: number): Promise<SearchStep> => {
    const result = await run(rate);
    const s: SearchStep = {
      ratePerPublisher: rate,
      deliveriesPerSec: result.deliveriesPerSec,
      p99Ms: result.latencyMs.p99,
      lost: result.lost,
      generatorLimited: result.generatorCpu.limited,
      pass: sustainable(result, P99_LIMIT_MS),
    };
    steps.push(s);
    ctx.log(
      `    rate ${rate}/s → ${Math.round(s.deliveriesPerSec)} deliveries/s, p99 ${s.p99Ms.toFixed(1)} ms, ` +
        `lost ${s.lost}${s.generatorLimited ? ' (generator-limited)' : ''} ${s.pass ? 'pass' : 'FAIL'}`,
    );
    return s;
  };
  let best = 0;
  let failed = 0;
  let generatorBound = false;
  let rate = Math.max(1, Math.round(startRate));
  for (let i = 0; i < plan.maxUpSteps; i++) {
    const s = await step(rate);
    if (!s.pass) {
      failed = rate;
      generatorBound = s.generatorLimited;
      break;
    }
    best = rate;
    rate = Math.round(rate * plan.factor);
  }
  if (best === 0 && failed > 0) {
    for (let i = 0, down = failed; i < 2 && best === 0; i++) {
      down = Math.max(1, Math.round(down / plan.factor));
      if ((await step(down)).pass) best = down;
      else failed = down;
    }
  }
  if (best > 0 && failed > best) {
    let lo = best;
    let hi = failed;
    for (let i = 0; i < plan.bisectSteps && hi - lo > Math.max(1, lo * 0.05); i++) {
      const mid = Math.round((lo + hi) / 2);
      const s = await step(mid);
      if (s.pass) lo = mid;
      else {
        hi = mid;
        generatorBound ||= s.generatorLimited;
      }
    }
    best = lo;
  }
  return { best, steps, generatorBound };
}

/** Measures one configuration on a fresh server: idle memory, handshakes, fan-out search. */
async function measureOnce(
  ctx: ScenarioContext,
  options: Required<WorkersOptions>,
  mode: RelayMode,
  workers: number,
  broker: Broker | undefined,
  startRate: number,
): Promise<RunFigures> {
  const p = plan(ctx.quick);
  const cpus = cpusOf(options.cpuList);
  const server = await startServeTree({
    args: serveArgs(mode, workers, broker?.url),
    cpuList: options.cpuList,
    entry: options.entry,
  });
  try {
    const found = serverPids(server).length;
    if (found !== workers + 1)
      throw new Error(`expected a primary and ${workers} worker(s), found ${found} processes`);
    const target = { host: '127.0.0.1', port: server.port, protocol: 'ws' as const, path: '/ws' };
    await sleep(500);
    const fdBase = treeFds(server);

    // Idle memory first, on the fresh tree.
    const rssBefore = treeRss(server);
    const hold = await holdIdle({ target, connections: p.idleConnections, cpuList: options.cpuList });
    let rssWith: number;
    try {
      await sleep(1_000);
      rssWith = treeRss(server);
    } finally {
      await hold.release();
    }
    const rssPerConn = (rssWith - rssBefore) / Math.max(1, hold.connected);
    ctx.log(
      `    idle: ${hold.connected} connected (failures ${hold.failures}), RSS ${mb(rssBefore)} → ${mb(rssWith)} MB, ` +
        `${Math.round(rssPerConn)} B/connection`,
    );
    await settleFds(server, fdBase);

    // Handshakes: the tree's CPU sampled every 100 ms; the loop is the last `handshakeMs` of server activity.
    const samples: CpuSnapshot[] = [snapshot(server, broker?.pid, cpus)];
    const sampler = setInterval(() => samples.push(snapshot(server, broker?.pid, cpus)), 100);
    let hs;
    try {
      hs = await runHandshakes({
        target,
        concurrency: CONCURRENCY,
        durationMs: p.handshakeMs,
        cpuList: options.cpuList,
        ...(ctx.receivePath ? { receivePath: ctx.receivePath } : {}),
      });
    } finally {
      clearInterval(sampler);
    }
    samples.push(snapshot(server, broker?.pid, cpus));
    const total = (s: CpuSnapshot): number => s.primary + [...s.workers.values()].reduce((a, b) => a + b, 0);
    const serverCpu = total(samples[samples.length - 1]!) - total(samples[0]!);
    const hsCpu = loopShare(samples, total, p.handshakeMs, hs.generatorCpu.seconds, cpus.length);
    ctx.log(
      `    handshakes: ${Math.round(hs.perSec)}/s, ${hs.failures} failures, p99 ${hs.latencyMs.p99.toFixed(1)} ms, ` +
        `server CPU ${serverCpu.toFixed(2)} s, generator CPU ${hs.generatorCpu.seconds.toFixed(2)} s`,
    );
    await settleFds(server, fdBase);

    // Fan-out: the highest sustainable rate, with the CPU of each step's window.
    const shares = new Map<number, CpuShare | undefined>();
    const search = await searchRate(ctx, startRate, p.search, async (rate) => {
      const { result, share } = await fanoutStep(
        ctx,
        server,
        broker,
        cpus,
        options.cpuList,
        fdBase,
        p.subscribers,
        p.payloadBytes,
        rate,
        p.search.step,
      );
      shares.set(rate, share);
      return result;
    });
    const members = p.subscribers + 1;
    const best = search.steps.find((s) => s.pass && s.ratePerPublisher === search.best);
    const failed = search.steps
      .filter((s) => !s.pass && s.ratePerPublisher > search.best)
      .sort((a, b) => a.ratePerPublisher - b.ratePerPublisher)[0];
    const cpuAtFail = failed ? shares.get(failed.ratePerPublisher) : undefined;
    const fanoutLimiters = failed === undefined ? ['not reached'] : cpuAtFail ? limiters(cpuAtFail) : [];
    return {
      fanoutMax: search.best * members,
      fanoutP99: best?.p99Ms ?? NaN,
      fanoutGeneratorBound: search.generatorBound,
      ...(shares.get(search.best) ? { cpuAtMax: shares.get(search.best)! } : {}),
      ...(cpuAtFail ? { cpuAtFail } : {}),
      fanoutLimiters: fanoutLimiters.length > 0 ? fanoutLimiters : ['none'],
      hsPerSec: hs.perSec,
      hsPerCpuSec: serverCpu > 0 ? hs.upgrades / serverCpu : NaN,
      hsP99: hs.latencyMs.p99,
      hsFailures: hs.failures,
      hsCpu,
      idleConnected: hold.connected,
      rssPerConn,
      rssBefore,
      rssWith,
    };
  } finally {
    await server.stop();
  }
}

/**
 * The CPU share over the connectors' loop: the `loopMs` ending at the last
 * sample where the server's CPU still grew (the loop ends, the server goes quiet).
 */
function loopShare(
  samples: CpuSnapshot[],
  total: (s: CpuSnapshot) => number,
  loopMs: number,
  generatorCpuSec: number,
  cores: number,
): CpuShare {
  let endIndex = samples.length - 1;
  while (endIndex > 0 && total(samples[endIndex]!) - total(samples[endIndex - 1]!) < 0.005) endIndex--;
  const end = samples[endIndex]!;
  let startIndex = endIndex;
  while (startIndex > 0 && end.at - samples[startIndex]!.at < loopMs) startIndex--;
  const start = samples[startIndex]!;
  // The generator measured itself over the whole loop; scale it to this span.
  const spanSec = (end.at - start.at) / 1000;
  return shareBetween(start, end, generatorCpuSec * Math.min(1, spanSec / (loopMs / 1000)), cores);
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/** Summaries of a configuration's runs. */
function rowOf(mode: RelayMode, workers: number, runs: RunFigures[], quick: boolean): WorkersRow {
  const p = plan(quick);
  const last = runs[runs.length - 1];
  return {
    mode,
    workers,
    fanout: {
      subscribers: p.subscribers,
      payloadBytes: p.payloadBytes,
      maxDeliveriesPerSec: summarize(runs.map((r) => r.fanoutMax)),
      p99AtMaxMs: summarize(runs.map((r) => r.fanoutP99)),
      generatorBound: runs.some((r) => r.fanoutGeneratorBound),
      ...(last?.cpuAtMax ? { cpuAtMax: last.cpuAtMax } : {}),
      ...(last?.cpuAtFail ? { cpuAtFail: last.cpuAtFail } : {}),
      limiters: runs.map((r) => r.fanoutLimiters),
    },
    handshakes: {
      concurrency: CONCURRENCY,
      perSec: summarize(runs.map((r) => r.hsPerSec)),
      perServerCpuSec: summarize(runs.map((r) => r.hsPerCpuSec)),
      p99Ms: summarize(runs.map((r) => r.hsP99)),
      failures: summarize(runs.map((r) => r.hsFailures)),
      ...(last ? { cpu: last.hsCpu } : {}),
      limiters: runs.map((r) => {
        const l = limiters(r.hsCpu);
        return l.length > 0 ? l : ['none'];
      }),
    },
    idle: {
      connections: p.idleConnections,
      connected: summarize(runs.map((r) => r.idleConnected)),
      rssPerConnBytes: summarize(runs.map((r) => r.rssPerConn)),
      rssBeforeBytes: summarize(runs.map((r) => r.rssBefore)),
      rssWithBytes: summarize(runs.map((r) => r.rssWith)),
    },
  };
}

/**
 * workers-2 / workers-1 per relay mode, paired run by run (runs that
 * failed on either side are left out).
 */
export function scalingOf(
  byConfig: Map<string, Array<RunFigures | undefined>>,
  modes: RelayMode[],
): WorkersScaling[] {
  const out: WorkersScaling[] = [];
  for (const mode of modes) {
    const one = byConfig.get(`${mode}/1`);
    const two = byConfig.get(`${mode}/2`);
    if (!one || !two) continue;
    const pairs = one.flatMap((a, i) => {
      const b = two[i];
      return a && b ? [[a, b] as const] : [];
    });
    if (pairs.length === 0) continue;
    const ratio = (f: (r: RunFigures) => number) => summarize(pairs.map(([a, b]) => f(b) / f(a)));
    out.push({
      mode,
      fanout: ratio((r) => r.fanoutMax),
      handshakesPerSec: ratio((r) => r.hsPerSec),
      handshakesPerCpuSec: ratio((r) => r.hsPerCpuSec),
      rssPerConn: ratio((r) => r.rssPerConn),
    });
  }
  return out;
}

/** Runs the workers scenario (wshub only). */
export async function runWorkersScenario(
  ctx: ScenarioContext,
  opts: WorkersOptions = {},
): Promise<WorkersResults> {
  const options: Required<WorkersOptions> = {
    modes: opts.modes ?? ['relay', 'redis'],
    workerCounts: opts.workerCounts ?? [1, 2],
    entry: opts.entry ?? 'dist',
    cpuList: opts.cpuList ?? '0,1',
  };
  const p = plan(ctx.quick);
  const byConfig = new Map<string, Array<RunFigures | undefined>>();
  const bestRate = new Map<string, number>();
  let broker: Broker | undefined;
  try {
    if (options.modes.includes('redis')) broker = await startBroker('redis', options.cpuList);
    for (let run = 0; run < ctx.runs; run++) {
      for (const mode of options.modes) {
        for (const workers of options.workerCounts) {
          const key = `${mode}/${workers}`;
          ctx.log(`workers / ${mode}, --workers ${workers}, run ${run + 1} of ${ctx.runs}`);
          const list = byConfig.get(key) ?? [];
          byConfig.set(key, list);
          try {
            const previous = bestRate.get(key);
            const start = previous !== undefined && previous > 0 ? previous / 2 : p.startRate;
            // Only the Redis rows read redis-server's CPU: in relay mode it idles and is no part of the server.
            const figures = await measureOnce(
              ctx,
              options,
              mode,
              workers,
              mode === 'redis' ? broker : undefined,
              start,
            );
            bestRate.set(key, figures.fanoutMax / (p.subscribers + 1));
            list.push(figures);
          } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            ctx.errors.push({
              scenario: 'workers',
              target: `wshub (${mode}, --workers ${workers})`,
              message,
            });
            ctx.log(`  ! workers / ${mode}, --workers ${workers}: ${message}`);
            list.push(undefined);
          }
        }
      }
    }
  } finally {
    await broker?.stop();
  }
  const rows: WorkersRow[] = [];
  for (const mode of options.modes) {
    for (const workers of options.workerCounts) {
      const runs = (byConfig.get(`${mode}/${workers}`) ?? []).flatMap((r) => (r ? [r] : []));
      if (runs.length > 0) rows.push(rowOf(mode, workers, runs, ctx.quick));
    }
  }
  return {
    cpuList: options.cpuList,
    receivePath: ctx.receivePath ?? 'node',
    command: serveCommandLine({
      args: serveArgs('relay', 2, undefined).concat(['[--broker redis://127.0.0.1:PORT]']),
      cpuList: options.cpuList,
      entry: options.entry,
    }),
    rows,
    scaling: scalingOf(byConfig, options.modes),
  };
}
