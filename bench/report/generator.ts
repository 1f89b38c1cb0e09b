/**
 * The load generator's self-test table (scenario `generator`), and how its
 * capacity compares with the best fan-out maximum of the same run.
 */
import type { BenchResults } from '../results.ts';
import { formatNumber, formatRatio, formatSummary } from '../summary.ts';
import { payloadLabel, table } from './markdown.ts';

const percent = (n: number): string => (Number.isFinite(n) ? `${Math.round(n * 100)}%` : '–');

/** The self-test table, or '' when the scenario did not run. */
export function generatorTable(results: BenchResults): string {
  const rows = results.generator ?? [];
  if (rows.length === 0) return '';
  const body = table(
    [
      'Peer writes',
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
      r.subscribers.toLocaleString('en-US'),
      payloadLabel(r.payloadBytes),
      formatSummary(r.framesPerSec),
      formatSummary(r.framesPerCpuSec),
      formatSummary(r.framesPerRead, (n) => n.toFixed(1)),
      formatSummary(r.generatorBusy, percent),
      formatSummary(r.generatorCoreBusy, percent),
      `${r.exactRuns} / ${r.runs}`,
    ]),
    new Set([1, 3, 4, 5, 6, 7]),
  );
  const lines: string[] = [];
  for (const payload of [...new Set(rows.map((r) => r.payloadBytes))]) {
    const batched = rows.find((r) => r.payloadBytes === payload && r.pattern === '64 KiB writes');
    const measured = results.fanout.filter((c) => c.payloadBytes === payload);
    if (batched === undefined || measured.length === 0) continue;
    const capacity = batched.framesPerCpuSec.median;
    // Only a server-bound maximum is a measurement of the server to set the capacity against.
    const best = measured
      .filter((c) => c.maxBound === 'server-bound')
      .sort((a, b) => b.maxSustainable.median - a.maxSustainable.median)[0];
    lines.push(
      best === undefined
        ? `- ${payloadLabel(payload)}: capacity ${formatNumber(capacity)} frames per generator CPU-second (64 KiB writes); ` +
            'no fan-out maximum of this run is server-bound, so none is set against it'
        : `- ${payloadLabel(payload)}: capacity ${formatNumber(capacity)} frames per generator CPU-second (64 KiB writes) ` +
            `against the best server-bound fan-out maximum ${formatNumber(best.maxSustainable.median)} deliveries/s ` +
            `(${best.target}, ${(best.members - 1).toLocaleString('en-US')} subscribers): ${formatRatio(capacity / best.maxSustainable.median)}`,
    );
  }
  return lines.length === 0 ? body : `${body}\n\n${lines.join('\n')}`;
}
