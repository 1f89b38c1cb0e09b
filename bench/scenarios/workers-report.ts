/**
 * Markdown tables of the workers scenario: fan-out, handshakes and idle
 * memory per relay mode × worker count, the CPU of every process where the
 * fan-out stopped, and the scaling factors (workers-2 / workers-1).
 */
import { table } from '../report/markdown.ts';
import { formatBytes, formatNumber, formatSummary, type Summary } from '../summary.ts';
import { formatShare } from './workers-cpu.ts';
import { P99_LIMIT_MS, type WorkersResults, type WorkersRow } from './workers.ts';

const MODE_LABEL = { relay: 'IPC relay', redis: 'Redis' } as const;

function ms(n: number): string {
  return Number.isFinite(n) ? n.toFixed(1) : '–';
}

/** "1.8× (1.6×–2.0×)" for a summary of ratios. */
export function formatFactor(s: Summary): string {
  const f = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '–');
  if (!Number.isFinite(s.median)) return '–';
  if (s.values.length <= 1 || s.min === s.max) return f(s.median);
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

/** The limiters of each run, most frequent first: "cores (3 of 3)". */
export function limiterLabel(perRun: string[][]): string {
  const counts = new Map<string, number>();
  for (const run of perRun) for (const l of run) counts.set(l, (counts.get(l) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([l, n]) => `${l} (${n} of ${perRun.length})`)
    .join(', ');
}

function label(row: WorkersRow): [string, string] {
  return [MODE_LABEL[row.mode], String(row.workers)];
}

/** All tables of the scenario, separated by blank lines ('' when nothing was measured). */
export function renderWorkersTables(results: WorkersResults): string {
  if (results.rows.length === 0) return '';
  const first = results.rows[0]!;
  const fanout = table(
    [
      'Relay',
      'Workers',
      'Max sustainable deliveries/s',
      'p99 ms at max',
      'CPU at max (cores)',
      'CPU at the first failing rate (cores)',
      'Full at the failing rate',
    ],
    results.rows.map((r) => [
      ...label(r),
      `${r.fanout.generatorBound ? '≥ ' : ''}${formatSummary(r.fanout.maxDeliveriesPerSec)}`,
      formatSummary(r.fanout.p99AtMaxMs, ms),
      formatShare(r.fanout.cpuAtMax, r.mode === 'redis'),
      formatShare(r.fanout.cpuAtFail, r.mode === 'redis'),
      limiterLabel(r.fanout.limiters),
    ]),
    new Set([2, 3]),
  );
  const handshakes = table(
    [
      'Relay',
      'Workers',
      'Upgrades/s',
      'Upgrades / server CPU-s',
      'p99 ms',
      'Failures',
      'CPU during the loop (cores)',
      'Full',
    ],
    results.rows.map((r) => [
      ...label(r),
      formatSummary(r.handshakes.perSec),
      formatSummary(r.handshakes.perServerCpuSec),
      formatSummary(r.handshakes.p99Ms, ms),
      formatSummary(r.handshakes.failures),
      formatShare(r.handshakes.cpu, r.mode === 'redis'),
      limiterLabel(r.handshakes.limiters),
    ]),
    new Set([2, 3, 4, 5]),
  );
  const idle = table(
    ['Relay', 'Workers', 'Connected', 'RSS / connection', 'Tree RSS before', 'Tree RSS with them'],
    results.rows.map((r) => [
      ...label(r),
      formatSummary(r.idle.connected),
      formatSummary(r.idle.rssPerConnBytes, formatBytes),
      formatSummary(r.idle.rssBeforeBytes, formatBytes),
      formatSummary(r.idle.rssWithBytes, formatBytes),
    ]),
    new Set([2, 3, 4, 5]),
  );
  const parts = [
    `Fan-out: one room of ${formatNumber(first.fanout.subscribers)} subscribers + the publisher, ${first.fanout.payloadBytes} B, ` +
      `highest rate with p99 < ${P99_LIMIT_MS} ms and nothing lost:`,
    fanout,
    `Handshakes: ${first.handshakes.concurrency} concurrent connectors, no auth:`,
    handshakes,
    `Idle memory: ${formatNumber(first.idle.connections)} idle connections, RSS summed over the primary and the workers:`,
    idle,
  ];
  if (results.scaling.length > 0) {
    parts.push(
      'Scaling factor, --workers 2 / --workers 1 (paired per run):',
      table(
        ['Relay', 'Fan-out max deliveries/s', 'Upgrades/s', 'Upgrades / server CPU-s', 'RSS / connection'],
        results.scaling.map((s) => [
          MODE_LABEL[s.mode],
          formatFactor(s.fanout),
          formatFactor(s.handshakesPerSec),
          formatFactor(s.handshakesPerCpuSec),
          formatFactor(s.rssPerConn),
        ]),
        new Set([1, 2, 3, 4]),
      ),
    );
  }
  parts.push(
    `Everything ran on CPUs ${results.cpuList} (taskset): primary, workers, redis-server and the load generator (${results.receivePath ?? 'node'} receive path) share them. ` +
      'CPU in cores = CPU-seconds per second of the window; "others" is what other processes took from those cores. ' +
      'Full: primary or a worker ≥ 0.85 of a core, or the cores together ≥ 85% busy ("cores"). ' +
      `Server: \`${results.command}\`.`,
  );
  return parts.join('\n\n');
}
