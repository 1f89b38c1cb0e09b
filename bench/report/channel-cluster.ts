/**
 * The `## Channels across two nodes through Redis: wshub vs Centrifugo`
 * section of docs/BENCHMARKS.md, rendered from a results file's
 * `channelCluster` cells: one table of figures per target, history setting
 * and cell, the wshub / Centrifugo ratios per history setting, and what
 * keeping history costs each target (history on / off). It sits between its
 * own markers, so a run of this scenario alone leaves the other sections as
 * they are.
 */
import type { BenchResults, ChannelClusterCell } from '../results.ts';
import { formatBytes, formatNumber, formatRatio, formatSummary, type Summary } from '../summary.ts';
import { payloadLabel, ratioOf, table } from './markdown.ts';

export const CLUSTER_START_MARKER = '<!-- channel-cluster-benchmarks:start -->';
export const CLUSTER_END_MARKER = '<!-- channel-cluster-benchmarks:end -->';

function ms(n: number): string {
  return Number.isFinite(n) ? n.toFixed(1) : '–';
}

function us(n: number): string {
  return Number.isFinite(n) ? n.toFixed(2) : '–';
}

function cpu(s: Summary): string {
  return formatSummary(s, (n) => (Number.isFinite(n) ? n.toFixed(2) : '–'));
}

/** The figures of every cell, one row per target × history × subscribers × payload. */
export function clusterTable(cells: ChannelClusterCell[]): string {
  const rows = cells.map((c) => [
    c.target + (c.generatorLimited ? ' ⚠' : ''),
    c.history ? 'on' : 'off',
    c.subscribers.toLocaleString('en-US'),
    payloadLabel(c.payloadBytes),
    c.maxGeneratorBound
      ? `≥ ${formatSummary(c.maxSustainable)} (generator-bound)`
      : formatSummary(c.maxSustainable),
    formatSummary(c.maxCpuUsPerDelivery, us),
    `${formatSummary(c.maxP50Ms, ms)} / ${formatSummary(c.maxP99Ms, ms)}`,
    formatNumber(c.ratePerPublisher),
    formatSummary(c.cpuUsPerDelivery, us),
    `${cpu(c.cpuSecA)} / ${cpu(c.cpuSecB)} / ${cpu(c.cpuSecRedis)}`,
    `${formatSummary(c.p50Ms, ms)} / ${formatSummary(c.p99Ms, ms)}`,
    formatSummary(c.lost, formatNumber),
    formatSummary(c.otherLoad, (n) => `${Math.round(n * 100)}%`),
  ]);
  return table(
    [
      'Target',
      'History',
      'Subscribers (node B)',
      'Payload',
      'Max sustainable deliveries/s',
      'CPU µs / delivery at max',
      'p50 / p99 ms at max',
      'Fixed rate (pub/s)',
      'CPU µs / delivery at fixed rate',
      'CPU-s A / B / redis at fixed rate',
      'p50 / p99 ms at fixed rate',
      'Lost at fixed rate',
      "Others' share of CPU 0",
    ],
    rows,
    new Set([2, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
  );
}

/** One cell's wshub / Centrifugo ratios (NaN where a side is missing). */
export interface ClusterComparison {
  history: boolean;
  /** Subscribers × payload. */
  label: string;
  /** Max sustainable deliveries/s, wshub / Centrifugo (higher is better for wshub). */
  maxRatio: number;
  /** Centrifugo's CPU per delivery / wshub's, at the maximum and at the fixed rate (higher is better for wshub). */
  cpuAtMaxRatio: number;
  cpuAtFixedRatio: number;
}

/** Compares wshub with Centrifugo in every cell (same history setting, N and payload) both were measured in. */
export function compareClusters(cells: ChannelClusterCell[]): ClusterComparison[] {
  const keys = [...new Set(cells.map((c) => `${c.history ? 1 : 0}:${c.subscribers}:${c.payloadBytes}`))];
  return keys.map((key) => {
    const [history, subscribers, payloadBytes] = key.split(':').map(Number) as [number, number, number];
    const find = (target: string): ChannelClusterCell | undefined =>
      cells.find(
        (c) =>
          c.target === target &&
          (c.history ? 1 : 0) === history &&
          c.subscribers === subscribers &&
          c.payloadBytes === payloadBytes,
      );
    const mine = find('wshub');
    const theirs = find('centrifugo');
    const label = `${subscribers.toLocaleString('en-US')} × ${payloadLabel(payloadBytes)}`;
    const on = history === 1;
    if (!mine || !theirs)
      return { history: on, label, maxRatio: NaN, cpuAtMaxRatio: NaN, cpuAtFixedRatio: NaN };
    return {
      history: on,
      label,
      maxRatio: ratioOf(mine.maxSustainable, theirs.maxSustainable),
      cpuAtMaxRatio: ratioOf(theirs.maxCpuUsPerDelivery, mine.maxCpuUsPerDelivery),
      cpuAtFixedRatio: ratioOf(theirs.cpuUsPerDelivery, mine.cpuUsPerDelivery),
    };
  });
}

/** The ratio table: one row per history setting and cell. */
export function clusterRatioTable(cells: ChannelClusterCell[]): string {
  const rows = compareClusters(cells).map((c) => [
    c.history ? 'on' : 'off',
    c.label,
    formatRatio(c.maxRatio),
    formatRatio(c.cpuAtMaxRatio),
    formatRatio(c.cpuAtFixedRatio),
  ]);
  return table(
    [
      'History',
      'Subscribers × payload',
      'Max sustainable, wshub / Centrifugo',
      'CPU per delivery at max, Centrifugo / wshub',
      'CPU per delivery at fixed rate, Centrifugo / wshub',
    ],
    rows,
    new Set([2, 3, 4]),
  );
}

/** What keeping history costs one target in one cell: history-on figures over history-off ones. */
export interface HistoryCost {
  target: string;
  /** Subscribers × payload. */
  label: string;
  /** Max sustainable deliveries/s, on / off (below 1: history lowers the maximum). */
  maxRatio: number;
  /** CPU per delivery, on / off, at the maximum and at the fixed rate (above 1: history costs CPU). */
  cpuAtMaxRatio: number;
  cpuAtFixedRatio: number;
}

/** Every target and cell measured both with history on and off, in the order of the history-on cells. */
export function historyCosts(cells: ChannelClusterCell[]): HistoryCost[] {
  return cells
    .filter((on) => on.history)
    .flatMap((on) => {
      const off = cells.find(
        (c) =>
          !c.history &&
          c.target === on.target &&
          c.subscribers === on.subscribers &&
          c.payloadBytes === on.payloadBytes,
      );
      if (!off) return [];
      return [
        {
          target: on.target,
          label: `${on.subscribers.toLocaleString('en-US')} × ${payloadLabel(on.payloadBytes)}`,
          maxRatio: ratioOf(on.maxSustainable, off.maxSustainable),
          cpuAtMaxRatio: ratioOf(on.maxCpuUsPerDelivery, off.maxCpuUsPerDelivery),
          cpuAtFixedRatio: ratioOf(on.cpuUsPerDelivery, off.cpuUsPerDelivery),
        },
      ];
    });
}

/** The history-cost table; '' when no cell was measured both ways. */
export function historyCostTable(cells: ChannelClusterCell[]): string {
  const costs = historyCosts(cells);
  if (costs.length === 0) return '';
  return table(
    [
      'Target',
      'Subscribers × payload',
      'Max sustainable, on / off',
      'CPU per delivery at max, on / off',
      'CPU per delivery at fixed rate, on / off',
    ],
    costs.map((c) => [
      c.target,
      c.label,
      formatRatio(c.maxRatio),
      formatRatio(c.cpuAtMaxRatio),
      formatRatio(c.cpuAtFixedRatio),
    ]),
    new Set([2, 3, 4]),
  );
}

/** The paragraph saying how history was set in the rows of `cells`. */
export function historyDescription(cells: ChannelClusterCell[]): string {
  const on = cells.find((c) => c.history);
  const off =
    'wshub nodes with `--broker redis://` only, carrying publications; Centrifugo channels with `history_size: 0`';
  if (!on) return `History is **off on both** (${off}), so the figures compare pure cross-node fan-out.`;
  const size = on.historySize !== undefined ? String(on.historySize) : 'N';
  const ttl = on.historyTtlSec !== undefined ? String(on.historyTtlSec) : 'T';
  return (
    `Rows with History **on** keep the last ${size} publications of each channel in the same Redis for ${ttl} s, recovery allowed, on both: ` +
    `wshub nodes get the Redis channel engine (\`wshub-channels --broker redis://… --history ${size} --history-ttl ${ttl}\`), so every publication runs its publish script (stream append and pub/sub in one step); ` +
    `Centrifugo's channels have \`history_size: ${size}\`, \`history_ttl: ${ttl}s\`, \`allow_recovery: true\`, which its Redis engine keeps the same way. ` +
    `After every history-on run the channel's stream was read back from Redis (XLEN), and a run whose stream did not hold min(${size}, publications accepted) entries failed its cell. ` +
    `Rows with History off: ${off}. Rows are compared with each other only at the same setting, each setting on fresh clusters.`
  );
}

/** The whole section, markers excluded; '' when the results hold no cross-node channel cells. */
export function renderClusterSection(results: BenchResults): string {
  const cells = results.channelCluster ?? [];
  if (cells.length === 0) return '';
  const m = results.machine;
  const errors = results.errors.filter((e) => e.scenario === 'channels-cluster');
  const failed =
    errors.length === 0
      ? ''
      : `\n\nMeasurements that failed in this run:\n\n${errors.map((e) => `- ${e.target}: ${e.message.split('\n')[0]}`).join('\n')}`;
  const historyText = historyDescription(cells);
  const costs = historyCostTable(cells);
  const costSection =
    costs === ''
      ? ''
      : `\n\nWhat keeping history costs each target, ratios of medians (history on / history off):\n\n${costs}`;
  return `## Channels across two nodes through Redis: wshub vs Centrifugo

What it measures: the channel fan-out of the section above, but across two
nodes. Per target, one fresh \`redis-server\` (no persistence) and two nodes
joined through it: wshub as \`wshub-channels --broker redis://…\` (the same
channel configuration as above), Centrifugo v6.9.1 with its Redis engine
(\`engine.type: redis\`, \`GOMAXPROCS=1\`). The N subscribers (Centrifuge client
protocol v2, JSON) all connect to node B; the publisher posts to node A's
server API, so every publication crosses Redis before it reaches anyone.
${historyText} ${m.pinned ? 'Both nodes and redis-server run pinned to CPU 0, the load generator to CPU 1 (`taskset`); the targets run in the same invocation and take turns cell by cell.' : 'taskset was not available: servers and generator shared the CPUs.'}
CPU is read from \`/proc\` for node A, node B and redis-server inside each
measurement window; "CPU µs / delivery" is their sum divided by the
deliveries in the window. "Max sustainable" is the highest publication rate ×
N with p99 < 100 ms and no loss, by the same rate search as above; loss
counts every publication attempted × N against every push received over the
whole run. The fixed rate is the same for both targets
(${formatNumber(cells[0]!.ratePerPublisher * cells[0]!.subscribers)} deliveries/s at the first size). Cells show the median of
${results.runs} run${results.runs === 1 ? '' : 's'} with the min–max range; ⚠ marks a fixed-rate run in which the generator's
core was more than 90% busy. "Others' share of CPU 0" is what processes
other than the three took from their core during the cell's runs: where it is
high, every figure of the row is pessimistic.

Command:

\`\`\`sh
${results.command}
\`\`\`

Machine: ${m.cpuModel}, ${m.cores} cores, ${formatBytes(m.ramBytes)} RAM; Node ${m.node}; ${m.kernel};
${results.startedAt.slice(0, 16).replace('T', ' ')} UTC; load average ${m.loadBefore.toFixed(2)} before, ${m.loadAfter.toFixed(2)} after${results.quick ? '; **quick mode** (one run, coarse search steps)' : ''}.

${clusterTable(cells)}

wshub against Centrifugo, ratios of medians per history setting (above 1: wshub ahead):

${clusterRatioTable(cells)}${costSection}${failed}
`;
}

/**
 * Replaces the text between this section's markers in `doc` with `section`;
 * appends the markers and the section when the document has none yet.
 */
export function replaceClusterSection(doc: string, section: string): string {
  const block = `${CLUSTER_START_MARKER}\n\n${section.trim()}\n\n${CLUSTER_END_MARKER}`;
  const start = doc.indexOf(CLUSTER_START_MARKER);
  const end = doc.indexOf(CLUSTER_END_MARKER);
  if (start >= 0 && end > start)
    return doc.slice(0, start) + block + doc.slice(end + CLUSTER_END_MARKER.length);
  return `${doc.trimEnd()}\n\n${block}\n`;
}
