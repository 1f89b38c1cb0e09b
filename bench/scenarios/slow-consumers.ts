/**
 * Scenario "slow consumers": a fan-out run in which 5% of the subscribers
 * stop reading when measurement starts, against the same run without them
 * on the same server → healthy subscribers' p99 ratio, the server's RSS
 * over the window (sampled every 500 ms; it should plateau), and the
 * server's dropped/closed counters next to what the clients saw.
 * 200 subscribers, 100 msg/s of 16 KiB (1.6 MB/s per member: a paused
 * socket's kernel buffers, a few MB on loopback, fill within seconds, so the
 * server's own handling of a slow consumer decides what happens next). wshub
 * runs twice: with its default send behaviour (drop) and with close.
 */
import { runFanout, type FanoutResult } from '../loadgen/index.ts';
import type { SlowRow } from '../results.ts';
import { summarize } from '../summary.ts';
import {
  plain,
  repeat,
  takesPart,
  targetOf,
  withPeer,
  type PeerVariant,
  type ScenarioContext,
} from './context.ts';
import { probeWindow } from './window-probe.ts';
import type { PeerProcess } from '../peer-process.ts';

const SLOW_FRACTION = 0.05;
const PAYLOAD_BYTES = 16 * 1024;
/** Enough bytes per second per member (1.6 MB/s) to overflow a paused socket's kernel buffers within the run. */
const RATE_PER_PUBLISHER = 100;
const SUBSCRIBERS = 200;

/**
 * Whether RSS samples ([ms, bytes], window from 0 to durationMs) plateau:
 * growth over the window's last third is under 5% of the window's total
 * growth. Growth under 1 MB in total counts as flat. Also returns the total.
 */
export function plateau(
  samples: ReadonlyArray<readonly [number, number]>,
  durationMs: number,
): { growth: number; flat: boolean } {
  const inWindow = samples.filter(([t, rss]) => t >= 0 && t <= durationMs + 250 && Number.isFinite(rss));
  if (inWindow.length < 2) return { growth: NaN, flat: false };
  const first = inWindow[0]![1];
  const last = inWindow[inWindow.length - 1]![1];
  const growth = last - first;
  if (growth < 1024 * 1024) return { growth, flat: true };
  const third = inWindow.find(([t]) => t >= (durationMs * 2) / 3) ?? inWindow[inWindow.length - 1]!;
  return { growth, flat: last - third[1] < 0.05 * growth };
}

let roomCounter = 0;

/** The peer's counters, or -1s when a saturated peer does not answer in time. */
async function statsOrUnknown(peer: PeerProcess): Promise<{ dropped: number; closed: number }> {
  try {
    return await peer.stats();
  } catch {
    return { dropped: -1, closed: -1 };
  }
}

async function oneRun(
  ctx: ScenarioContext,
  peer: PeerProcess,
  subscribers: number,
  rate: number,
  timing: { warmupMs: number; durationMs: number },
  slowFraction: number,
): Promise<{ result: FanoutResult; rssSamples: Array<[number, number]> }> {
  const room = `slow-${++roomCounter}`;
  const { result, window } = await probeWindow(
    peer,
    subscribers + 1,
    timing.warmupMs,
    timing.durationMs,
    () =>
      runFanout({
        target: targetOf(peer),
        rooms: [{ name: room, subscribers, publishers: 1 }],
        ratePerPublisher: rate,
        payloadBytes: PAYLOAD_BYTES,
        ...timing,
        ...(slowFraction > 0 ? { slowFraction } : {}),
        ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
      }),
  );
  return { result, rssSamples: window.rssSamples };
}

/** Runs the slow-consumer scenario for every selected target. */
export async function runSlowScenario(ctx: ScenarioContext): Promise<SlowRow[]> {
  const subscribers = SUBSCRIBERS;
  const timing = ctx.quick ? { warmupMs: 300, durationMs: 1_500 } : { warmupMs: 1_000, durationMs: 10_000 };
  const rate = RATE_PER_PUBLISHER;
  const variants: PeerVariant[] = [];
  for (const name of ctx.targets) {
    if (!takesPart(name, 'slow')) continue;
    variants.push(plain(name));
    if (name === 'wshub') variants.push({ label: 'wshub (close)', name, args: ['--send-behavior', 'close'] });
  }
  const rows: SlowRow[] = [];
  for (const variant of variants) {
    ctx.log(
      `slow consumers / ${variant.label}: ${subscribers} subscribers, ${rate} msg/s, ${PAYLOAD_BYTES} B`,
    );
    const row = await withPeer(ctx, 'slow', variant, async (peer) => {
      const runs = await repeat(ctx.runs, async () => {
        const baseline = await oneRun(ctx, peer, subscribers, rate, timing, 0);
        const before = await statsOrUnknown(peer);
        const slow = await oneRun(ctx, peer, subscribers, rate, timing, SLOW_FRACTION);
        const after = await statsOrUnknown(peer);
        const shape = plateau(slow.rssSamples, timing.durationMs);
        const diff = (a: number, b: number): number => (a < 0 || b < 0 ? -1 : a - b);
        const run = {
          baseline: baseline.result,
          slow: slow.result,
          samples: slow.rssSamples,
          shape,
          dropped: diff(after.dropped, before.dropped),
          closed: diff(after.closed, before.closed),
        };
        ctx.log(
          `    p99 ${baseline.result.latencyMs.p99.toFixed(1)} → ${slow.result.latencyMs.p99.toFixed(1)} ms, healthy lost ${slow.result.lost}, ` +
            `RSS +${(shape.growth / 1e6).toFixed(1)} MB ${shape.flat ? 'plateau' : 'growing'}, server dropped ${run.dropped} closed ${run.closed}, ` +
            `clients closed ${slow.result.slow?.closedByServer ?? 0} received ${slow.result.slow?.framesReceived ?? 0}`,
        );
        return run;
      });
      const last = runs[runs.length - 1]!;
      const slowMembers = last.slow.slow?.members ?? Math.round(subscribers * SLOW_FRACTION);
      const out: SlowRow = {
        target: variant.label,
        members: subscribers + 1,
        slowMembers,
        ratePerPublisher: rate,
        payloadBytes: PAYLOAD_BYTES,
        baselineP99Ms: summarize(runs.map((r) => r.baseline.latencyMs.p99)),
        slowP99Ms: summarize(runs.map((r) => r.slow.latencyMs.p99)),
        p99Ratio: summarize(runs.map((r) => r.slow.latencyMs.p99 / r.baseline.latencyMs.p99)),
        healthyLost: summarize(runs.map((r) => r.slow.lost)),
        rssGrowthBytes: summarize(runs.map((r) => r.shape.growth)),
        plateauRuns: runs.filter((r) => r.shape.flat).length,
        runs: runs.length,
        rssSamples: last.samples,
        serverDropped: last.dropped,
        serverClosed: last.closed,
        clientClosedByServer: last.slow.slow?.closedByServer ?? 0,
        slowFramesReceived: last.slow.slow?.framesReceived ?? 0,
        slowFramesOffered: last.slow.sentTotal * slowMembers,
      };
      return out;
    });
    if (row) rows.push(row);
  }
  return rows;
}
