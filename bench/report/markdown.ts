/**
 * Markdown tables for every scenario of a results file, with wshub's ratio
 * against each peer on the scenario's headline figure.
 */
import type { BenchResults, FanoutCell, IdleRow } from '../results.ts';
import { formatBytes, formatNumber, formatRatio, formatSummary, type Summary } from '../summary.ts';

/** The target every ratio puts in the numerator. */
export const SUBJECT = 'wshub';

/** Renders a markdown table; `right` marks right-aligned (numeric) columns by index. */
export function table(headers: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const sep = headers.map((_, i) => (right.has(i) ? '---:' : '---'));
  const line = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(headers), line(sep), ...rows.map(line)].join('\n');
}

/** Milliseconds with one decimal. */
function ms(n: number): string {
  return Number.isFinite(n) ? n.toFixed(1) : '–';
}

/** Payload size label. */
export function payloadLabel(bytes: number): string {
  return bytes >= 1024 && bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

/** Subscriber count label of a fan-out cell (members minus the publisher). */
export function subscribersLabel(members: number): string {
  return (members - 1).toLocaleString('en-US');
}

/**
 * "≥ X (generator-bound)" when a search was stopped by the generator,
 * "X (server-bound)" when the generator had 3× headroom where it failed.
 */
export function maxSustainableLabel(cell: FanoutCell): string {
  const text = formatSummary(cell.maxSustainable);
  if (cell.maxGeneratorBound) return `≥ ${text} (generator-bound)`;
  return cell.maxBound === 'server-bound' ? `${text} (server-bound)` : text;
}

/**
 * Whether a fan-out maximum may take part in a ratio: results with the
 * bound classification need 'server-bound'; older ones need only not to be
 * generator-bound.
 */
export function ratioClaimable(cell: FanoutCell): boolean {
  return cell.maxBound === undefined ? !cell.maxGeneratorBound : cell.maxBound === 'server-bound';
}

/** The "wshub / peer" list of one fan-out cell: a ratio only where both maxima are server-bound. */
function fanoutRatioList(byTarget: Map<string, FanoutCell>): string {
  const mine = byTarget.get(SUBJECT);
  if (!mine) return '';
  const parts: string[] = [];
  for (const [target, cell] of byTarget) {
    if (target === SUBJECT) continue;
    const unclaimed = [mine, cell].filter((c) => !ratioClaimable(c)).map((c) => c.target);
    const ratio = formatRatio(ratioOf(mine.maxSustainable, cell.maxSustainable));
    if (unclaimed.length === 0) parts.push(`${SUBJECT} / ${target} = ${ratio}`);
    // wshub's maximum is a floor and the peer's is its own: the ratio is a floor too.
    else if (unclaimed.length === 1 && unclaimed[0] === SUBJECT)
      parts.push(`${SUBJECT} / ${target} ≥ ${ratio} (${SUBJECT} generator-bound)`);
    else parts.push(`${SUBJECT} / ${target}: no ratio (${unclaimed.join(' and ')} generator-bound)`);
  }
  return parts.join(', ');
}

/** Ratio of medians a / b (NaN when either is missing). */
export function ratioOf(a: Summary | undefined, b: Summary | undefined): number {
  if (!a || !b || !(b.median > 0)) return NaN;
  return a.median / b.median;
}

/** A "wshub / peer = r×" list for the peers present in `byTarget`. */
function ratioList(byTarget: Map<string, Summary>): string {
  const mine = byTarget.get(SUBJECT);
  if (!mine) return '';
  const parts: string[] = [];
  for (const [target, value] of byTarget) {
    if (target === SUBJECT) continue;
    parts.push(`${SUBJECT} / ${target} = ${formatRatio(ratioOf(mine, value))}`);
  }
  return parts.join(', ');
}

/** Fan-out tables: fixed-rate figures, maximum sustainable rate, and ratios per cell. */
export function fanoutTables(results: BenchResults): string {
  if (results.fanout.length === 0) return '';
  const rows = results.fanout.map((c) => [
    c.target + (c.generatorLimited ? ' ⚠' : ''),
    c.receivePath ?? 'node',
    subscribersLabel(c.members),
    payloadLabel(c.payloadBytes),
    formatNumber(c.ratePerPublisher),
    formatSummary(c.deliveriesPerSec),
    formatSummary(c.lost, formatNumber),
    formatSummary(c.p50Ms, ms),
    formatSummary(c.p99Ms, ms),
    formatSummary(c.maxMs, ms),
    formatSummary(c.serverCpuSec, (n) => n.toFixed(2)),
    formatSummary(c.deliveriesPerCpuSec),
    maxSustainableLabel(c),
    c.halfRate ? formatSummary(c.halfRate.p99Ms, ms) : '–',
  ]);
  const main = table(
    [
      'Target',
      'Receive path',
      'Subscribers',
      'Payload',
      'Rate (msg/s)',
      'Deliveries/s',
      'Lost',
      'p50 ms',
      'p99 ms',
      'max ms',
      'Server CPU s',
      'Deliveries / CPU-s',
      'Max sustainable deliveries/s',
      'p99 ms at ½ max',
    ],
    rows,
    new Set([2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]),
  );
  const cells = new Map<string, Map<string, FanoutCell>>();
  for (const c of results.fanout) {
    const key = `${subscribersLabel(c.members)} × ${payloadLabel(c.payloadBytes)}`;
    if (!cells.has(key)) cells.set(key, new Map());
    cells.get(key)!.set(c.target, c);
  }
  const ratioRows = [...cells].map(([key, byTarget]) => [key, fanoutRatioList(byTarget) || '–']);
  return `${main}\n\nMaximum sustainable deliveries/s, ratios of medians (only between server-bound maxima):\n\n${table(['Subscribers × payload', 'Ratios'], ratioRows)}`;
}

/** Many-rooms table with ratios on deliveries per server CPU-second. */
export function manyRoomsTable(results: BenchResults): string {
  if (results.manyRooms.length === 0) return '';
  const rows = results.manyRooms.map((r) => [
    r.target + (r.generatorLimited ? ' ⚠' : ''),
    `${r.rooms} × ${r.membersPerRoom}`,
    formatNumber(r.ratePerPublisher),
    formatSummary(r.deliveriesPerSec),
    formatSummary(r.lost, formatNumber),
    formatSummary(r.p50Ms, ms),
    formatSummary(r.p99Ms, ms),
    formatSummary(r.serverCpuSec, (n) => n.toFixed(2)),
    formatSummary(r.deliveriesPerCpuSec),
  ]);
  const byTarget = new Map(results.manyRooms.map((r) => [r.target, r.deliveriesPerCpuSec]));
  const ratios = ratioList(byTarget);
  return (
    table(
      [
        'Target',
        'Rooms × members',
        'Rate per room (msg/s)',
        'Deliveries/s',
        'Lost',
        'p50 ms',
        'p99 ms',
        'Server CPU s',
        'Deliveries / CPU-s',
      ],
      rows,
      new Set([2, 3, 4, 5, 6, 7, 8]),
    ) + (ratios ? `\n\nDeliveries per server CPU-second: ${ratios}.` : '')
  );
}

/** The bare-net row at the same level, if measured. */
function floorOf(results: BenchResults, row: IdleRow): IdleRow | undefined {
  return results.idle.find((r) => r.target === 'bare-net' && r.connections === row.connections);
}

/** Idle-memory table: per-connection RSS and heap, idle CPU, ratio to the bare-net floor and wshub ratios. */
export function idleTable(results: BenchResults): string {
  if (results.idle.length === 0) return '';
  const rows = results.idle.map((r) => {
    const floor = floorOf(results, r);
    return [
      r.target,
      r.connections.toLocaleString('en-US'),
      formatSummary(r.connected),
      formatSummary(r.rssPerConnBytes, formatBytes),
      r.heapPerConnBytes.median >= 0 ? formatSummary(r.heapPerConnBytes, formatBytes) : '–',
      formatSummary(r.idleCpuSec, (n) => n.toFixed(3)),
      floor ? formatRatio(ratioOf(r.rssPerConnBytes, floor.rssPerConnBytes)) : '–',
    ];
  });
  const lines: string[] = [];
  for (const level of [...new Set(results.idle.map((r) => r.connections))]) {
    const byTarget = new Map(
      results.idle.filter((r) => r.connections === level).map((r) => [r.target, r.rssPerConnBytes]),
    );
    const list = ratioList(byTarget);
    if (list)
      lines.push(
        `- ${level.toLocaleString('en-US')} connections, RSS per connection (lower is better): ${list}`,
      );
  }
  const idleSec = (results.idle[0]?.idleMs ?? 0) / 1000;
  return (
    table(
      [
        'Target',
        'Connections',
        'Connected',
        'RSS / connection',
        'Heap / connection',
        `Idle CPU s (${idleSec} s)`,
        '× bare-net',
      ],
      rows,
      new Set([1, 2, 3, 4, 5, 6]),
    ) + (lines.length > 0 ? `\n\n${lines.join('\n')}` : '')
  );
}

/** Handshake table with ratios on upgrades per server CPU-second, per auth variant. */
export function handshakeTable(results: BenchResults): string {
  if (results.handshakes.length === 0) return '';
  const rows = results.handshakes.map((r) => [
    r.target + (r.generatorLimited ? ' ⚠' : ''),
    r.jwt ? 'JWT (HS256)' : 'none',
    r.receivePath ?? 'node',
    formatSummary(r.upgradesPerSec),
    formatSummary(r.upgradesPerCpuSec),
    formatSummary(r.p99Ms, ms),
    formatSummary(r.failures, formatNumber),
  ]);
  const lines: string[] = [];
  for (const jwt of [false, true]) {
    const byTarget = new Map(
      results.handshakes.filter((r) => r.jwt === jwt).map((r) => [r.target, r.upgradesPerCpuSec]),
    );
    const list = ratioList(byTarget);
    if (list) lines.push(`- ${jwt ? 'with JWT' : 'without auth'}, upgrades per server CPU-second: ${list}`);
  }
  return (
    table(
      ['Target', 'Auth', 'Generator', 'Upgrades/s', 'Upgrades / CPU-s', 'p99 ms', 'Failures'],
      rows,
      new Set([3, 4, 5, 6]),
    ) + (lines.length > 0 ? `\n\n${lines.join('\n')}` : '')
  );
}

/** Whether the server's counters match what the clients saw; undefined when the target cannot tell. */
export function countersExact(r: BenchResults['slow'][number]): boolean | undefined {
  if (r.target.endsWith('(close)'))
    return r.serverClosed < 0 ? undefined : r.serverClosed === r.clientClosedByServer;
  if (r.serverDropped < 0) return undefined;
  return (
    r.serverDropped + r.slowFramesReceived === r.slowFramesOffered &&
    (r.serverClosed < 0 || r.serverClosed === r.clientClosedByServer)
  );
}

/** Slow-consumer table. */
export function slowTable(results: BenchResults): string {
  if (results.slow.length === 0) return '';
  const rows = results.slow.map((r) => {
    const exact = countersExact(r);
    return [
      r.target,
      `${r.slowMembers} / ${r.members.toLocaleString('en-US')}`,
      formatSummary(r.baselineP99Ms, ms),
      formatSummary(r.slowP99Ms, ms),
      formatSummary(r.p99Ratio, (n) => `${n.toFixed(2)}×`),
      formatSummary(r.healthyLost, formatNumber),
      formatSummary(r.rssGrowthBytes, formatBytes),
      `${r.plateauRuns} / ${r.runs}`,
      r.serverDropped < 0 ? 'n/a' : String(r.serverDropped),
      r.serverClosed < 0 ? 'n/a' : String(r.serverClosed),
      String(r.clientClosedByServer),
      `${r.slowFramesReceived} / ${r.slowFramesOffered}`,
      exact === undefined ? 'n/a' : exact ? 'yes' : 'no',
    ];
  });
  return table(
    [
      'Target',
      'Slow / members',
      'p99 ms without',
      'p99 ms with',
      'Ratio',
      'Healthy lost',
      'RSS growth',
      'Plateau runs',
      'Server dropped',
      'Server closed',
      'Clients closed',
      'Slow frames received / offered',
      'Counters exact',
    ],
    rows,
    new Set([2, 3, 4, 5, 6, 8, 9, 10]),
  );
}

/** Cross-node table: single node against two nodes through Redis and NATS, same rates. */
export function crossNodeTable(results: BenchResults): string {
  const rows = results.crossNode ?? [];
  if (rows.length === 0) return '';
  return table(
    ['Mode', 'Subscribers', 'Rate (msg/s)', 'Deliveries/s', 'Lost', 'p50 ms', 'p99 ms', 'max ms'],
    rows.map((r) => [
      r.mode + (r.generatorLimited ? ' ⚠' : ''),
      formatNumber(r.subscribers),
      formatNumber(r.ratePerPublisher),
      formatSummary(r.deliveriesPerSec),
      formatSummary(r.lost, formatNumber),
      formatSummary(r.p50Ms, ms),
      formatSummary(r.p99Ms, ms),
      formatSummary(r.maxMs, ms),
    ]),
    new Set([1, 2, 3, 4, 5, 6, 7]),
  );
}
