/**
 * The benchmark orchestrator: runs the selected scenarios against every
 * selected target in one invocation, prints markdown tables, writes
 * bench/results/<timestamp>.json and bench/results/latest.json, and (full
 * runs, or --report) renders docs/BENCHMARKS.md and docs/bench-fanout.svg.
 *
 * Usage: node --import tsx bench/run.ts [--quick] [--runs N] [--targets a,b]
 *        [--scenarios generator,fanout,many-rooms,idle,handshakes,slow,cross-node,channels,channels-cluster,deflate,storm,workers]
 *        [--large] [--report | --no-report] [--generator go|node]
 *
 * --generator picks the load generator of the fan-out, handshakes and
 * workers scenarios on plain WebSocket targets: the Go worker (default;
 * built with `go build` into ~/.cache/wshub-bench/bin on first use) or the
 * Node worker. Socket.IO and every other scenario use the Node worker; the
 * generator self-test measures both.
 *
 * The channels scenarios have their own targets (wshub and centrifugo): they run
 * those of --targets that are channel targets, or both when --targets is not given.
 * The workers scenario (`wshub serve --workers 1` vs `2`, after `npm run build`) runs
 * only when named in --scenarios or in a full run, never in a quick run by default.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { tasksetAvailable } from './peer-process.ts';
import { hasHubScenarios, type BenchResults } from './results.ts';
import { renderTables, renderVerdicts } from './report/document.ts';
import { renderChannelSection } from './report/channels.ts';
import { writeReport } from './report.ts';
import type { ScenarioContext } from './scenarios/context.ts';
import { runFanoutScenario } from './scenarios/fanout.ts';
import { runHandshakeScenario } from './scenarios/handshakes.ts';
import { runIdleScenario } from './scenarios/idle-memory.ts';
import { runManyRoomsScenario } from './scenarios/many-rooms.ts';
import { runSlowScenario } from './scenarios/slow-consumers.ts';
import { runCrossNodeScenario } from './scenarios/cross-node.ts';
import { CHANNEL_TARGETS, runChannelScenario } from './scenarios/channel-fanout.ts';
import { runChannelClusterScenario } from './scenarios/channel-cluster.ts';
import { renderClusterSection } from './report/channel-cluster.ts';
import { renderDeflateTables, runDeflateScenario } from './scenarios/deflate.ts';
import { renderStormTables, runStormScenario } from './scenarios/storm.ts';
import { runWorkersScenario } from './scenarios/workers.ts';
import { renderWorkersTables } from './scenarios/workers-report.ts';
import { runGeneratorScenario } from './scenarios/generator.ts';
import { handshakeCostSection } from './report/handshake-cost.ts';

/** Every target of a full run, in report order; bare-net only takes part in idle memory and handshakes. */
export const ALL_TARGETS = [
  'wshub',
  'wshub-metrics',
  'wshub-production',
  'ws-naive',
  'ws-preframed',
  'uws',
  'socketio',
  'bare-net',
];
/**
 * Targets that run only when --targets names them: tcp-handle (an upgrade
 * on Node's TCP handle without node:net; handshakes only).
 */
export const OPT_IN_TARGETS = ['tcp-handle'];
/** The targets of a quick run unless --targets says otherwise. */
export const QUICK_TARGETS = ['wshub', 'ws-preframed', 'uws', 'bare-net'];
/** Every scenario, in run order. */
export const ALL_SCENARIOS = [
  'generator',
  'fanout',
  'many-rooms',
  'idle',
  'handshakes',
  'slow',
  'cross-node',
  'channels',
  'channels-cluster',
  'deflate',
  'storm',
  'workers',
];

const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: bench/run.ts [--quick] [--runs N] [--targets ${[...ALL_TARGETS, 'centrifugo'].join(',')}] ` +
      `[--scenarios ${ALL_SCENARIOS.join(',')}] [--large] [--report|--no-report] [--merge RESULTS.json] ` +
      `[--generator go|node]\n`,
  );
  process.exit(2);
}

/**
 * Splits a comma list and checks every item against `allowed` and
 * `optIn`; absent, the list is `allowed`. The result keeps their order.
 */
function listOf(value: string | undefined, allowed: string[], what: string, optIn: string[] = []): string[] {
  if (value === undefined) return allowed;
  const known = [...allowed, ...optIn];
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) if (!known.includes(item)) usage(`unknown ${what} "${item}"`);
  return known.filter((a) => items.includes(a));
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        runs: { type: 'string' },
        targets: { type: 'string' },
        scenarios: { type: 'string' },
        large: { type: 'boolean', default: false },
        report: { type: 'boolean' },
        'no-report': { type: 'boolean', default: false },
        merge: { type: 'string' },
        generator: { type: 'string', default: 'go' },
      },
      strict: true,
    }));
  } catch (error) {
    usage(error instanceof Error ? error.message : String(error));
  }
  const quick = values.quick === true;
  const runs = values.runs === undefined ? (quick ? 1 : 3) : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) usage(`bad --runs ${values.runs}`);
  // Quick mode (a development check, under 2 minutes) compares wshub with the strongest peers only.
  // centrifugo is a target of the channels scenario only; the others never see it.
  const requested = values.targets?.split(',').map((t) => t.trim());
  const channelTargets = requested ? CHANNEL_TARGETS.filter((t) => requested.includes(t)) : CHANNEL_TARGETS;
  const hubTargets = requested?.filter((t) => t !== 'centrifugo').join(',');
  const targets =
    requested !== undefined && hubTargets === ''
      ? []
      : listOf(
          hubTargets ?? (quick ? QUICK_TARGETS.join(',') : undefined),
          ALL_TARGETS,
          'target',
          OPT_IN_TARGETS,
        );
  const defaultScenarios = quick ? ALL_SCENARIOS.filter((s) => s !== 'workers').join(',') : undefined;
  const scenarios = listOf(values.scenarios ?? defaultScenarios, ALL_SCENARIOS, 'scenario');
  const writeDocs = values['no-report'] ? false : (values.report ?? !quick);
  const receivePath = values.generator;
  if (receivePath !== 'go' && receivePath !== 'node') usage(`bad --generator ${receivePath} (go or node)`);

  const notes: string[] = [];
  const cores = cpus().length;
  const pinned = tasksetAvailable() && cores >= 2;
  if (!pinned) {
    const why = cores < 2 ? 'only one CPU' : 'taskset is not available';
    notes.push(`Not pinned (${why}): servers and load generator share the CPUs.`);
    process.stderr.write(`warning: ${notes[notes.length - 1]}\n`);
  }
  if (!quick && runs < 3) notes.push(`Only ${runs} run(s) per measurement (the suite's default is 3).`);

  const started = new Date();
  const t0 = performance.now();
  const loadBefore = loadavg()[0]!;
  const ctx: ScenarioContext = {
    quick,
    runs,
    targets,
    large: values.large === true,
    generatorCpuList: pinned ? '1' : undefined,
    serverCpuList: '0',
    receivePath,
    log: (message) => process.stderr.write(`${message}\n`),
    errors: [],
  };
  const results: BenchResults = {
    version: 1,
    command: `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`,
    startedAt: started.toISOString(),
    durationSec: 0,
    quick,
    runs,
    targets,
    scenarios,
    machine: {
      cpuModel: cpus()[0]?.model ?? 'unknown CPU',
      cores,
      ramBytes: totalmem(),
      node: process.version,
      kernel: `Linux ${release()}`,
      loadBefore,
      loadAfter: loadBefore,
      pinned,
    },
    notes,
    fanout: [],
    manyRooms: [],
    idle: [],
    handshakes: [],
    slow: [],
    errors: ctx.errors,
  };

  // After each scenario the results so far are saved, so an interrupted run still leaves its data.
  const savePartial = () => {
    mkdirSync(RESULTS_DIR, { recursive: true });
    results.durationSec = (performance.now() - t0) / 1000;
    writeFileSync(join(RESULTS_DIR, 'partial.json'), `${JSON.stringify(results, null, 2)}\n`);
  };
  if (scenarios.includes('generator')) results.generator = await runGeneratorScenario(ctx);
  savePartial();
  if (scenarios.includes('fanout')) results.fanout = await runFanoutScenario(ctx);
  savePartial();
  if (scenarios.includes('many-rooms')) results.manyRooms = await runManyRoomsScenario(ctx);
  savePartial();
  if (scenarios.includes('idle')) results.idle = await runIdleScenario(ctx);
  savePartial();
  if (scenarios.includes('handshakes')) results.handshakes = await runHandshakeScenario(ctx);
  savePartial();
  if (scenarios.includes('slow')) results.slow = await runSlowScenario(ctx);
  savePartial();
  if (scenarios.includes('cross-node')) results.crossNode = await runCrossNodeScenario(ctx);
  savePartial();
  if (scenarios.includes('channels'))
    results.channels = await runChannelScenario({ ...ctx, targets: channelTargets });
  savePartial();
  if (scenarios.includes('channels-cluster'))
    results.channelCluster = await runChannelClusterScenario({ ...ctx, targets: channelTargets });
  savePartial();
  if (scenarios.includes('deflate')) results.deflate = await runDeflateScenario(ctx);
  savePartial();
  if (scenarios.includes('storm')) results.storm = await runStormScenario(ctx);
  if (scenarios.includes('workers')) results.workers = await runWorkersScenario(ctx);

  // --merge: this run's scenarios replace those of an earlier results file, the rest is kept.
  if (values.merge !== undefined) {
    const earlier = JSON.parse(readFileSync(values.merge, 'utf8')) as BenchResults;
    const merged: BenchResults = {
      ...earlier,
      command: `${earlier.command} && ${results.command}`,
      durationSec: earlier.durationSec,
      scenarios: [...new Set([...earlier.scenarios, ...scenarios])],
      notes: [...earlier.notes, ...notes.filter((n) => !earlier.notes.includes(n))],
      errors: [...earlier.errors, ...ctx.errors],
    };
    if (scenarios.includes('generator')) merged.generator = results.generator;
    if (scenarios.includes('fanout')) merged.fanout = results.fanout;
    if (scenarios.includes('many-rooms')) merged.manyRooms = results.manyRooms;
    if (scenarios.includes('idle')) merged.idle = results.idle;
    if (scenarios.includes('handshakes')) merged.handshakes = results.handshakes;
    if (scenarios.includes('slow')) merged.slow = results.slow;
    if (scenarios.includes('cross-node')) merged.crossNode = results.crossNode;
    if (scenarios.includes('channels')) merged.channels = results.channels;
    if (scenarios.includes('channels-cluster')) merged.channelCluster = results.channelCluster;
    if (scenarios.includes('deflate')) merged.deflate = results.deflate;
    if (scenarios.includes('storm')) merged.storm = results.storm;
    if (scenarios.includes('workers')) merged.workers = results.workers;
    Object.assign(results, merged);
  }

  const elapsedSec = (performance.now() - t0) / 1000;
  results.durationSec = values.merge === undefined ? elapsedSec : results.durationSec + elapsedSec;
  results.machine.loadAfter = loadavg()[0]!;
  if (results.fanout.some((c) => c.generatorLimited || c.maxGeneratorBound))
    notes.push('Some fan-out figures are bounded by the load generator (⚠ / "generator-bound").');

  mkdirSync(RESULTS_DIR, { recursive: true });
  const json = `${JSON.stringify(results, null, 2)}\n`;
  const stamp = results.startedAt.replace(/[:.]/g, '-');
  const file = join(RESULTS_DIR, `${stamp}.json`);
  writeFileSync(file, json);
  writeFileSync(join(RESULTS_DIR, 'latest.json'), json);

  if (hasHubScenarios(scenarios)) {
    process.stdout.write(
      `${renderTables(results)}\n\n### Verdict against the targets\n\n${renderVerdicts(results)}\n\n`,
    );
  }
  const costSection = handshakeCostSection(results);
  if (costSection !== '') {
    process.stdout.write(
      `${await prettierMarkdown(`### Handshakes: upgrade cost against the seed and uWebSockets.js\n\n${costSection}\n`)}\n`,
    );
  }
  const channelSection = renderChannelSection(results);
  if (channelSection !== '') process.stdout.write(`${channelSection}\n`);
  const clusterSection = renderClusterSection(results);
  if (clusterSection !== '') process.stdout.write(`${clusterSection}\n`);
  if (results.deflate !== undefined) process.stdout.write(`${renderDeflateTables(results.deflate)}\n\n`);
  if (results.storm !== undefined && results.storm.length > 0)
    process.stdout.write(`${renderStormTables(results.storm)}\n\n`);
  if (results.workers !== undefined) process.stdout.write(`${renderWorkersTables(results.workers)}\n\n`);
  if (ctx.errors.length > 0) {
    process.stdout.write(
      `Failed measurements:\n${ctx.errors.map((e) => `- ${e.scenario} / ${e.target}: ${e.message}`).join('\n')}\n\n`,
    );
  }
  process.stdout.write(`results: ${file} (and latest.json); ${results.durationSec.toFixed(0)} s\n`);
  if (writeDocs) {
    writeReport(results);
    // The storm's tables are printed above for docs/BENCHMARKS.md's "Reconnection storm" section, not written.
    if (hasHubScenarios(scenarios))
      process.stdout.write('updated docs/BENCHMARKS.md and docs/bench-fanout.svg\n');
    else if (channelSection !== '' || clusterSection !== '')
      process.stdout.write('updated the channel sections of docs/BENCHMARKS.md\n');
  }
}

/**
 * Formats markdown as the repository's prettier check wants it (aligned
 * tables), so a printed section can be pasted into docs/ as it is; the
 * text unchanged when prettier cannot be loaded.
 */
async function prettierMarkdown(markdown: string): Promise<string> {
  try {
    const prettier = await import('prettier');
    const config =
      (await prettier.resolveConfig(join(dirname(RESULTS_DIR), '..', 'docs', 'BENCHMARKS.md'))) ?? {};
    return await prettier.format(markdown, { ...config, parser: 'markdown' });
  } catch {
    return markdown;
  }
}

await main();
