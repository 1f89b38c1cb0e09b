/**
 * The attack harness: runs each attack of the hardening list against a
 * fresh `wshub serve` child process, with a victim process measuring what
 * the attack costs legitimate clients, and prints a markdown table (also
 * written, with every figure, to bench/results/attacks-<label>.json).
 *
 * It builds nothing: the checkout given with --wshub must have been built
 * (`npm run build` there). It talks to the server only over loopback
 * sockets and reads /proc; every attack is bounded in time and count and
 * stops by itself. A server that dies is reported as the outcome.
 *
 * Usage: npm run bench:attacks -- [--wshub DIR] [--only NAME,…] [--label before|after|…]
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  HOST,
  PROTECTED_ROOM,
  formatMs,
  quantile,
  sleep,
  tally,
  tallyText,
  type Attack,
  type AttackOutcome,
} from './common.ts';
import { fragments } from './fragments.ts';
import { partialMessages } from './partial-messages.ts';
import { pingFlood } from './ping-flood.ts';
import { roomPasswords } from './room-passwords.ts';
import { commandLine, startServer, type AttackServer, type ServerExit, type ServerLaunch } from './server.ts';
import { slowloris } from './slowloris.ts';
import { smuggling } from './smuggling.ts';
import { subprotocols } from './subprotocols.ts';
import { tokenExp } from './token-exp.ts';
import type { ProbeKind, Sample, VictimOptions } from './victim.ts';
import { workersKill } from './workers-kill.ts';

/** Every attack, in run order. */
export const ATTACKS: Attack[] = [
  slowloris,
  fragments,
  partialMessages,
  pingFlood,
  roomPasswords,
  workersKill,
  tokenExp,
  smuggling,
  subprotocols,
];

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const RESULTS_DIR = join(REPO, 'bench', 'results');
/** Victim samples before the attack, for the baseline. */
const BASELINE_MS = 2000;
const SAMPLE_EVERY_MS = 200;
/** After an attack, how long the runner waits at most for /healthz to answer again. */
const RECOVERY_MAX_MS = 12_000;
/** …and at least, so the victim sees the aftermath. */
const TAIL_MIN_MS = 3000;
/** Grace beyond an attack's own budget before the runner stops waiting for it. */
const OVERRUN_MS = 10_000;
/** Descriptors the harness needs for the slowloris sockets and the rest. */
const MIN_FD_LIMIT = 4096;

/** p50 / max of one victim probe over the attack window. */
export interface ProbeStats {
  count: number;
  failed: number;
  /** Failure labels, e.g. `{ ECONNRESET: 12, timeout: 3 }`. */
  errors: Record<string, number>;
  /** Over the successful probes, in ms. */
  p50Ms: number;
  maxMs: number;
  /** Longest a failed probe waited before it failed (timeouts, resets), in ms. */
  failedMaxMs: number;
}

export interface AttackResult {
  name: string;
  description: string;
  command: string;
  outcome: string;
  attack: AttackOutcome | undefined;
  error?: string;
  serverExit?: ServerExit;
  serverStderrTail?: string;
  rssBaselineBytes: number;
  rssPeakBytes: number;
  cpuSeconds: number;
  attackMs: number;
  /** From the end of the attack until /healthz answered 200 again; null if it never did. */
  recoveryMs: number | null;
  victim: Record<ProbeKind, ProbeStats>;
  victimBaseline: Record<ProbeKind, ProbeStats>;
  logEvents: Record<string, number>;
}

export interface AttackRun {
  version: 1;
  label: string;
  command: string;
  startedAt: string;
  durationSec: number;
  wshubDir: string;
  wshubCommit: string | undefined;
  machine: {
    cpuModel: string;
    cores: number;
    node: string;
    kernel: string;
    loadBefore: number;
    loadAfter: number;
  };
  notes: string[];
  attacks: AttackResult[];
}

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: npm run bench:attacks -- [--wshub DIR] [--only ${ATTACKS.map((a) => a.name).join(',')}] ` +
      '[--label before|after|NAME]\n(the checkout in --wshub must be built first: npm run build)\n',
  );
  process.exit(2);
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

// ---- victim ---------------------------------------------------------------------

interface Victim {
  stop(): Promise<Sample[]>;
}

async function startVictim(options: VictimOptions): Promise<Victim> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(HERE, 'victim.ts'), JSON.stringify(options)],
    {
      cwd: REPO,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  child.stdin.on('error', () => {});
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-2000)));
  const lines = createInterface({ input: child.stdout });
  let onSamples: ((samples: Sample[]) => void) | undefined;
  const ready = new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`victim not ready within 15 s: ${stderr}`)), 15_000);
    child.once('exit', (code) => reject(new Error(`victim exited (${code}): ${stderr}`)));
    lines.on('line', (line) => {
      if (line === 'ready') {
        clearTimeout(timer);
        resolveReady();
      } else if (line.startsWith('samples ')) onSamples?.(JSON.parse(line.slice(8)) as Sample[]);
    });
  });
  try {
    await ready;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    stop: () =>
      new Promise((resolveSamples) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolveSamples([]);
        }, 10_000);
        onSamples = (samples) => {
          clearTimeout(timer);
          resolveSamples(samples);
        };
        child.stdin.write('stop\n');
      }),
  };
}

function probeStats(samples: Sample[], kind: ProbeKind): ProbeStats {
  const mine = samples.filter((s) => s.k === kind);
  const ok = mine.filter((s) => s.ok).map((s) => s.ms);
  const failed = mine.filter((s) => !s.ok);
  return {
    count: mine.length,
    failed: failed.length,
    errors: tally(failed.map((s) => s.err ?? 'error')),
    p50Ms: quantile(ok, 0.5),
    maxMs: quantile(ok, 1),
    failedMaxMs: quantile(
      failed.map((s) => s.ms),
      1,
    ),
  };
}

function allStats(samples: Sample[]): Record<ProbeKind, ProbeStats> {
  return {
    healthz: probeStats(samples, 'healthz'),
    upgrade: probeStats(samples, 'upgrade'),
    broadcast: probeStats(samples, 'broadcast'),
  };
}

// ---- one attack -------------------------------------------------------------------

/** One GET /healthz with a short timeout; true on 200. */
function healthzOk(port: number): Promise<boolean> {
  return new Promise((resolveOk) => {
    const request = http.get(
      { host: HOST, port, path: '/healthz', agent: false, timeout: 1000 },
      (response) => {
        response.resume();
        response.on('end', () => resolveOk(response.statusCode === 200));
        response.on('error', () => resolveOk(false));
      },
    );
    request.on('error', () => resolveOk(false));
    request.on('timeout', () => request.destroy());
  });
}

async function waitForRecovery(server: AttackServer): Promise<number | null> {
  const started = performance.now();
  while (performance.now() - started < RECOVERY_MAX_MS && server.alive()) {
    if (await healthzOk(server.port)) return performance.now() - started;
    await sleep(200);
  }
  return null;
}

/** What happened to the server, from its exit and stderr. */
function crashText(exit: ServerExit, stderr: string, attackStart: number): string {
  const how = exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
  const why = /heap out of memory|Allocation failed[^\n]*/i.exec(stderr)?.[0];
  const when = formatMs(exit.at - attackStart);
  return `SERVER DIED ${when} into the attack: ${how}${why !== undefined ? ` (${why})` : ''}`;
}

async function runAttack(
  attack: Attack,
  wshubDir: string,
  secret: string,
  password: string,
  passwordFile: string,
): Promise<AttackResult> {
  const launch: ServerLaunch = {
    ...attack.launch,
    wshubDir,
    secret,
    args: [
      ...(attack.launch.args ?? []),
      ...(attack.victimRoom === 'protected' ? ['--room-passwords', passwordFile] : []),
    ],
  };
  // The password file lives in a temporary folder; its path says nothing to a reader.
  const command = commandLine(launch).replace(passwordFile, 'PASSWORDS.json');
  log(`\n== ${attack.name}: ${attack.description}\n   server: ${command}`);
  const server = await startServer(launch);
  const result: AttackResult = {
    name: attack.name,
    description: attack.description,
    command,
    outcome: '',
    attack: undefined,
    rssBaselineBytes: 0,
    rssPeakBytes: 0,
    cpuSeconds: 0,
    attackMs: 0,
    recoveryMs: null,
    victim: allStats([]),
    victimBaseline: allStats([]),
    logEvents: server.logEvents,
  };
  let victim: Victim | undefined;
  try {
    victim = await startVictim({
      port: server.port,
      secret,
      upgradeRoom: attack.victimRoom === 'protected' ? PROTECTED_ROOM : 'victim-new',
      ...(attack.victimRoom === 'protected' ? { password } : {}),
    });
    await sleep(BASELINE_MS);
    result.rssBaselineBytes = server.rssBytes();
    let peak = result.rssBaselineBytes;
    // CPU is read on every tick too, so a server that dies keeps its last figure.
    const sampler = setInterval(() => {
      peak = Math.max(peak, server.rssBytes());
      server.cpuSeconds();
    }, SAMPLE_EVERY_MS);
    const cpuStart = server.cpuSeconds();
    const attackStartEpoch = Date.now();
    const t0 = performance.now();
    let overran = false;
    try {
      const outcome = await Promise.race([
        attack.run({ server, secret, roomPassword: password, log }),
        sleep(attack.budgetMs + OVERRUN_MS).then(() => {
          overran = true;
          return undefined;
        }),
      ]);
      result.attack = outcome;
    } catch (error) {
      result.error = error instanceof Error ? error.message : String(error);
    }
    result.attackMs = performance.now() - t0;
    const tailStart = performance.now();
    result.recoveryMs = await waitForRecovery(server);
    await sleep(Math.max(0, TAIL_MIN_MS - (performance.now() - tailStart)));
    clearInterval(sampler);
    result.rssPeakBytes = Math.max(peak, server.rssBytes());
    result.cpuSeconds = server.cpuSeconds() - cpuStart;
    const samples = await victim.stop();
    victim = undefined;
    result.victim = allStats(samples.filter((s) => s.t >= attackStartEpoch));
    result.victimBaseline = allStats(samples.filter((s) => s.t < attackStartEpoch));

    const parts: string[] = [];
    if (server.exit !== undefined) {
      result.serverExit = server.exit;
      result.serverStderrTail = server.stderr().slice(-1500);
      parts.push(crashText(server.exit, server.stderr(), t0));
    }
    if (result.attack !== undefined) parts.push(result.attack.summary);
    if (result.error !== undefined) parts.push(`attack failed: ${result.error}`);
    if (overran)
      parts.push(`attack still running after ${formatMs(attack.budgetMs + OVERRUN_MS)}, abandoned`);
    result.outcome = parts.join('. ');
    log(`   → ${result.outcome}`);
    return result;
  } finally {
    await victim?.stop();
    await server.stop();
  }
}

// ---- output ----------------------------------------------------------------------

function mb(bytes: number): string {
  return Number.isFinite(bytes) && bytes > 0 ? `${Math.round(bytes / 1048576)}` : '–';
}

function probeCell(stats: ProbeStats): string {
  if (stats.count === 0) return '–';
  const times = stats.failed === stats.count ? '–' : `${formatMs(stats.p50Ms)} / ${formatMs(stats.maxMs)}`;
  if (stats.failed === 0) return times;
  const waited = stats.failedMaxMs >= 1000 ? ` after up to ${formatMs(stats.failedMaxMs)}` : '';
  return `${times} (${stats.failed}/${stats.count} failed${waited}: ${tallyText(stats.errors)})`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function renderTable(run: AttackRun): string {
  const rows = run.attacks.map((r) => {
    // A server that stays up but does not answer after the attack is part of the outcome.
    const recovery =
      r.serverExit !== undefined
        ? ''
        : r.recoveryMs === null
          ? `; /healthz still not answering ${RECOVERY_MAX_MS / 1000} s after the attack`
          : r.recoveryMs > 500
            ? `; /healthz answered again ${formatMs(r.recoveryMs)} after the attack`
            : '';
    return (
      `| ${r.name} | ${cell(r.outcome + recovery)} | ${mb(r.rssBaselineBytes)} → ${mb(r.rssPeakBytes)} | ` +
      `${r.cpuSeconds.toFixed(1)} | ${cell(probeCell(r.victim.healthz))} | ${cell(probeCell(r.victim.upgrade))} | ` +
      `${cell(probeCell(r.victim.broadcast))} |`
    );
  });
  return [
    '| attack | outcome for the attacker | server RSS MB (before → peak) | server CPU-s | victim /healthz p50 / max | victim new upgrade p50 / max | victim broadcast p50 / max |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

function renderParameters(run: AttackRun): string {
  return run.attacks
    .map((r) => {
      const b = r.victimBaseline;
      const base =
        `victim before the attack: /healthz ${formatMs(b.healthz.p50Ms)}, new upgrade ${formatMs(b.upgrade.p50Ms)}, ` +
        `broadcast ${formatMs(b.broadcast.p50Ms)} (p50)`;
      return `- **${r.name}**: ${r.description}; ${base}. Server: \`${r.command}\``;
    })
    .join('\n');
}

/** The soft limit on open files of this process, from /proc/self/limits. */
function openFileLimit(): number | undefined {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

// ---- main -------------------------------------------------------------------------

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        wshub: { type: 'string', default: REPO },
        only: { type: 'string' },
        label: { type: 'string', default: 'run' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (error) {
    usage(error instanceof Error ? error.message : String(error));
  }
  if (values.help === true)
    usage('Runs the hardening attacks against `wshub serve` and measures their effect.');
  const wshubDir = resolve(values.wshub);
  if (
    !existsSync(join(wshubDir, 'bin', 'wshub.js')) ||
    !existsSync(join(wshubDir, 'dist', 'cli', 'main.js'))
  ) {
    usage(`${wshubDir} has no bin/wshub.js with a built dist/: run "npm run build" there first`);
  }
  if (!/^[A-Za-z0-9._-]+$/.test(values.label)) usage(`bad --label "${values.label}"`);
  let selected = ATTACKS;
  if (values.only !== undefined) {
    const names = values.only
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const name of names) if (!ATTACKS.some((a) => a.name === name)) usage(`unknown attack "${name}"`);
    selected = ATTACKS.filter((a) => names.includes(a.name));
  }

  const secret = randomBytes(32).toString('hex');
  const password = `vault-${randomBytes(12).toString('hex')}`;
  const tmp = mkdtempSync(join(tmpdir(), 'wshub-attacks-'));
  const passwordFile = join(tmp, 'room-passwords.json');
  writeFileSync(passwordFile, JSON.stringify({ [PROTECTED_ROOM]: password }), { mode: 0o600 });
  const commit = spawnSync('git', ['-C', wshubDir, 'rev-parse', 'HEAD'], { encoding: 'utf8' });
  const run: AttackRun = {
    version: 1,
    label: values.label,
    command: `npm run bench:attacks${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`,
    startedAt: new Date().toISOString(),
    durationSec: 0,
    wshubDir,
    wshubCommit: commit.status === 0 ? commit.stdout.trim() : undefined,
    machine: {
      cpuModel: cpus()[0]?.model ?? 'unknown CPU',
      cores: cpus().length,
      node: process.version,
      kernel: `Linux ${release()}`,
      loadBefore: loadavg()[0]!,
      loadAfter: 0,
    },
    notes: [
      "Scaled down from the original report: see each attack's parameters.",
      'fragments runs the server with --max-old-space-size=256 so a heap exhaustion shows within 20 s.',
      'Victim figures cover the attack and its aftermath (until /healthz answers again, at least 3 s); ' +
        'p50 / max are over the probes that succeeded, failures are counted separately.',
      'Server RSS and CPU are those of the whole process tree (primary and workers) from /proc.',
    ],
    attacks: [],
  };
  const fdLimit = openFileLimit();
  if (fdLimit !== undefined && fdLimit < MIN_FD_LIMIT && selected.includes(slowloris)) {
    const note = `The harness's own descriptor limit is ${fdLimit} (ulimit -n); slowloris needs ${MIN_FD_LIMIT}.`;
    run.notes.push(note);
    log(`warning: ${note}`);
  }
  const t0 = performance.now();
  try {
    for (const attack of selected) {
      try {
        run.attacks.push(await runAttack(attack, wshubDir, secret, password, passwordFile));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log(`   ! ${attack.name}: ${message}`);
        run.notes.push(`${attack.name} could not be run: ${message}`);
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  run.durationSec = (performance.now() - t0) / 1000;
  run.machine.loadAfter = loadavg()[0]!;

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `attacks-${run.label}.json`);
  writeFileSync(file, `${JSON.stringify(run, null, 2)}\n`);
  process.stdout.write(
    `\n### Attacks (${run.label}): ${run.wshubCommit?.slice(0, 12) ?? wshubDir}, ` +
      `${run.machine.cores} cores, load ${run.machine.loadBefore.toFixed(1)} → ${run.machine.loadAfter.toFixed(1)}\n\n` +
      `${renderTable(run)}\n\nParameters:\n\n${renderParameters(run)}\n\nNotes:\n\n` +
      `${run.notes.map((n) => `- ${n}`).join('\n')}\n\nresults: ${file} (${run.durationSec.toFixed(0)} s)\n`,
  );
}

await main();
