/**
 * Scenario "storm" (reconnection storm): per target, a steady group of 200
 * clients in one room receives a publisher's 50 msg/s (64 B, timestamped)
 * the whole time, while 10,000 clients connect and join another room within
 * one second, from 200 source addresses (127.0.0.2 …) and four generator
 * processes. A refused client retries after the server's Retry-After (plus
 * up to 500 ms jitter), a failed attempt (no answer within 8 s, reset,
 * closed) after a backoff; at most 10 attempts, none later than 15 s after
 * the storm's start.
 *
 * Measured per run: time until all clients joined (and until 50% and 99%),
 * connect latency per successful attempt and per client (retries
 * included), refusals by HTTP status, failed attempts without an answer,
 * retries, a roll call (one message to the storm room afterwards: how many
 * joined clients really are in it), server CPU-seconds and peak RSS over the
 * storm, the kernel's accept-queue overflows, the generator's launch lag,
 * and the steady group's delivery latency and loss before, during and after
 * the storm.
 *
 * Targets: wshub twice — its defaults (loopback is exempt from the
 * per-client limits, so only the handshake guard's caps apply) and with
 * admission (`maxHandshakesPerIp` for the storm's addresses, through the
 * peer's BENCH_MAX_HANDSHAKES_PER_IP) — then one ws peer (ws-preframed, or
 * ws-naive when only it is selected: both upgrade through ws alike), uws
 * and socketio. Every run starts a fresh peer (so RSS is the storm's own);
 * runs go round the targets, so that machine noise spreads over all.
 */
import { readFileSync } from 'node:fs';
import { coreBusySeconds, startPeer, type PeerProcess } from '../peer-process.ts';
import { runStorm, type StormResult, type StormSpec } from '../loadgen/storm.ts';
import { formatBytes, formatSummary, summarize, type Summary } from '../summary.ts';
import { targetOf, type ScenarioContext } from './context.ts';

/** New handshakes per storm address per second in the admission variant of wshub. */
export const ADMISSION_HANDSHAKES_PER_IP = 10;

/** One storm variant: a peer, its environment, and its label in the tables. */
interface StormVariant {
  label: string;
  name: string;
  env: Record<string, string>;
}

/** The figures of one target over the runs (medians with min–max), and each run's raw result. */
export interface StormRow {
  target: string;
  /** What the target was told about admission ('' = its defaults). */
  admission: string;
  clients: number;
  addresses: number;
  spreadMs: number;
  steadyMembers: number;
  steadyRate: number;
  connected: Summary;
  gaveUp: Summary;
  allJoinedSec: Summary;
  halfJoinedSec: Summary;
  p99JoinedSec: Summary;
  attemptP50Ms: Summary;
  attemptP99Ms: Summary;
  clientP99Ms: Summary;
  /** Refused answers (any HTTP status but 101), failed attempts without an answer, and retries. */
  refused: Summary;
  failedAttempts: Summary;
  retries: Summary;
  /** Joined clients that did not get the roll-call message. */
  rollCallMissing: Summary;
  serverCpuSec: Summary;
  serverBusy: Summary;
  /** Share of the server's core other processes took during the storm (0–1). */
  otherLoad: Summary;
  peakRssBytes: Summary;
  rssGrowthBytes: Summary;
  steadyP50BeforeMs: Summary;
  steadyP99BeforeMs: Summary;
  steadyP50DuringMs: Summary;
  steadyP99DuringMs: Summary;
  steadyP99AfterMs: Summary;
  steadyLost: Summary;
  generatorLagMs: Summary;
  generatorCpuSec: Summary;
  /** TcpExt ListenOverflows during the run (system-wide: SYNs dropped on a full accept queue). */
  listenOverflows: Summary;
  runs: StormResult[];
}

/** The storm's shape for a full or a quick run. */
export function stormShape(quick: boolean): Omit<StormSpec, 'target' | 'steadyRoom' | 'stormRoom'> {
  return quick
    ? {
        steadySubscribers: 100,
        steadyRate: 50,
        payloadBytes: 64,
        stormClients: 2_000,
        spreadMs: 1_000,
        addresses: 100,
        warmupMs: 300,
        beforeMs: 1_000,
        afterMs: 500,
        deadlineMs: 10_000,
      }
    : {
        steadySubscribers: 200,
        steadyRate: 50,
        payloadBytes: 64,
        stormClients: 10_000,
        spreadMs: 1_000,
        addresses: 200,
        warmupMs: 500,
        beforeMs: 2_000,
        afterMs: 1_000,
        deadlineMs: 15_000,
      };
}

/** The variants for the selected targets, in table order. */
export function stormVariants(targets: readonly string[]): StormVariant[] {
  const out: StormVariant[] = [];
  if (targets.includes('wshub')) {
    out.push({ label: 'wshub', name: 'wshub', env: {} });
    out.push({
      label: `wshub (admission ${ADMISSION_HANDSHAKES_PER_IP}/s per IP)`,
      name: 'wshub',
      env: { BENCH_MAX_HANDSHAKES_PER_IP: String(ADMISSION_HANDSHAKES_PER_IP) },
    });
  }
  if (targets.includes('ws-preframed')) out.push({ label: 'ws', name: 'ws-preframed', env: {} });
  else if (targets.includes('ws-naive')) out.push({ label: 'ws', name: 'ws-naive', env: {} });
  for (const name of ['uws', 'socketio'])
    if (targets.includes(name)) out.push({ label: name, name, env: {} });
  return out;
}

/** The kernel's TcpExt ListenOverflows counter (system-wide); NaN when unreadable. */
export function listenOverflows(): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      if (!lines[i]!.startsWith('TcpExt:')) continue;
      const names = lines[i]!.split(/\s+/);
      const values = lines[i + 1]!.split(/\s+/);
      const at = names.indexOf('ListenOverflows');
      return at < 0 ? NaN : Number(values[at]);
    }
  } catch {
    // not Linux, or /proc not mounted
  }
  return NaN;
}

let roomCounter = 0;

/** One storm against a fresh peer of `variant`. */
async function stormOnce(
  ctx: ScenarioContext,
  variant: StormVariant,
): Promise<{ result: StormResult; overflows: number }> {
  let peer: PeerProcess | undefined;
  try {
    peer = await startPeer({
      name: variant.name,
      cpuList: ctx.serverCpuList,
      env: { ...process.env, ...variant.env },
    });
    const running = peer;
    const run = ++roomCounter;
    // The server's core (its CPU list is one core, '0' by default).
    const serverCore = Number.parseInt(ctx.serverCpuList, 10);
    const overflowsBefore = listenOverflows();
    const result = await runStorm({
      target: targetOf(running),
      steadyRoom: `steady-${run}`,
      stormRoom: `storm-${run}`,
      ...stormShape(ctx.quick),
      ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
      probe: {
        cpuSeconds: () => running.cpuSeconds(),
        rssBytes: () => running.rssBytes(),
        coreBusySeconds: () => coreBusySeconds(serverCore),
      },
    });
    if (!running.alive())
      throw new Error(`${variant.label}: the server exited during the storm (${running.stderr()})`);
    return { result, overflows: listenOverflows() - overflowsBefore };
  } finally {
    await peer?.stop();
  }
}

/** The storm's shape as a row records it. */
type RowShape = Pick<
  StormSpec,
  'stormClients' | 'addresses' | 'spreadMs' | 'steadySubscribers' | 'steadyRate'
>;

/** Summarises the measured runs of one target into its row. */
export function stormRow(
  target: string,
  admission: string,
  shape: RowShape,
  ms: Array<{ result: StormResult; overflows: number }>,
): StormRow {
  const runs = ms.map((m) => m.result);
  const of = (f: (r: StormResult) => number): Summary => summarize(runs.map(f));
  return {
    target,
    admission,
    clients: shape.stormClients,
    addresses: shape.addresses,
    spreadMs: shape.spreadMs,
    steadyMembers: shape.steadySubscribers + 1,
    steadyRate: shape.steadyRate,
    connected: of((r) => r.connected),
    gaveUp: of((r) => r.gaveUp),
    allJoinedSec: of((r) => r.allJoinedMs / 1000),
    halfJoinedSec: of((r) => r.halfJoinedMs / 1000),
    p99JoinedSec: of((r) => r.p99JoinedMs / 1000),
    attemptP50Ms: of((r) => r.attemptLatencyMs.p50),
    attemptP99Ms: of((r) => r.attemptLatencyMs.p99),
    clientP99Ms: of((r) => r.clientLatencyMs.p99),
    refused: of((r) => sumValues(r.refusals)),
    failedAttempts: of((r) => sumValues(r.failures)),
    retries: of((r) => r.retries),
    rollCallMissing: of((r) => r.rollCall.expected - r.rollCall.received),
    serverCpuSec: of((r) => r.server?.cpuSec ?? NaN),
    serverBusy: of((r) => r.server?.busyFraction ?? NaN),
    otherLoad: of((r) => r.server?.otherLoad ?? NaN),
    peakRssBytes: of((r) => r.server?.peakRssBytes ?? NaN),
    rssGrowthBytes: of((r) => (r.server ? r.server.peakRssBytes - r.server.rssBeforeBytes : NaN)),
    steadyP50BeforeMs: of((r) => r.steady.before.p50Ms),
    steadyP99BeforeMs: of((r) => r.steady.before.p99Ms),
    steadyP50DuringMs: of((r) => r.steady.during.p50Ms),
    steadyP99DuringMs: of((r) => r.steady.during.p99Ms),
    steadyP99AfterMs: of((r) => r.steady.after.p99Ms),
    steadyLost: of((r) => r.steady.before.lost + r.steady.during.lost + r.steady.after.lost),
    generatorLagMs: of((r) => r.maxLaunchLagMs),
    generatorCpuSec: of((r) => r.generatorCpuSec),
    listenOverflows: summarize(ms.map((m) => m.overflows)),
    runs,
  };
}

function sumValues(record: Record<string, number>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

/** Runs the storm scenario for the selected targets (see the module comment). */
export async function runStormScenario(ctx: ScenarioContext): Promise<StormRow[]> {
  const variants = stormVariants(ctx.targets);
  const shape = stormShape(ctx.quick);
  const measured = new Map<string, Array<{ result: StormResult; overflows: number }>>();
  for (let run = 0; run < ctx.runs; run++) {
    for (const variant of variants) {
      ctx.log(`storm / ${variant.label} (run ${run + 1} of ${ctx.runs})`);
      try {
        const m = await stormOnce(ctx, variant);
        const r = m.result;
        ctx.log(
          `    ${r.connected}/${r.clients} joined, all in ${(r.allJoinedMs / 1000).toFixed(2)} s, ` +
            `connect p99 ${r.attemptLatencyMs.p99.toFixed(0)} ms, refused ${sumValues(r.refusals)}, ` +
            `failed ${sumValues(r.failures)}, retries ${r.retries}; server CPU ${r.server?.cpuSec.toFixed(2)} s; ` +
            `others ${Math.round((r.server?.otherLoad ?? NaN) * 100)}% of its core; ` +
            `steady p99 ${r.steady.before.p99Ms.toFixed(1)} → ${r.steady.during.p99Ms.toFixed(1)} ms, ` +
            `lost ${r.steady.during.lost}; generator lag ${r.maxLaunchLagMs.toFixed(0)} ms`,
        );
        measured.set(variant.label, [...(measured.get(variant.label) ?? []), m]);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        ctx.errors.push({ scenario: 'storm', target: variant.label, message });
        ctx.log(`  ! storm / ${variant.label}: ${message}`);
      }
    }
  }
  const rows: StormRow[] = [];
  for (const variant of variants) {
    const ms = measured.get(variant.label);
    if (ms === undefined || ms.length === 0) continue;
    const admission = Object.entries(variant.env)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    rows.push(stormRow(variant.label, admission, shape, ms));
  }
  return rows;
}

const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const sec = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '–');
/** A summary of a time that some runs may not have reached: "8.55 (in 1 of 3 runs)" then. */
function reachedIn(s: Summary, format: (n: number) => string): string {
  const reached = s.values.filter((v) => Number.isFinite(v)).length;
  const text = formatSummary(s, format);
  return reached === s.values.length || reached === 0
    ? text
    : `${text} (in ${reached} of ${s.values.length} runs)`;
}

const pct = (n: number): string => (Number.isFinite(n) ? `${Math.round(n * 100)}%` : '–');
const msec = (n: number): string =>
  Number.isFinite(n) ? (n >= 100 ? String(Math.round(n)) : n.toFixed(1)) : '–';

/** Refusals of every run by status, e.g. "429: 8,123 / 8,010 / 7,990". */
function statusCounts(row: StormRow): string {
  const statuses = [...new Set(row.runs.flatMap((r) => Object.keys(r.refusals)))].sort();
  if (statuses.length === 0) return 'none';
  return statuses.map((s) => `${s}: ${row.runs.map((r) => int(r.refusals[s] ?? 0)).join(' / ')}`).join('; ');
}

/** Failed attempts of every run by kind, e.g. "closed: 3,560; timeout: 832" (medians). */
function failureKinds(row: StormRow): string {
  const kinds = [...new Set(row.runs.flatMap((r) => Object.keys(r.failures)))].sort();
  if (kinds.length === 0) return 'none';
  return kinds
    .map((k) => `${k}: ${int(summarize(row.runs.map((r) => r.failures[k] ?? 0)).median)}`)
    .join('; ');
}

/** The storm's markdown tables (ready to paste into docs/BENCHMARKS.md). */
export function renderStormTables(rows: StormRow[]): string {
  if (rows.length === 0) return '';
  const first = rows[0]!;
  const f = formatSummary;
  const storm = [
    `#### Reconnection storm: ${int(first.clients)} clients within ${first.spreadMs / 1000} s from ${first.addresses} addresses`,
    '',
    '| target | joined | all joined, s | 50% / 99% joined, s | connect p50 / p99 ms (attempt) | client p99 ms (retries incl.) | refused | failed attempts | retries | roll call missing | server CPU s (busy) | peak RSS (growth) |',
    '| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |',
    ...rows.map(
      (r) =>
        `| ${r.target} | ${f(r.connected, int)} | ${reachedIn(r.allJoinedSec, sec)} | ${reachedIn(r.halfJoinedSec, sec)} / ${reachedIn(r.p99JoinedSec, sec)} | ` +
        `${f(r.attemptP50Ms, msec)} / ${f(r.attemptP99Ms, msec)} | ${f(r.clientP99Ms, msec)} | ${f(r.refused, int)} | ` +
        `${f(r.failedAttempts, int)} | ${f(r.retries, int)} | ${f(r.rollCallMissing, int)} | ` +
        `${f(r.serverCpuSec, sec)} (${Math.round(r.serverBusy.median * 100)}%) | ${formatBytes(r.peakRssBytes.median)} (+${formatBytes(r.rssGrowthBytes.median)}) |`,
    ),
  ];
  const steady = [
    '',
    `#### Steady group during the storm: ${first.steadyMembers} members, ${first.steadyRate} msg/s`,
    '',
    "| target | p50 before → during ms | p99 before ms | p99 during ms | p99 after ms | steady lost | others' share of the server core | accept-queue overflows | generator lag ms | generator CPU s |",
    '| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |',
    ...rows.map(
      (r) =>
        `| ${r.target} | ${msec(r.steadyP50BeforeMs.median)} → ${msec(r.steadyP50DuringMs.median)} | ${f(r.steadyP99BeforeMs, msec)} | ` +
        `${f(r.steadyP99DuringMs, msec)} | ${f(r.steadyP99AfterMs, msec)} | ${f(r.steadyLost, int)} | ${f(r.otherLoad, pct)} | ${f(r.listenOverflows, int)} | ` +
        `${f(r.generatorLagMs, msec)} | ${f(r.generatorCpuSec, sec)} |`,
    ),
  ];
  const detail = [
    '',
    'Refusals by HTTP status (each run) and failed attempts by kind (median):',
    '',
    ...rows.map((r) => `- ${r.target}: refused ${statusCounts(r)}; failed ${failureKinds(r)}`),
  ];
  return [...storm, ...steady, ...detail].join('\n');
}
