/**
 * Scenario "fan-out": one room of N subscribers plus one publisher (which
 * receives its own messages too, so members = N + 1), for every target,
 * N ∈ {1,000, 5,000} (10,000 with --large; 1,000 and 64 B only in quick mode) and
 * payloads of 64 B and 1 KiB.
 *
 * Per run and cell:
 * - a fixed open-loop rate (FIXED_DELIVERIES deliveries/s in total) →
 *   deliveries/s, loss, latency, server CPU in the measurement window;
 * - a search for the maximum sustainable rate (p99 < 100 ms, nothing lost,
 *   every connection made): multiply the rate until a step fails, then
 *   bisect; the result is the highest passing rate × members;
 * - the latency at half that maximum (full mode).
 * One peer process per target serves all cells, each run in its own room.
 */
import { runFanout, type FanoutResult } from '../loadgen/index.ts';
import type { FanoutCell, RateStep } from '../results.ts';
import { summarize } from '../summary.ts';
import { plain, repeat, takesPart, targetOf, withPeer, type ScenarioContext } from './context.ts';
import { probeWindow } from './window-probe.ts';
import type { PeerProcess } from '../peer-process.ts';

/** Total deliveries/s of the fixed-rate runs (rate per publisher = this / members). */
export const FIXED_DELIVERIES = 100_000;
/** A rate passes when p99 stays below this and nothing is lost. */
export const P99_LIMIT_MS = 100;

/** Warm-up and measurement window of one run. */
export interface Timing {
  warmupMs: number;
  durationMs: number;
}

/** How a maximum-rate search steps: up by `factor` at most `maxUpSteps` times, then bisects. */
export interface SearchPlan {
  factor: number;
  maxUpSteps: number;
  bisectSteps: number;
  step: Timing;
}

/** One measured fan-out run with the server's CPU in its window. */
export interface Measured {
  result: FanoutResult;
  cpuSec: number;
  /** Share of the server's core that other processes used during the run (0–1), when measured. */
  otherLoad?: number;
}

let roomCounter = 0;

/** Runs one fan-out of `members - 1` subscribers + 1 publisher and probes the server. */
async function measure(
  ctx: ScenarioContext,
  peer: PeerProcess,
  subscribers: number,
  payloadBytes: number,
  ratePerPublisher: number,
  timing: Timing,
): Promise<Measured> {
  const room = `fan-${++roomCounter}`;
  const { result, window } = await probeWindow(
    peer,
    subscribers + 1,
    timing.warmupMs,
    timing.durationMs,
    () =>
      runFanout({
        target: targetOf(peer),
        rooms: [{ name: room, subscribers, publishers: 1 }],
        ratePerPublisher,
        payloadBytes,
        warmupMs: timing.warmupMs,
        durationMs: timing.durationMs,
        ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
        ...(ctx.receivePath ? { receivePath: ctx.receivePath } : {}),
      }),
  );
  return { result, cpuSec: window.cpuSec };
}

/** A limiting step leaves the generator this much headroom at most to call the maximum server-bound. */
export const SERVER_BOUND_MAX_BUSY = 1 / 3;
/** ...and its cores (anyone's use) must have been below this busy share, so it was not starved. */
export const SERVER_BOUND_MAX_CORE_BUSY = 0.9;

/**
 * What bounded a search's maximum `best`: the limiting step is the failed
 * step with the lowest rate above `best`. It is 'server-bound' when that
 * step's generator used at most a third of its core and its core was not
 * saturated by others: the generator counted the rate that failed with a
 * third of its core, and its cost per delivery only falls as reads get
 * fuller, so it could have taken at least 3× that rate; the failure (loss or
 * p99) was the server's. Without such a step (no failure, or a generator
 * that was busier or starved) the maximum is 'generator-bound': a lower bound.
 */
export function limitOf(
  steps: RateStep[],
  best: number,
): { bound: 'server-bound' | 'generator-bound'; busy: number; coreBusy?: number } {
  const failed = steps
    .filter((s) => !s.pass && s.ratePerPublisher > best)
    .sort((a, b) => a.ratePerPublisher - b.ratePerPublisher)[0];
  if (failed === undefined) return { bound: 'generator-bound', busy: NaN };
  const busy = failed.generatorBusy ?? (failed.generatorLimited ? 1 : NaN);
  const serverBound =
    busy <= SERVER_BOUND_MAX_BUSY && (failed.generatorCoreBusy ?? 0) < SERVER_BOUND_MAX_CORE_BUSY;
  return {
    bound: serverBound ? 'server-bound' : 'generator-bound',
    busy,
    ...(failed.generatorCoreBusy !== undefined ? { coreBusy: failed.generatorCoreBusy } : {}),
  };
}

/** Whether a run meets the sustainability criteria: nothing lost, every connection made, p99 under the limit. */
export function sustainable(result: FanoutResult, p99LimitMs = P99_LIMIT_MS): boolean {
  return result.lost === 0 && result.connectFailures === 0 && result.latencyMs.p99 < p99LimitMs;
}

/**
 * Searches the highest sustainable rate per publisher, starting at
 * `startRate`; `run(rate)` measures one step (its window given by
 * `plan.step`) and returns the run's result and the server's CPU-seconds in
 * the window. Returns the highest passing rate (0 when even the start
 * fails), the steps, and whether a generator-limited step capped the search.
 */
export async function searchMax(
  ctx: ScenarioContext,
  startRate: number,
  plan: SearchPlan,
  run: (rate: number) => Promise<Measured>,
): Promise<{ best: number; steps: RateStep[]; generatorBound: boolean }> {
  const steps: RateStep[] = [];
  const step = async (rate: number): Promise<RateStep> => {
    const { result, cpuSec, otherLoad } = await run(rate);
    const s: RateStep = {
      ratePerPublisher: rate,
      deliveriesPerSec: result.deliveriesPerSec,
      p99Ms: result.latencyMs.p99,
      lost: result.lost,
      generatorLimited: result.generatorCpu.limited,
      pass: sustainable(result),
      serverCpuSec: cpuSec,
      p50Ms: result.latencyMs.p50,
      ...(otherLoad !== undefined ? { otherLoad } : {}),
      generatorBusy: result.generatorCpu.busyFraction,
      ...(result.generatorCpu.coreBusyFraction !== undefined
        ? { generatorCoreBusy: result.generatorCpu.coreBusyFraction }
        : {}),
    };
    steps.push(s);
    ctx.log(
      `    rate ${rate}/s → ${Math.round(s.deliveriesPerSec)} deliveries/s, p99 ${s.p99Ms.toFixed(1)} ms, lost ${s.lost}` +
        `${s.generatorLimited ? ' (generator-limited)' : ''}` +
        `${otherLoad !== undefined ? `, others ${Math.round(otherLoad * 100)}% of the server's core` : ''} ${s.pass ? 'pass' : 'FAIL'}`,
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
    // A busy generator does not stop the search: the pass criteria are end to end, so a
    // generator that falls behind fails the step itself. Where the failing step's generator
    // was busy, the result is a lower bound of the server's capacity and is flagged.
    best = rate;
    rate = Math.round(rate * plan.factor);
  }
  if (failed > 0) {
    let lo = best;
    let hi = failed;
    for (let i = 0; i < plan.bisectSteps && hi - lo > Math.max(1, lo * 0.05); i++) {
      const mid = Math.round((lo + hi) / 2);
      const s = await step(mid);
      if (s.pass) lo = mid;
      else {
        hi = mid;
        if (s.generatorLimited) generatorBound = true;
      }
    }
    best = lo;
  }
  return { best, steps, generatorBound };
}

/** Runs the fan-out scenario for every selected target. */
export async function runFanoutScenario(ctx: ScenarioContext): Promise<FanoutCell[]> {
  const sizes = ctx.quick ? [1_000] : ctx.large ? [1_000, 5_000, 10_000] : [1_000, 5_000];
  const payloads = ctx.quick ? [64] : [64, 1024];
  const fixed: Timing = ctx.quick
    ? { warmupMs: 300, durationMs: 1000 }
    : { warmupMs: 1000, durationMs: 3000 };
  const plan: SearchPlan = ctx.quick
    ? { factor: 4, maxUpSteps: 2, bisectSteps: 0, step: { warmupMs: 300, durationMs: 700 } }
    : { factor: 2, maxUpSteps: 9, bisectSteps: 2, step: { warmupMs: 500, durationMs: 1500 } };
  const cells: FanoutCell[] = [];

  for (const name of ctx.targets) {
    if (!takesPart(name, 'fanout')) continue;
    ctx.log(`fan-out / ${name}`);
    await withPeer(ctx, 'fanout', plain(name), async (peer) => {
      for (const subscribers of sizes) {
        for (const payloadBytes of payloads) {
          const members = subscribers + 1;
          const fixedRate = Math.max(1, Math.round(FIXED_DELIVERIES / members));
          ctx.log(`  N=${subscribers} payload=${payloadBytes} B, fixed rate ${fixedRate}/s`);
          let lastSteps: RateStep[] = [];
          let generatorBound = false;
          let previousMax = 0;
          const runs = await repeat(ctx.runs, async () => {
            const fixedRun = await measure(ctx, peer, subscribers, payloadBytes, fixedRate, fixed);
            const f = fixedRun.result;
            ctx.log(
              `    fixed: ${Math.round(f.deliveriesPerSec)} deliveries/s, p99 ${f.latencyMs.p99.toFixed(1)} ms, lost ${f.lost}, ` +
                `server CPU ${fixedRun.cpuSec.toFixed(2)} s${f.generatorCpu.limited ? ' (generator-limited)' : ''}, ` +
                `${f.receivePath} receive path`,
            );
            // Quick mode starts the search one step above the fixed rate, which it has just measured.
            const start = ctx.quick ? fixedRate * plan.factor : Math.max(fixedRate / 2, previousMax / 2);
            const search =
              ctx.quick && !sustainable(fixedRun.result)
                ? { best: 0, steps: [] as RateStep[], generatorBound: fixedRun.result.generatorCpu.limited }
                : await searchMax(ctx, start, plan, (rate) =>
                    measure(ctx, peer, subscribers, payloadBytes, rate, plan.step),
                  );
            let best = search.best;
            if (ctx.quick && best === 0 && sustainable(fixedRun.result)) best = fixedRate;
            previousMax = best;
            lastSteps = search.steps;
            const limit = limitOf(search.steps, best);
            generatorBound ||= search.generatorBound || limit.bound === 'generator-bound';
            ctx.log(
              `    max ${best * members} deliveries/s: ${limit.bound}` +
                (Number.isFinite(limit.busy)
                  ? ` (generator ${Math.round(limit.busy * 100)}% busy at the failing step` +
                    `${limit.coreBusy !== undefined ? `, its core ${Math.round(limit.coreBusy * 100)}%` : ''})`
                  : ' (no failing step)'),
            );
            let half: Measured | undefined;
            if (!ctx.quick && best > 0) {
              half = await measure(
                ctx,
                peer,
                subscribers,
                payloadBytes,
                Math.max(1, Math.round(best / 2)),
                fixed,
              );
            }
            return { fixedRun, best, half, limit };
          });
          const cell: FanoutCell = {
            target: name,
            members,
            payloadBytes,
            ratePerPublisher: fixedRate,
            deliveriesPerSec: summarize(runs.map((r) => r.fixedRun.result.deliveriesPerSec)),
            lost: summarize(runs.map((r) => r.fixedRun.result.lost)),
            lossFraction: summarize(
              runs.map((r) =>
                r.fixedRun.result.expected > 0 ? r.fixedRun.result.lost / r.fixedRun.result.expected : 0,
              ),
            ),
            p50Ms: summarize(runs.map((r) => r.fixedRun.result.latencyMs.p50)),
            p99Ms: summarize(runs.map((r) => r.fixedRun.result.latencyMs.p99)),
            maxMs: summarize(runs.map((r) => r.fixedRun.result.latencyMs.max)),
            serverCpuSec: summarize(runs.map((r) => r.fixedRun.cpuSec)),
            deliveriesPerCpuSec: summarize(
              runs.map((r) =>
                r.fixedRun.result.delivered > 0 ? r.fixedRun.result.delivered / r.fixedRun.cpuSec : NaN,
              ),
            ),
            generatorLimited: runs.some((r) => r.fixedRun.result.generatorCpu.limited),
            maxSustainable: summarize(runs.map((r) => r.best * members)),
            maxGeneratorBound: generatorBound,
            maxBound: generatorBound ? 'generator-bound' : 'server-bound',
            generatorBusyAtLimit: summarize(runs.map((r) => r.limit.busy)),
            searchSteps: lastSteps,
            receivePath: runs[0]!.fixedRun.result.receivePath,
          };
          const halves = runs.flatMap((r) => (r.half ? [r.half] : []));
          if (halves.length > 0) {
            cell.halfRate = {
              ratePerPublisher: Math.round(summarize(runs.map((r) => r.best)).median / 2),
              p50Ms: summarize(halves.map((h) => h.result.latencyMs.p50)),
              p99Ms: summarize(halves.map((h) => h.result.latencyMs.p99)),
              lost: summarize(halves.map((h) => h.result.lost)),
            };
          }
          cells.push(cell);
        }
      }
    });
  }
  return cells;
}
