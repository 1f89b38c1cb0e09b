/**
 * The targets for wshub, judged against a results file. Every
 * verdict carries the numbers it rests on; a target that the run did not
 * measure is reported as such, never as met.
 */
import type { BenchResults, FanoutCell } from '../results.ts';
import { formatBytes, formatNumber, formatRatio } from '../summary.ts';
import { countersExact, payloadLabel, ratioOf } from './markdown.ts';
import { handshakeCostVerdict } from './handshake-cost.ts';

/** One judged target: met, not met, or not measured (null). */
export interface Verdict {
  target: string;
  met: boolean | null;
  detail: string;
}

const FANOUT_SIZES = [1_000, 5_000];
const PAYLOADS = [64, 1024];

function cellOf(
  results: BenchResults,
  target: string,
  subscribers: number,
  payload: number,
): FanoutCell | undefined {
  return results.fanout.find(
    (c) => c.target === target && c.members === subscribers + 1 && c.payloadBytes === payload,
  );
}

/** Combines partial verdicts: any false → false; else any null → null; else true. */
function all(values: Array<boolean | null>): boolean | null {
  if (values.includes(false)) return false;
  if (values.includes(null)) return null;
  return true;
}

function fanoutVerdict(results: BenchResults): Verdict {
  const parts: string[] = [];
  const oks: Array<boolean | null> = [];
  for (const n of FANOUT_SIZES) {
    for (const payload of PAYLOADS) {
      const label = `${n.toLocaleString('en-US')} × ${payloadLabel(payload)}`;
      const mine = cellOf(results, 'wshub', n, payload);
      const best = ['uws', 'ws-preframed']
        .map((t) => cellOf(results, t, n, payload))
        .filter((c): c is FanoutCell => c !== undefined)
        .sort((a, b) => b.maxSustainable.median - a.maxSustainable.median)[0];
      const naive = cellOf(results, 'ws-naive', n, payload);
      if (!mine || !best || !naive) {
        oks.push(null);
        parts.push(`${label}: not measured`);
        continue;
      }
      const vsBest = ratioOf(mine.maxSustainable, best.maxSustainable);
      const vsNaive = ratioOf(mine.maxSustainable, naive.maxSustainable);
      // A generator-bound peer figure is a lower bound: beating it proves nothing.
      const ok =
        vsBest >= 1 && vsNaive >= 10
          ? best.maxGeneratorBound
            ? null
            : true
          : mine.maxGeneratorBound
            ? null
            : false;
      oks.push(ok);
      parts.push(
        `${label}: ${formatNumber(mine.maxSustainable.median)} vs ${best.target} ${formatNumber(best.maxSustainable.median)} (${formatRatio(vsBest)}), ${formatRatio(vsNaive)} ws-naive`,
      );
    }
  }
  return {
    target: 'Fan-out: max sustainable ≥ best peer in every cell and ≥ 10× ws naive',
    met: all(oks),
    detail: parts.join('; '),
  };
}

function latencyVerdict(results: BenchResults): Verdict {
  const parts: string[] = [];
  const oks: Array<boolean | null> = [];
  for (const payload of PAYLOADS) {
    const cell = cellOf(results, 'wshub', 5_000, payload);
    if (!cell?.halfRate) {
      oks.push(null);
      parts.push(`${payloadLabel(payload)}: not measured`);
      continue;
    }
    const p99 = cell.halfRate.p99Ms.median;
    oks.push(p99 <= 50 && cell.halfRate.lost.median === 0);
    parts.push(
      `${payloadLabel(payload)}: p99 ${p99.toFixed(1)} ms at ${formatNumber(cell.halfRate.ratePerPublisher)} msg/s`,
    );
  }
  return {
    target: 'Latency: p99 ≤ 50 ms at 5,000 subscribers at half the max sustainable rate',
    met: all(oks),
    detail: parts.join('; '),
  };
}

function idleVerdict(results: BenchResults): Verdict {
  const target = 'Idle memory: RSS per connection at 19,000 ≤ 1.1× bare net.Socket server';
  const levels = results.idle.filter((r) => r.target === 'wshub').map((r) => r.connections);
  if (levels.length === 0) return { target, met: null, detail: 'not measured' };
  const level = Math.max(...levels);
  const mine = results.idle.find((r) => r.target === 'wshub' && r.connections === level)!;
  const floor = results.idle.find((r) => r.target === 'bare-net' && r.connections === level);
  if (!floor) return { target, met: null, detail: `bare-net not measured at ${level}` };
  const ratio = ratioOf(mine.rssPerConnBytes, floor.rssPerConnBytes);
  const detail = `${formatBytes(mine.rssPerConnBytes.median)} vs ${formatBytes(floor.rssPerConnBytes.median)} at ${level.toLocaleString('en-US')} connections (${formatRatio(ratio)})`;
  if (level !== 19_000) return { target, met: null, detail: `${detail}; not measured at 19,000` };
  return { target, met: ratio <= 1.1, detail };
}

function handshakeVerdict(results: BenchResults): Verdict {
  const parts: string[] = [];
  const oks: Array<boolean | null> = [];
  for (const jwt of [false, true]) {
    const mine = results.handshakes.find((r) => r.target === 'wshub' && r.jwt === jwt);
    const ws = results.handshakes.find((r) => r.target === 'ws-naive' && r.jwt === jwt);
    const label = jwt ? 'with JWT' : 'without auth';
    if (!mine || !ws) {
      oks.push(null);
      parts.push(`${label}: not measured`);
      continue;
    }
    const ratio = ratioOf(mine.upgradesPerCpuSec, ws.upgradesPerCpuSec);
    oks.push(ratio >= 1.5);
    parts.push(
      `${label}: ${formatNumber(mine.upgradesPerCpuSec.median)} vs ${formatNumber(ws.upgradesPerCpuSec.median)} upgrades/CPU-s (${formatRatio(ratio)})`,
    );
  }
  return {
    target: 'Handshakes: ≥ 1.5× ws upgrades per server CPU-second, without and with JWT',
    met: all(oks),
    detail: parts.join('; '),
  };
}

function slowVerdict(results: BenchResults): Verdict {
  const target =
    'Slow consumers: healthy p99 within 2× of the run without them; RSS plateaus; counters exact';
  const rows = results.slow.filter((r) => r.target === 'wshub' || r.target.startsWith('wshub ('));
  if (rows.length === 0) return { target, met: null, detail: 'not measured' };
  const oks: Array<boolean | null> = [];
  const parts = rows.map((r) => {
    const exact = countersExact(r);
    oks.push(r.p99Ratio.median <= 2, r.plateauRuns === r.runs, exact ?? null);
    return `${r.target}: p99 ${r.baselineP99Ms.median.toFixed(1)} → ${r.slowP99Ms.median.toFixed(1)} ms (${r.p99Ratio.median.toFixed(2)}×), plateau ${r.plateauRuns}/${r.runs} runs, counters ${exact === undefined ? 'n/a' : exact ? 'exact' : 'not exact'}`;
  });
  return { target, met: all(oks), detail: parts.join('; ') };
}

/** Judges every target of the issue against `results`. */
export function verdicts(results: BenchResults): Verdict[] {
  return [
    fanoutVerdict(results),
    latencyVerdict(results),
    idleVerdict(results),
    handshakeVerdict(results),
    handshakeCostVerdict(results),
    slowVerdict(results),
  ];
}

/** "met" / "not met" / "not determined" (not measured, or bounded by the generator). */
export function verdictWord(met: boolean | null): string {
  return met === null ? 'not determined' : met ? 'met' : 'not met';
}
