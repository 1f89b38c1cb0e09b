/**
 * The load generator's self-test table (scenario `generator`), one row per
 * write pattern × payload × receive path, and each receive path's verdict
 * against the bar of issue #15: a generator core must count at least 3× the
 * best fan-out maximum.
 */
import type { BenchResults, GeneratorRow } from '../results.ts';
import { formatNumber, formatRatio, formatSummary } from '../summary.ts';
import { payloadLabel, table } from './markdown.ts';

const percent = (n: number): string => (Number.isFinite(n) ? `${Math.round(n * 100)}%` : '–');

/** A generator core must count this many times the best fan-out maximum. */
export const CAPACITY_FACTOR = 3;

/**
 * The best fan-out maximum known without a fan-out run in the same
 * invocation: wshub at 1,000 subscribers × 64 B, ≥ 40 M deliveries/s with
 * the Go receive path, generator-bound (docs/BENCHMARKS.md, "Figures, both
 * receive paths").
 */
export const REFERENCE_FANOUT_MAX = {
  payloadBytes: 64,
  deliveriesPerSec: 40_000_000,
  label: 'wshub ≥ 40 M, generator-bound',
};

/** The self-test table with its verdict lines, or '' when the scenario did not run. */
export function generatorTable(results: BenchResults): string {
  const rows = results.generator ?? [];
  if (rows.length === 0) return '';
  const body = table(
    [
      'Peer writes',
      'Receive path',
      'Subscribers',
      'Payload',
      'Frames/s counted',
      'Frames / generator CPU-s',
      'Frames / read',
      'Generator busy',
      'Generator core busy',
      'Counted = sent',
    ],
    rows.map((r) => [
      r.pattern,
      r.receivePath ?? 'node',
      r.subscribers.toLocaleString('en-US'),
      payloadLabel(r.payloadBytes),
      formatSummary(r.framesPerSec),
      formatSummary(r.framesPerCpuSec),
      formatSummary(r.framesPerRead, (n) => n.toFixed(1)),
      formatSummary(r.generatorBusy, percent),
      formatSummary(r.generatorCoreBusy, percent),
      `${r.exactRuns} / ${r.runs}`,
    ]),
    new Set([2, 4, 5, 6, 7, 8]),
  );
  const lines = capacityVerdicts(results);
  return lines.length === 0 ? body : `${body}\n\n${lines.join('\n')}`;
}

/**
 * One line per payload × receive path (64 KiB writes): frames per generator
 * CPU-second against 3× the best fan-out maximum of the same run at that
 * payload (any bound; a generator-bound one is a lower bound, so the bar may
 * be higher), or against REFERENCE_FANOUT_MAX when the run measured no
 * fan-out at that payload.
 */
export function capacityVerdicts(results: BenchResults): string[] {
  const lines: string[] = [];
  const batched = (results.generator ?? []).filter((r) => r.pattern === '64 KiB writes');
  for (const row of batched) {
    const capacity = row.framesPerCpuSec.median;
    const what = `${payloadLabel(row.payloadBytes)}, ${row.receivePath ?? 'node'} receive path: ${formatNumber(capacity)} frames per generator CPU-second (64 KiB writes)`;
    const best = bestMaximum(results, row);
    if (best === undefined) {
      lines.push(`- ${what}; no fan-out maximum at this payload to set it against`);
      continue;
    }
    const ratio = capacity / best.deliveriesPerSec;
    const verdict =
      ratio >= CAPACITY_FACTOR
        ? `meets the ${CAPACITY_FACTOR}× bar`
        : `below the ${CAPACITY_FACTOR}× bar (${formatNumber(CAPACITY_FACTOR * best.deliveriesPerSec)} needed)`;
    lines.push(`- ${what} = ${formatRatio(ratio)} the best fan-out maximum (${best.label}): ${verdict}`);
  }
  return lines;
}

function bestMaximum(
  results: BenchResults,
  row: GeneratorRow,
): { deliveriesPerSec: number; label: string } | undefined {
  const best = results.fanout
    .filter((c) => c.payloadBytes === row.payloadBytes && c.maxSustainable.median > 0)
    .sort((a, b) => b.maxSustainable.median - a.maxSustainable.median)[0];
  if (best !== undefined) {
    const bound = best.maxBound ?? (best.maxGeneratorBound ? 'generator-bound' : 'server-bound');
    const value = formatNumber(best.maxSustainable.median);
    return {
      deliveriesPerSec: best.maxSustainable.median,
      label:
        `${best.target}, ${(best.members - 1).toLocaleString('en-US')} subscribers, ` +
        `${bound === 'generator-bound' ? `≥ ${value}, generator-bound: the bar may be higher` : `${value}, server-bound`}`,
    };
  }
  if (row.payloadBytes !== REFERENCE_FANOUT_MAX.payloadBytes) return undefined;
  return {
    deliveriesPerSec: REFERENCE_FANOUT_MAX.deliveriesPerSec,
    label: `no fan-out in this run; reference ${REFERENCE_FANOUT_MAX.label}, from docs/BENCHMARKS.md`,
  };
}
