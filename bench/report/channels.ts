/**
 * The `## Channels: wshub vs Centrifugo` section of docs/BENCHMARKS.md,
 * rendered from a results file's `channels` cells: one table of figures,
 * one of wshub / Centrifugo ratios per cell, and the verdict against the
 * issue's target (≥ 3× on maximum sustainable deliveries/s and on
 * deliveries per server CPU-second at that maximum, in every cell; the
 * fixed-rate CPU ratio is shown beside them, not judged). It sits between its own
 * markers, so a run of the channel scenario alone leaves the hub section as
 * it is, and the other way round.
 */
import type { BenchResults, ChannelCell } from '../results.ts';
import { formatBytes, formatNumber, formatRatio, formatSummary } from '../summary.ts';
import { payloadLabel, ratioOf, table } from './markdown.ts';
import { verdictWord, type Verdict } from './verdict.ts';

export const CHANNEL_START_MARKER = '<!-- channel-benchmarks:start -->';
export const CHANNEL_END_MARKER = '<!-- channel-benchmarks:end -->';

/** wshub ≥ this × Centrifugo on both figures, in every cell. */
const TARGET_RATIO = 3;

function ms(n: number): string {
  return Number.isFinite(n) ? n.toFixed(1) : '–';
}

function cellLabel(c: { subscribers: number; payloadBytes: number }): string {
  return `${c.subscribers.toLocaleString('en-US')} × ${payloadLabel(c.payloadBytes)}`;
}

/** "≥ X (generator-bound)" when the search was stopped by the generator. */
function maxLabel(c: ChannelCell): string {
  const text = formatSummary(c.maxSustainable);
  return c.maxGeneratorBound ? `≥ ${text} (generator-bound)` : text;
}

/** The figures of every channel cell, one row per target × subscribers × payload. */
export function channelTable(cells: ChannelCell[]): string {
  const rows = cells.map((c) => [
    c.target + (c.generatorLimited ? ' ⚠' : ''),
    c.subscribers.toLocaleString('en-US'),
    payloadLabel(c.payloadBytes),
    maxLabel(c),
    formatSummary(c.maxDeliveriesPerCpuSec),
    `${formatSummary(c.maxP50Ms, ms)} / ${formatSummary(c.maxP99Ms, ms)}`,
    formatNumber(c.ratePerPublisher),
    formatSummary(c.deliveriesPerCpuSec),
    `${formatSummary(c.p50Ms, ms)} / ${formatSummary(c.p99Ms, ms)}`,
    formatSummary(c.lost, formatNumber),
    c.otherLoad ? formatSummary(c.otherLoad, (n) => `${Math.round(n * 100)}%`) : '–',
  ]);
  return table(
    [
      'Target',
      'Subscribers',
      'Payload',
      'Max sustainable deliveries/s',
      'Deliveries / CPU-s at max',
      'p50 / p99 ms at max',
      'Fixed rate (pub/s)',
      'Deliveries / CPU-s at fixed rate',
      'p50 / p99 ms at fixed rate',
      'Lost at fixed rate',
      "Others' share of CPU 0",
    ],
    rows,
    new Set([1, 3, 4, 5, 6, 7, 8, 9, 10]),
  );
}

/** One cell's comparison: both ratios and whether they meet the target (null: not determined). */
export interface ChannelComparison {
  label: string;
  maxRatio: number;
  /** Deliveries per server CPU-second in the highest passing step. */
  cpuRatio: number;
  /** Deliveries per server CPU-second at the fixed rate (not judged: both servers pay a send per delivery there). */
  fixedCpuRatio: number;
  met: boolean | null;
  why: string;
}

/** Compares wshub with Centrifugo in every cell both were measured in (and names the cells they were not). */
export function compareChannels(cells: ChannelCell[]): ChannelComparison[] {
  const keys = [...new Set(cells.map((c) => `${c.subscribers}:${c.payloadBytes}`))];
  return keys.map((key) => {
    const [subscribers, payloadBytes] = key.split(':').map(Number) as [number, number];
    const label = cellLabel({ subscribers, payloadBytes });
    const find = (target: string): ChannelCell | undefined =>
      cells.find(
        (c) => c.target === target && c.subscribers === subscribers && c.payloadBytes === payloadBytes,
      );
    const mine = find('wshub');
    const theirs = find('centrifugo');
    if (!mine || !theirs) {
      const missing = !mine ? 'wshub' : 'centrifugo';
      return {
        label,
        maxRatio: NaN,
        cpuRatio: NaN,
        fixedCpuRatio: NaN,
        met: null,
        why: `${missing} not measured`,
      };
    }
    const maxRatio = ratioOf(mine.maxSustainable, theirs.maxSustainable);
    const cpuRatio = ratioOf(mine.maxDeliveriesPerCpuSec, theirs.maxDeliveriesPerCpuSec);
    const fixedCpuRatio = ratioOf(mine.deliveriesPerCpuSec, theirs.deliveriesPerCpuSec);
    const base = { label, maxRatio, cpuRatio, fixedCpuRatio };
    if (!Number.isFinite(maxRatio) || !Number.isFinite(cpuRatio))
      return { ...base, met: null, why: 'a figure is missing (no rate passed)' };
    const ok = maxRatio >= TARGET_RATIO && cpuRatio >= TARGET_RATIO;
    // A generator-bound figure is a lower bound: it can neither prove a pass (theirs) nor a fail (ours).
    if (ok && theirs.maxGeneratorBound)
      return { ...base, met: null, why: "Centrifugo's maximum is generator-bound" };
    if (!ok && mine.maxGeneratorBound)
      return { ...base, met: null, why: "wshub's maximum is generator-bound" };
    return { ...base, met: ok, why: '' };
  });
}

/** The ratio table: wshub / Centrifugo per cell. */
export function channelRatioTable(cells: ChannelCell[]): string {
  const rows = compareChannels(cells).map((c) => [
    c.label,
    formatRatio(c.maxRatio),
    formatRatio(c.cpuRatio),
    formatRatio(c.fixedCpuRatio),
    `${verdictWord(c.met)}${c.why ? ` (${c.why})` : ''}`,
  ]);
  return table(
    [
      'Subscribers × payload',
      'Max sustainable, wshub / Centrifugo',
      'Deliveries / CPU-s at max, wshub / Centrifugo',
      'Deliveries / CPU-s at fixed rate (not judged)',
      `≥ ${TARGET_RATIO}× on both judged figures`,
    ],
    rows,
    new Set([1, 2, 3]),
  );
}

/** The verdict against the issue's channel target; null (not determined) when nothing was compared. */
export function channelVerdict(results: BenchResults): Verdict {
  const target = `Channels: ≥ ${TARGET_RATIO}× Centrifugo's max sustainable deliveries/s and deliveries per server CPU-second, every cell`;
  const comparisons = compareChannels(results.channels ?? []);
  if (comparisons.length === 0) return { target, met: null, detail: 'not measured' };
  const mets = comparisons.map((c) => c.met);
  const met = mets.includes(false) ? false : mets.includes(null) ? null : true;
  const detail = comparisons
    .map(
      (c) =>
        `${c.label}: ${formatRatio(c.maxRatio)} max sustainable, ${formatRatio(c.cpuRatio)} per CPU-s at max${c.why ? ` (${c.why})` : ''}`,
    )
    .join('; ');
  return { target, met, detail };
}

/** The whole channels section, markers excluded; '' when the results hold no channel cells. */
export function renderChannelSection(results: BenchResults): string {
  const cells = results.channels ?? [];
  if (cells.length === 0) return '';
  const m = results.machine;
  const verdict = channelVerdict(results);
  const errors = results.errors.filter((e) => e.scenario === 'channels');
  const failed =
    errors.length === 0
      ? ''
      : `\n\nMeasurements that failed in this run:\n\n${errors.map((e) => `- ${e.target}: ${e.message.split('\n')[0]}`).join('\n')}`;
  return `## Channels: wshub vs Centrifugo

What it measures: one channel with N subscribers, each a WebSocket client
of the Centrifuge client protocol v2 (JSON) at \`/connection/websocket\`
(connect, subscribe, then count publication pushes, answering the server's
pings), and one publisher posting one publication per request to the server
API (\`POST /api/publish\`, \`X-API-Key\`, keep-alive HTTP/1.1, up to 8
requests in flight) at an open-loop rate; the publication's data carries its
scheduled send time, and latency is measured from it to the frame that
brings it (one sample per frame, weighted by the pushes in the frame, so a
batched frame counts at its oldest publication's latency). Centrifugo
v6.9.1 is built by the benchmark with \`go install\` and runs with
\`GOMAXPROCS=1\`, anonymous connections, subscriptions allowed for any
client, no history, presence or join/leave; wshub's channel endpoint is
configured the same way. ${m.pinned ? 'Each server runs pinned to CPU 0 and the load generator (subscribers and publisher) to CPU 1 (`taskset`), both servers started in the same invocation and taking turns cell by cell.' : 'taskset was not available: servers and generator shared the CPUs.'}
Server CPU is read from \`/proc\` inside each measurement window. "Max
sustainable" is the highest publication rate × N with p99 < 100 ms, no
loss and every subscriber subscribed, found by the same rate search as the
fan-out scenario; loss counts every publication attempted × N against every
push received over the whole run, so a publication the API refused or left
unanswered is lost too. The verdict judges the maximum and the deliveries
per server CPU-second in the step that reached it; "Deliveries / CPU-s at
fixed rate" (both servers doing the same work, ${formatNumber(cells[0]!.ratePerPublisher * cells[0]!.subscribers)} deliveries/s) is
shown but not judged: there every delivery is a send of its own for both
servers, so it mostly measures the kernel. Cells show the median of
${results.runs} run${results.runs === 1 ? '' : 's'} with the min–max range; ⚠ marks a fixed-rate run in which the
generator's core was more than 90% busy. "Others' share of CPU 0" is the
part of the server's core that other processes on the machine used during
the cell's runs (from \`/proc/stat\`, less the server's own CPU): where it
is high, latency and the maximum are understated; a search step that
failed while others took more than 20% of that core was measured once more.

Command:

\`\`\`sh
${results.command}
\`\`\`

Machine: ${m.cpuModel}, ${m.cores} cores, ${formatBytes(m.ramBytes)} RAM; Node ${m.node}; ${m.kernel};
${results.startedAt.slice(0, 16).replace('T', ' ')} UTC; load average ${m.loadBefore.toFixed(2)} before, ${m.loadAfter.toFixed(2)} after${results.quick ? '; **quick mode** (one run, coarse search steps)' : ''}.

${channelTable(cells)}

wshub / Centrifugo, ratios of medians:

${channelRatioTable(cells)}

**Verdict** — ${verdict.target}: **${verdictWord(verdict.met)}** (${verdict.detail}).${failed}
`;
}

/**
 * Replaces the text between the channel markers in `doc` with `section`;
 * appends the markers and the section when the document has none yet.
 */
export function replaceChannelSection(doc: string, section: string): string {
  const block = `${CHANNEL_START_MARKER}\n\n${section.trim()}\n\n${CHANNEL_END_MARKER}`;
  const start = doc.indexOf(CHANNEL_START_MARKER);
  const end = doc.indexOf(CHANNEL_END_MARKER);
  if (start >= 0 && end > start)
    return doc.slice(0, start) + block + doc.slice(end + CHANNEL_END_MARKER.length);
  return `${doc.trimEnd()}\n\n${block}\n`;
}
