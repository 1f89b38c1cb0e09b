/**
 * Scenario "channels": channel fan-out, wshub against Centrifugo v6.9.1.
 * One channel with N subscribers (N ∈ {1,000, 5,000}), each a WebSocket
 * client of the Centrifuge client protocol v2 (JSON) that connects,
 * subscribes and counts publication pushes; one publisher posting
 * `POST /api/publish` to the server API at an open-loop rate. Payloads of
 * 64 B (and 1 KiB in full mode). Both servers run pinned to the same core
 * (Centrifugo with GOMAXPROCS=1), in the same invocation, driven by the
 * same load generator on the other core.
 *
 * Per run and cell, as in the fan-out scenario: a fixed rate
 * (CHANNEL_FIXED_DELIVERIES deliveries/s) for latency and deliveries per server
 * CPU-second at equal work, then the maximum sustainable rate search (no
 * loss, p99 < 100 ms, every subscriber subscribed). Loss here is counted
 * over the whole run: every publication the publisher attempted × N
 * against every push received, so a publication the API refused or did
 * not answer is a loss too.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { runFanout, type ChannelAccess, type FanoutResult } from '../loadgen/index.ts';
import { coreBusySeconds, startPeer } from '../peer-process.ts';
import { startCentrifugo, type ChannelPeer } from '../peers/centrifugo.ts';
import type { ChannelCell, RateStep } from '../results.ts';
import { summarize } from '../summary.ts';
import { repeat, type ScenarioContext } from './context.ts';
import { searchMax, sustainable, type Measured, type SearchPlan, type Timing } from './fanout.ts';
import { probeWindow } from './window-probe.ts';

/** The targets of this scenario, in report order. */
export const CHANNEL_TARGETS = ['wshub', 'centrifugo'];
/**
 * Total deliveries/s of the fixed-rate runs: below what either server
 * sustains at 5,000 subscribers, so both do the same work and the CPU
 * figures compare cost, not saturation.
 */
export const CHANNEL_FIXED_DELIVERIES = 50_000;
/** A failed search step is measured once more when other processes took more than this share of the server's core. */
export const RETRY_OTHER_LOAD = 0.2;
/** Where both servers take channel clients. */
export const CHANNEL_WS_PATH = '/connection/websocket';

const API_CHECK_TIMEOUT_MS = 5_000;
let channelCounter = 0;

/** Starts wshub's channel peer with a fresh API key. */
async function startWshubChannels(cpuList: string): Promise<ChannelPeer> {
  const apiKey = randomBytes(24).toString('hex');
  const peer = await startPeer({
    name: 'wshub-channels',
    cpuList,
    env: { ...process.env, WSHUB_BENCH_API_KEY: apiKey },
  });
  return { peer, wsPath: CHANNEL_WS_PATH, access: { apiKey }, stop: () => peer.stop() };
}

/**
 * Publishes one publication through the API and resolves when the server
 * accepted it; rejects with what it answered otherwise (a server without
 * the channel endpoint is told apart from a slow one before any run).
 */
export function checkPublishApi(port: number, access: ChannelAccess): Promise<void> {
  const body = JSON.stringify({ channel: 'bench-check', data: { check: true } });
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: access.apiPath ?? '/api/publish',
        method: 'POST',
        agent: false,
        timeout: API_CHECK_TIMEOUT_MS,
        headers: {
          'Content-Type': 'application/json',
          'Content-Length': String(Buffer.byteLength(body)),
          'X-API-Key': access.apiKey,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text.length < 1000) text += chunk;
        });
        res.on('end', () => {
          if (res.statusCode === 200 && text.includes('"result"')) resolve();
          else reject(new Error(`the server API answered HTTP ${res.statusCode} ${text.slice(0, 200)}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('the server API did not answer')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Starts the named target's server and checks its API; a failure is logged, recorded, and gives undefined. */
async function startChannelPeer(ctx: ScenarioContext, name: string): Promise<ChannelPeer | undefined> {
  let peer: ChannelPeer | undefined;
  try {
    peer =
      name === 'centrifugo'
        ? await startCentrifugo(ctx.serverCpuList, (line) => ctx.log(line))
        : await startWshubChannels(ctx.serverCpuList);
    await checkPublishApi(peer.peer.port, peer.access);
    return peer;
  } catch (error) {
    await peer?.stop();
    recordError(ctx, name, error);
    return undefined;
  }
}

function recordError(ctx: ScenarioContext, name: string, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  ctx.errors.push({ scenario: 'channels', target: name, message });
  ctx.log(`  ! channels / ${name}: ${message}`);
}

/** One run: N subscribers on a fresh channel, one API publisher at `rate`, server CPU in the window. */
async function measure(
  ctx: ScenarioContext,
  server: ChannelPeer,
  subscribers: number,
  payloadBytes: number,
  rate: number,
  timing: Timing,
): Promise<Measured> {
  const channel = `bench-${++channelCounter}`;
  const core = Number.parseInt(ctx.serverCpuList, 10);
  const wall0 = performance.now();
  const busy0 = coreBusySeconds(core);
  const server0 = server.peer.cpuSeconds();
  const { result, window } = await probeWindow(
    server.peer,
    subscribers,
    timing.warmupMs,
    timing.durationMs,
    () =>
      runFanout({
        target: {
          host: '127.0.0.1',
          port: server.peer.port,
          protocol: 'centrifuge',
          path: server.wsPath,
          channel: server.access,
        },
        rooms: [{ name: channel, subscribers, publishers: 1 }],
        ratePerPublisher: rate,
        payloadBytes,
        warmupMs: timing.warmupMs,
        durationMs: timing.durationMs,
        ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
      }),
  );
  // What others took from the server's core over the whole run: the figures' contamination.
  const others = coreBusySeconds(core) - busy0 - (server.peer.cpuSeconds() - server0);
  const otherLoad = Math.min(1, Math.max(0, others / ((performance.now() - wall0) / 1000)));
  return { result, cpuSec: window.cpuSec, ...(Number.isFinite(otherLoad) ? { otherLoad } : {}) };
}

function logRun(ctx: ScenarioContext, label: string, m: Measured): void {
  const r = m.result;
  const failed = r.publish?.failed ?? 0;
  ctx.log(
    `    ${label}: ${Math.round(r.deliveriesPerSec)} deliveries/s, p99 ${r.latencyMs.p99.toFixed(1)} ms, lost ${r.lost}` +
      `${failed > 0 ? `, ${failed} publish failures (${r.publish?.firstError})` : ''}, server CPU ${m.cpuSec.toFixed(2)} s` +
      `${r.generatorCpu.limited ? ' (generator-limited)' : ''}` +
      `${m.otherLoad !== undefined ? `, others ${Math.round(m.otherLoad * 100)}% of the server's core` : ''}`,
  );
}

/** Deliveries per server CPU-second of a run (NaN when nothing was delivered). */
function perCpuSec(m: Measured): number {
  return m.result.delivered > 0 && m.cpuSec > 0 ? m.result.delivered / m.cpuSec : NaN;
}

/** The highest passing step of a search, if any. */
function bestStep(steps: RateStep[], best: number): RateStep | undefined {
  return steps.find((s) => s.pass && s.ratePerPublisher === best);
}

/** Measures one cell for one server: `ctx.runs` × (fixed-rate run + maximum-rate search). */
async function measureCell(
  ctx: ScenarioContext,
  name: string,
  server: ChannelPeer,
  subscribers: number,
  payloadBytes: number,
  fixed: Timing,
  plan: SearchPlan,
): Promise<ChannelCell> {
  const fixedRate = Math.max(1, Math.round(CHANNEL_FIXED_DELIVERIES / subscribers));
  ctx.log(`  N=${subscribers} payload=${payloadBytes} B, fixed rate ${fixedRate}/s`);
  let lastSteps: RateStep[] = [];
  let generatorBound = false;
  let previousMax = 0;
  const runs = await repeat(ctx.runs, async () => {
    const fixedRun = await measure(ctx, server, subscribers, payloadBytes, fixedRate, fixed);
    logRun(ctx, 'fixed', fixedRun);
    // Below the fixed rate, so a server that cannot sustain it still gets a figure.
    const start = Math.max(1, Math.round(fixedRate / 4), Math.round(previousMax / 2));
    const search = await searchMax(ctx, start, plan, async (rate) => {
      const first = await measure(ctx, server, subscribers, payloadBytes, rate, plan.step);
      if (sustainable(first.result) || (first.otherLoad ?? 0) <= RETRY_OTHER_LOAD) return first;
      // On a shared machine a burst of other work can fail a step the server would pass.
      ctx.log(
        `    rate ${rate}/s failed while others took ${Math.round((first.otherLoad ?? 0) * 100)}% of the server's core; measuring it again`,
      );
      return measure(ctx, server, subscribers, payloadBytes, rate, plan.step);
    });
    previousMax = search.best;
    lastSteps = search.steps;
    generatorBound ||= search.generatorBound;
    const loads = [fixedRun.otherLoad, ...search.steps.map((s) => s.otherLoad)];
    return {
      fixedRun,
      best: search.best,
      top: bestStep(search.steps, search.best),
      loads: loads.filter((l): l is number => l !== undefined),
    };
  });
  const fixedResults = runs.map((r) => r.fixedRun.result);
  const tops = runs.map((r) => r.top);
  return {
    target: name,
    subscribers,
    payloadBytes,
    ratePerPublisher: fixedRate,
    deliveriesPerSec: summarize(fixedResults.map((r) => r.deliveriesPerSec)),
    lost: summarize(fixedResults.map((r) => r.lost)),
    p50Ms: summarize(fixedResults.map((r) => r.latencyMs.p50)),
    p99Ms: summarize(fixedResults.map((r) => r.latencyMs.p99)),
    serverCpuSec: summarize(runs.map((r) => r.fixedRun.cpuSec)),
    deliveriesPerCpuSec: summarize(runs.map((r) => perCpuSec(r.fixedRun))),
    generatorLimited: fixedResults.some((r) => r.generatorCpu.limited),
    maxSustainable: summarize(runs.map((r) => r.best * subscribers)),
    maxDeliveriesPerCpuSec: summarize(
      tops.map((s) =>
        s?.serverCpuSec !== undefined && s.serverCpuSec > 0
          ? (s.deliveriesPerSec * (plan.step.durationMs / 1000)) / s.serverCpuSec
          : NaN,
      ),
    ),
    maxP50Ms: summarize(tops.map((s) => s?.p50Ms ?? NaN)),
    maxP99Ms: summarize(tops.map((s) => s?.p99Ms ?? NaN)),
    maxGeneratorBound: generatorBound,
    publishFailures: summarize(fixedResults.map((r: FanoutResult) => r.publish?.failed ?? 0)),
    searchSteps: lastSteps,
    otherLoad: summarize(runs.flatMap((r) => r.loads)),
  };
}

/** Runs the channel fan-out scenario for the selected channel targets (`ctx.targets`). */
export async function runChannelScenario(ctx: ScenarioContext): Promise<ChannelCell[]> {
  const sizes = [1_000, 5_000];
  const payloads = ctx.quick ? [64] : [64, 1024];
  const fixed: Timing = ctx.quick
    ? { warmupMs: 300, durationMs: 1000 }
    : { warmupMs: 1000, durationMs: 3000 };
  const plan: SearchPlan = ctx.quick
    ? { factor: 4, maxUpSteps: 4, bisectSteps: 0, step: { warmupMs: 300, durationMs: 700 } }
    : { factor: 2, maxUpSteps: 10, bisectSteps: 3, step: { warmupMs: 500, durationMs: 1500 } };
  const cells: ChannelCell[] = [];

  // Every server is started first and the targets take turns cell by cell, so that the bursts of
  // other work on a shared machine fall on both alike instead of on whichever ran first.
  const servers = new Map<string, ChannelPeer>();
  try {
    for (const name of ctx.targets) {
      if (!CHANNEL_TARGETS.includes(name)) continue;
      const server = await startChannelPeer(ctx, name);
      if (server !== undefined) servers.set(name, server);
    }
    for (const subscribers of sizes) {
      for (const payloadBytes of payloads) {
        for (const [name, server] of servers) {
          ctx.log(`channels / ${name}`);
          try {
            cells.push(await measureCell(ctx, name, server, subscribers, payloadBytes, fixed, plan));
          } catch (error) {
            recordError(ctx, name, error);
          }
        }
      }
    }
  } finally {
    for (const server of servers.values()) await server.stop();
  }
  return cells;
}
