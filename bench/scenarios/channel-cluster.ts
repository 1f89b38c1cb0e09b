/**
 * Scenario "channels-cluster": cross-node channel fan-out through Redis,
 * wshub against Centrifugo v6.9.1 with its Redis engine. Per target, one
 * fresh redis-server and two server nodes joined through it: N subscribers
 * (Centrifuge client protocol v2, JSON) on node B, one publisher posting
 * `POST /api/publish` to node A's server API at an open-loop rate, so every
 * publication crosses Redis before reaching a subscriber. The three server
 * processes (both nodes and redis-server) are pinned to the server core
 * (Centrifugo with GOMAXPROCS=1), the load generator to the other, and the
 * targets take turns cell by cell in one invocation.
 *
 * Per run and cell: a fixed rate (CLUSTER_FIXED_DELIVERIES deliveries/s)
 * for latency and CPU per delivery at equal work, then the maximum
 * sustainable rate search of the fan-out scenario (no loss, p99 < 100 ms).
 * CPU is read from /proc for node A, node B and redis-server inside the
 * measurement window; loss counts every publication attempted × N against
 * every push received over the whole run.
 *
 * History: every cell is measured with history off on both targets
 * (wshub nodes with `--broker redis://` only, carrying publications;
 * Centrifugo's channels with `history_size: 0`), and the first size again
 * with history kept in Redis on both (CLUSTER_HISTORY: the last
 * CLUSTER_HISTORY.size publications per channel for CLUSTER_HISTORY.ttlSec,
 * recovery allowed; wshub nodes with `--history`, i.e. the Redis channel
 * engine, so every publication runs its publish script, stream append and
 * pub/sub in one step, as Centrifugo's Redis engine does). Each history
 * setting gets its own fresh clusters; cells carry the setting in
 * `history`. After every history-on run the channel's stream is read back
 * from Redis (XLEN): a run whose stream does not hold min(history size,
 * publications accepted) entries fails the cell, so history-on figures can
 * never silently be history-off ones. Only the first size has a history-on
 * variant so that a full run (`--runs 3`) stays within about 8 minutes.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { runFanout, type ChannelAccess, type Target } from '../loadgen/index.ts';
import { coreBusySeconds, procCpuSeconds, startPeer } from '../peer-process.ts';
import { startCentrifugo, type ChannelPeer } from '../peers/centrifugo.ts';
import type { ChannelClusterCell, RateStep } from '../results.ts';
import { summarize } from '../summary.ts';
import { CHANNEL_TARGETS, CHANNEL_WS_PATH, RETRY_OTHER_LOAD, checkPublishApi } from './channel-fanout.ts';
import { repeat, type ScenarioContext } from './context.ts';
import { startBroker, type Broker } from './cross-node.ts';
import { searchMax, sustainable, type Measured, type SearchPlan, type Timing } from './fanout.ts';
import { probeWindow } from './window-probe.ts';

/** The name of the scenario on the command line and in error records. */
export const CLUSTER_SCENARIO = 'channels-cluster';
/** Total deliveries/s of the fixed-rate runs: well below what either target sustains across two nodes. */
export const CLUSTER_FIXED_DELIVERIES = 20_000;
/** The history of the history-on cells, the same on both targets. */
export const CLUSTER_HISTORY = { size: 100, ttlSec: 300 } as const;

/** Two nodes of one target and the Redis that joins them. */
export interface ChannelCluster {
  target: string;
  /** Publications each channel keeps in Redis; 0: no history. */
  historySize: number;
  redis: Broker;
  /** Takes the publisher (its server API). */
  a: ChannelPeer;
  /** Takes the subscribers. */
  b: ChannelPeer;
  stop(): Promise<void>;
}

/** A measured run with the CPU of each of the three processes in its window. */
export interface ClusterMeasured extends Measured {
  cpuSecA: number;
  cpuSecB: number;
  cpuSecRedis: number;
  /** With history: entries of the run's channel stream in Redis after the run (see checkHistoryKept). */
  historyLength?: number;
}

let channelCounter = 0;

/**
 * Starts one wshub channel node on `redisUrl`; every node of a cluster gets
 * the same API key. With `historySize` > 0 the node keeps channel history
 * in that Redis (the Redis channel engine, CLUSTER_HISTORY.ttlSec).
 */
async function startWshubNode(
  cpuList: string,
  redisUrl: string,
  apiKey: string,
  historySize: number,
): Promise<ChannelPeer> {
  const history =
    historySize > 0
      ? ['--history', String(historySize), '--history-ttl', String(CLUSTER_HISTORY.ttlSec)]
      : [];
  const peer = await startPeer({
    name: 'wshub-channels',
    args: ['--broker', redisUrl, ...history],
    cpuList,
    env: { ...process.env, WSHUB_BENCH_API_KEY: apiKey },
  });
  return { peer, wsPath: CHANNEL_WS_PATH, access: { apiKey }, stop: () => peer.stop() };
}

/**
 * Starts redis-server and two nodes of `target` ('wshub' or 'centrifugo')
 * joined through it, all pinned to `cpuList`, and checks node A's API.
 * `historySize` > 0: every channel keeps that many publications in the
 * Redis (CLUSTER_HISTORY.ttlSec, recovery allowed). The caller must
 * `stop()` the cluster; a failure stops what was started.
 */
export async function startChannelCluster(
  target: string,
  cpuList: string,
  log: (line: string) => void,
  historySize = 0,
): Promise<ChannelCluster> {
  const redis = await startBroker('redis', cpuList);
  const nodes: ChannelPeer[] = [];
  const stop = async (): Promise<void> => {
    for (const node of nodes.splice(0)) await node.stop();
    await redis.stop();
  };
  try {
    const apiKey = randomBytes(24).toString('hex');
    for (let i = 0; i < 2; i++) {
      nodes.push(
        target === 'centrifugo'
          ? await startCentrifugo(
              cpuList,
              log,
              historySize > 0
                ? { redisUrl: redis.url, historySize, historyTtlSec: CLUSTER_HISTORY.ttlSec }
                : { redisUrl: redis.url },
              apiKey,
            )
          : await startWshubNode(cpuList, redis.url, apiKey, historySize),
      );
    }
    const [a, b] = nodes as [ChannelPeer, ChannelPeer];
    await checkPublishApi(a.peer.port, a.access);
    return { target, historySize, redis, a, b, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Entries of `channel`'s history stream in the Redis at `redisUrl`: the
 * stream key whose name ends in `:channel` (wshub, `wshub:{tag}:stream:NAME`)
 * or `.channel` (Centrifugo, `centrifugo.stream.NAME`); 0 when there is none.
 */
export async function historyStreamLength(redisUrl: string, channel: string): Promise<number> {
  const client = createClient({ url: redisUrl, socket: { connectTimeout: 5_000, reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  try {
    let length = 0;
    for await (const keys of client.scanIterator({ MATCH: `*${channel}`, TYPE: 'stream', COUNT: 1000 })) {
      for (const key of keys) {
        if (key.endsWith(`:${channel}`) || key.endsWith(`.${channel}`)) length += await client.xLen(key);
      }
    }
    return length;
  } finally {
    client.destroy();
  }
}

/**
 * Throws unless the history stream of a history-on run holds what the run
 * published: min(history size, publications accepted) entries, so a node
 * that silently kept no history fails the cell instead of measuring
 * history-off figures under a history-on label.
 */
export function checkHistoryKept(
  target: string,
  historySize: number,
  accepted: number,
  streamLength: number,
): void {
  const expected = Math.min(historySize, accepted);
  if (streamLength < expected) {
    throw new Error(
      `${target}: history on, but the channel's stream in Redis holds ${streamLength} publications after ${accepted} accepted (expected ${expected})`,
    );
  }
}

function channelTarget(node: ChannelPeer): Target {
  const access: ChannelAccess = node.access;
  return {
    host: '127.0.0.1',
    port: node.peer.port,
    protocol: 'centrifuge',
    path: node.wsPath,
    channel: access,
  };
}

/**
 * One run: `subscribers` on node B of a fresh channel, the API publisher on
 * node A at `rate`, CPU of both nodes and Redis in the window. `cpuSec` of
 * the result is the sum of the three.
 */
export async function measureCluster(
  cluster: ChannelCluster,
  options: {
    subscribers: number;
    payloadBytes: number;
    rate: number;
    timing: Timing;
    serverCpuList: string;
    generatorCpuList?: string | undefined;
    workers?: number;
  },
): Promise<ClusterMeasured> {
  const channel = `xnode-${++channelCounter}`;
  const { a, b, redis } = cluster;
  const core = Number.parseInt(options.serverCpuList, 10);
  const own = (): number => a.peer.cpuSeconds() + b.peer.cpuSeconds() + procCpuSeconds(redis.pid);
  const wall0 = performance.now();
  const busy0 = coreBusySeconds(core);
  const own0 = own();
  const { result, window } = await probeWindow(
    b.peer,
    options.subscribers,
    options.timing.warmupMs,
    options.timing.durationMs,
    () =>
      runFanout({
        target: channelTarget(b),
        rooms: [
          { name: channel, subscribers: 0, publishers: 1, target: channelTarget(a) },
          { name: channel, subscribers: options.subscribers, publishers: 0 },
        ],
        ratePerPublisher: options.rate,
        payloadBytes: options.payloadBytes,
        warmupMs: options.timing.warmupMs,
        durationMs: options.timing.durationMs,
        ...(options.generatorCpuList ? { cpuList: options.generatorCpuList } : {}),
        ...(options.workers ? { workers: options.workers } : {}),
      }),
    500,
    [() => a.peer.cpuSeconds(), () => procCpuSeconds(redis.pid)],
  );
  const [cpuSecA = NaN, cpuSecRedis = NaN] = window.othersCpuSec;
  const cpuSecB = window.cpuSec;
  // What processes other than the three took from their core over the whole run.
  const others = coreBusySeconds(core) - busy0 - (own() - own0);
  const otherLoad = Math.min(1, Math.max(0, others / ((performance.now() - wall0) / 1000)));
  // Read after the CPU figures, so the check costs nothing in them.
  let historyLength: number | undefined;
  if (cluster.historySize > 0) {
    historyLength = await historyStreamLength(redis.url, channel);
    checkHistoryKept(cluster.target, cluster.historySize, result.publish?.accepted ?? 0, historyLength);
  }
  return {
    result,
    cpuSec: cpuSecA + cpuSecB + cpuSecRedis,
    cpuSecA,
    cpuSecB,
    cpuSecRedis,
    ...(Number.isFinite(otherLoad) ? { otherLoad } : {}),
    ...(historyLength !== undefined ? { historyLength } : {}),
  };
}

/** CPU µs per delivery of a run (NaN when nothing was delivered). */
function usPerDelivery(delivered: number, cpuSec: number): number {
  return delivered > 0 && cpuSec > 0 ? (cpuSec * 1e6) / delivered : NaN;
}

function recordError(ctx: ScenarioContext, target: string, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  ctx.errors.push({ scenario: CLUSTER_SCENARIO, target, message });
  ctx.log(`  ! ${CLUSTER_SCENARIO} / ${target}: ${message}`);
}

function logRun(ctx: ScenarioContext, label: string, m: ClusterMeasured): void {
  const r = m.result;
  const failed = r.publish?.failed ?? 0;
  ctx.log(
    `    ${label}: ${Math.round(r.deliveriesPerSec)} deliveries/s, p50 ${r.latencyMs.p50.toFixed(1)} ms, p99 ${r.latencyMs.p99.toFixed(1)} ms, lost ${r.lost}` +
      `${failed > 0 ? `, ${failed} publish failures (${r.publish?.firstError})` : ''}` +
      `, CPU A ${m.cpuSecA.toFixed(2)} s + B ${m.cpuSecB.toFixed(2)} s + redis ${m.cpuSecRedis.toFixed(2)} s` +
      `${r.generatorCpu.limited ? ' (generator-limited)' : ''}` +
      `${m.otherLoad !== undefined ? `, others ${Math.round(m.otherLoad * 100)}% of the servers' core` : ''}`,
  );
}

/** Measures one cell for one cluster: `ctx.runs` × (fixed-rate run + maximum-rate search). */
async function measureCell(
  ctx: ScenarioContext,
  cluster: ChannelCluster,
  subscribers: number,
  payloadBytes: number,
  fixed: Timing,
  plan: SearchPlan,
): Promise<ChannelClusterCell> {
  const fixedRate = Math.max(1, Math.round(CLUSTER_FIXED_DELIVERIES / subscribers));
  ctx.log(`  N=${subscribers} payload=${payloadBytes} B, fixed rate ${fixedRate}/s`);
  const history = cluster.historySize > 0;
  const base = {
    serverCpuList: ctx.serverCpuList,
    generatorCpuList: ctx.generatorCpuList,
    subscribers,
    payloadBytes,
  };
  let lastSteps: RateStep[] = [];
  let generatorBound = false;
  let previousMax = 0;
  const runs = await repeat(ctx.runs, async () => {
    const fixedRun = await measureCluster(cluster, { ...base, rate: fixedRate, timing: fixed });
    logRun(ctx, 'fixed', fixedRun);
    if (fixedRun.historyLength !== undefined) {
      ctx.log(`    history kept: ${fixedRun.historyLength} publications in the channel's Redis stream`);
    }
    const start = Math.max(1, Math.round(fixedRate / 2), Math.round(previousMax / 2));
    const search = await searchMax(ctx, start, plan, async (rate) => {
      const first = await measureCluster(cluster, { ...base, rate, timing: plan.step });
      if (sustainable(first.result) || (first.otherLoad ?? 0) <= RETRY_OTHER_LOAD) return first;
      ctx.log(
        `    rate ${rate}/s failed while others took ${Math.round((first.otherLoad ?? 0) * 100)}% of the servers' core; measuring it again`,
      );
      return measureCluster(cluster, { ...base, rate, timing: plan.step });
    });
    previousMax = search.best;
    lastSteps = search.steps;
    generatorBound ||= search.generatorBound;
    const top = search.steps.find((s) => s.pass && s.ratePerPublisher === search.best);
    const loads = [fixedRun.otherLoad, ...search.steps.map((s) => s.otherLoad)];
    return { fixedRun, best: search.best, top, loads: loads.filter((l): l is number => l !== undefined) };
  });
  const fixedRuns = runs.map((r) => r.fixedRun);
  return {
    target: cluster.target,
    history,
    ...(history ? { historySize: cluster.historySize, historyTtlSec: CLUSTER_HISTORY.ttlSec } : {}),
    subscribers,
    payloadBytes,
    ratePerPublisher: fixedRate,
    deliveriesPerSec: summarize(fixedRuns.map((m) => m.result.deliveriesPerSec)),
    lost: summarize(fixedRuns.map((m) => m.result.lost)),
    p50Ms: summarize(fixedRuns.map((m) => m.result.latencyMs.p50)),
    p99Ms: summarize(fixedRuns.map((m) => m.result.latencyMs.p99)),
    cpuSecA: summarize(fixedRuns.map((m) => m.cpuSecA)),
    cpuSecB: summarize(fixedRuns.map((m) => m.cpuSecB)),
    cpuSecRedis: summarize(fixedRuns.map((m) => m.cpuSecRedis)),
    cpuUsPerDelivery: summarize(fixedRuns.map((m) => usPerDelivery(m.result.delivered, m.cpuSec))),
    generatorLimited: fixedRuns.some((m) => m.result.generatorCpu.limited),
    maxSustainable: summarize(runs.map((r) => r.best * subscribers)),
    maxCpuUsPerDelivery: summarize(
      runs.map((r) =>
        r.top?.serverCpuSec !== undefined
          ? usPerDelivery(r.top.deliveriesPerSec * (plan.step.durationMs / 1000), r.top.serverCpuSec)
          : NaN,
      ),
    ),
    maxP50Ms: summarize(runs.map((r) => r.top?.p50Ms ?? NaN)),
    maxP99Ms: summarize(runs.map((r) => r.top?.p99Ms ?? NaN)),
    maxGeneratorBound: generatorBound,
    publishFailures: summarize(fixedRuns.map((m) => m.result.publish?.failed ?? 0)),
    otherLoad: summarize(runs.flatMap((r) => r.loads)),
    searchSteps: lastSteps,
  };
}

/**
 * Runs the cross-node channel scenario for the selected channel targets
 * (`ctx.targets`): every size with history off, then the first size with
 * history on (CLUSTER_HISTORY), each history setting on fresh clusters.
 */
export async function runChannelClusterScenario(ctx: ScenarioContext): Promise<ChannelClusterCell[]> {
  const sizes = ctx.quick ? [500] : [1_000, 5_000];
  const phases = [
    { historySize: 0, sizes },
    { historySize: CLUSTER_HISTORY.size, sizes: sizes.slice(0, 1) },
  ];
  const payloadBytes = 64;
  const fixed: Timing = ctx.quick
    ? { warmupMs: 300, durationMs: 1000 }
    : { warmupMs: 1000, durationMs: 3000 };
  const plan: SearchPlan = ctx.quick
    ? { factor: 4, maxUpSteps: 4, bisectSteps: 0, step: { warmupMs: 300, durationMs: 700 } }
    : { factor: 2, maxUpSteps: 10, bisectSteps: 3, step: { warmupMs: 500, durationMs: 1500 } };
  const cells: ChannelClusterCell[] = [];
  for (const phase of phases) {
    const label =
      phase.historySize > 0
        ? `history on: ${phase.historySize} publications, ${CLUSTER_HISTORY.ttlSec} s, in Redis`
        : 'history off';
    const clusters = new Map<string, ChannelCluster>();
    try {
      for (const target of ctx.targets) {
        if (!CHANNEL_TARGETS.includes(target)) continue;
        try {
          clusters.set(
            target,
            await startChannelCluster(target, ctx.serverCpuList, (line) => ctx.log(line), phase.historySize),
          );
        } catch (error) {
          recordError(ctx, target, error);
        }
      }
      for (const subscribers of phase.sizes) {
        for (const [target, cluster] of clusters) {
          ctx.log(`${CLUSTER_SCENARIO} / ${target} (two nodes, Redis, ${label})`);
          try {
            cells.push(await measureCell(ctx, cluster, subscribers, payloadBytes, fixed, plan));
          } catch (error) {
            recordError(ctx, target, error);
          }
        }
      }
    } finally {
      for (const cluster of clusters.values()) await cluster.stop();
    }
  }
  return cells;
}
