/**
 * The upgrade-cost targets of the performance issue, judged on a results
 * file's handshake rows: wshub's upgrades per server CPU-second against the
 * seed (the Go library wshub's API follows; one independent measurement on
 * this machine, not run by the suite) and against uWebSockets.js of the
 * same run, without auth and with a different HS256 token per connection.
 * Also the ready-to-paste markdown section `bench/run.ts` prints after a
 * handshakes run.
 */
import type { BenchResults, HandshakeRow } from '../results.ts';
import { formatNumber, formatRatio, formatSummary, summarize, type Summary } from '../summary.ts';
import { SUBJECT, ratioOf, table } from './markdown.ts';
import type { Verdict } from './verdict.ts';

/** The seed's upgrades per CPU-second on this machine: an independent measurement, not rerun here. */
export const SEED_UPGRADES_PER_CPU_SEC = 16_000;
/** wshub must reach this multiple of the seed's figure. */
export const SEED_FACTOR = 1.3;
/** wshub must reach this multiple of uWebSockets.js's figure in the same run. */
export const UWS_FACTOR = 0.7;

/** The label of the seed's reference row. */
const SEED_LABEL = 'seed (Go; independent measurement, not run)';

function auth(jwt: boolean): string {
  return jwt ? 'JWT (HS256)' : 'none';
}

/** One judged variant (without auth, or with JWT): the parts of the verdict and its text. */
function judge(
  results: BenchResults,
  jwt: boolean,
): { seed: boolean | null; uws: boolean | null; text: string } {
  const label = jwt ? 'with JWT (a different token per connection)' : 'without auth';
  const mine = results.handshakes.find((r) => r.target === SUBJECT && r.jwt === jwt);
  if (mine === undefined) return { seed: null, uws: null, text: `${label}: wshub not measured` };
  const perCpu = mine.upgradesPerCpuSec.median;
  const seedBar = SEED_FACTOR * SEED_UPGRADES_PER_CPU_SEC;
  const seed = perCpu >= seedBar;
  const parts = [
    `${label}: wshub ${formatNumber(perCpu)} upgrades per CPU-second vs ${SEED_FACTOR} × seed = ${formatNumber(seedBar)} → ${seed ? 'met' : 'not met'} (${formatRatio(perCpu / SEED_UPGRADES_PER_CPU_SEC)} the seed)`,
  ];
  const uwsRow = results.handshakes.find((r) => r.target === 'uws' && r.jwt === jwt);
  let uws: boolean | null = null;
  if (uwsRow === undefined) parts.push('uws not measured');
  else {
    const ratio = ratioOf(mine.upgradesPerCpuSec, uwsRow.upgradesPerCpuSec);
    uws = ratio >= UWS_FACTOR;
    parts.push(
      `vs ${UWS_FACTOR} × uws (same run, ${formatNumber(uwsRow.upgradesPerCpuSec.median)}) = ${formatNumber(UWS_FACTOR * uwsRow.upgradesPerCpuSec.median)} → ${uws ? 'met' : 'not met'} (${formatRatio(ratio)} uws)`,
    );
  }
  if (uwsRow !== undefined) parts.push(...floorNotes(results, jwt, uwsRow));
  if (mine.generatorLimited || uwsRow?.generatorLimited)
    parts.push('a run was bounded by the load generator (⚠), so the server was not saturated');
  if (jwt && mine.distinctTokens !== undefined)
    parts.push(
      `${mine.distinctTokens.toLocaleString('en-US')} distinct tokens, at most ${mine.tokenReuses ?? 0} reused in a run`,
    );
  return { seed, uws, text: parts.join('; ') };
}

/**
 * What the floor peers of the same run say about the uws bar: bare-net
 * (node:net, nothing but the handshake) is the most any server on Node's
 * public socket API can reach; tcp-handle shows what is left without
 * node:net's JavaScript layer.
 */
function floorNotes(results: BenchResults, jwt: boolean, uwsRow: HandshakeRow): string[] {
  const notes: string[] = [];
  const floors: Array<[string, string]> = [
    ['bare-net', 'node:net floor (bare-net: a node:net server that does nothing but the handshake)'],
    ['tcp-handle', "without node:net (tcp-handle: Node's TCP handle driven directly)"],
  ];
  for (const [name, what] of floors) {
    const floor = results.handshakes.find((r) => r.target === name && r.jwt === jwt);
    if (floor === undefined) continue;
    const ratio = ratioOf(floor.upgradesPerCpuSec, uwsRow.upgradesPerCpuSec);
    notes.push(
      `${what}: ${formatNumber(floor.upgradesPerCpuSec.median)} = ${formatRatio(ratio)} uws, ${ratio >= UWS_FACTOR ? 'at or above' : 'below'} the ${UWS_FACTOR}× bar`,
    );
  }
  return notes;
}

/** The verdict on the upgrade-cost targets, for the verdict list of the report. */
export function handshakeCostVerdict(results: BenchResults): Verdict {
  const target = `Upgrade cost: ≥ ${SEED_FACTOR}× the seed's ${formatNumber(SEED_UPGRADES_PER_CPU_SEC)} and ≥ ${UWS_FACTOR}× uws upgrades per server CPU-second, without and with JWT`;
  if (results.handshakes.length === 0) return { target, met: null, detail: 'not measured' };
  const oks: Array<boolean | null> = [];
  const texts: string[] = [];
  for (const jwt of [false, true]) {
    const v = judge(results, jwt);
    oks.push(v.seed, v.uws);
    texts.push(v.text);
  }
  const met = oks.includes(false) ? false : oks.includes(null) ? null : true;
  return { target, met, detail: texts.join('. ') };
}

function row(r: HandshakeRow, mine: Summary | undefined): string[] {
  return [
    r.target + (r.generatorLimited ? ' ⚠' : ''),
    auth(r.jwt),
    r.receivePath ?? 'node',
    formatSummary(r.upgradesPerCpuSec),
    formatSummary(r.upgradesPerSec),
    formatSummary(r.p99Ms, (n) => (Number.isFinite(n) ? n.toFixed(1) : '–')),
    formatSummary(r.failures, formatNumber),
    r.target === SUBJECT ? '1×' : formatRatio(ratioOf(mine, r.upgradesPerCpuSec)),
  ];
}

/**
 * The upgrade-cost section as markdown (before prettier): the handshake
 * rows with the seed's reference row per auth variant, ratios to wshub,
 * and the verdict lines. Empty without handshake rows.
 */
export function handshakeCostSection(results: BenchResults): string {
  if (results.handshakes.length === 0) return '';
  const rows: string[][] = [];
  for (const jwt of [false, true]) {
    const variant = results.handshakes.filter((r) => r.jwt === jwt);
    if (variant.length === 0) continue;
    const mine = variant.find((r) => r.target === SUBJECT)?.upgradesPerCpuSec;
    for (const r of variant) rows.push(row(r, mine));
    const seed = summarize([SEED_UPGRADES_PER_CPU_SEC]);
    rows.push([
      SEED_LABEL,
      auth(jwt),
      '–',
      formatSummary(seed),
      '–',
      '–',
      '–',
      formatRatio(ratioOf(mine, seed)),
    ]);
  }
  const m = results.machine;
  const tokens = results.handshakes.find((r) => r.jwt && r.distinctTokens !== undefined)?.distinctTokens;
  const lines = [false, true].map((jwt) => `- ${judge(results, jwt).text}.`);
  return [
    `Command: \`${results.command}\` (${results.runs} run${results.runs === 1 ? '' : 's'} per cell; median with min–max).`,
    `Machine: ${m.cpuModel}, ${m.cores} cores; Node ${m.node}; ${m.kernel}; ${m.pinned ? 'server on CPU 0, generator on CPU 1' : 'not pinned'}; ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC; load average ${m.loadBefore.toFixed(2)} before, ${m.loadAfter.toFixed(2)} after.`,
    tokens === undefined
      ? ''
      : `JWT rows: every connection presents one of ${tokens.toLocaleString('en-US')} distinct HS256 tokens, signed before the run.`,
    table(
      [
        'Target',
        'Auth',
        'Generator',
        'Upgrades / CPU-s',
        'Upgrades/s',
        'p99 ms',
        'Failures',
        'wshub / target',
      ],
      rows,
      new Set([3, 4, 5, 6, 7]),
    ),
    lines.join('\n'),
  ]
    .filter((part) => part !== '')
    .join('\n\n');
}
