/**
 * Starts the real `wshub serve` command (bin/wshub.js over the built dist/,
 * or the sources through tsx) as a process tree — with `--workers N`, the
 * primary and its N workers — pinned with taskset to a CPU list, and reads
 * every process of the tree from /proc: CPU per process, RSS and open
 * descriptors summed over the tree.
 *
 * taskset execs node, so the child's pid is the primary's; node:cluster
 * workers inherit the CPU affinity. The tree runs in its own process group
 * so that stopping it also ends workers a dying primary left behind. The
 * process handling (readiness, log tail, group stop) is the attack suite's
 * AttackServer.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { whenListening, type AttackServer } from '../attacks/server.ts';
import { countFds, procCpuSeconds, procRssBytes, tasksetAvailable } from '../peer-process.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** How to start one `wshub serve`. */
export interface ServeLaunch {
  /** `wshub serve` flags after `--host 127.0.0.1 --port 0`. */
  args: string[];
  /** taskset CPU list of the whole tree (unpinned when taskset is missing). */
  cpuList?: string;
  /** `dist` (default): bin/wshub.js, after `npm run build`; `source`: src/cli/run.ts through tsx. */
  entry?: 'dist' | 'source';
}

/** The node arguments that run the wshub command from `entry`; throws when dist/ is not built. */
export function wshubCommand(entry: 'dist' | 'source'): string[] {
  if (entry === 'source') return ['--import', 'tsx', join(ROOT, 'src', 'cli', 'run.ts')];
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js')))
    throw new Error('dist/ is not built: run `npm run build` before this scenario');
  return [join(ROOT, 'bin', 'wshub.js')];
}

/** The command line {@link startServeTree} runs, for reports. */
export function serveCommandLine(launch: ServeLaunch): string {
  const pin = launch.cpuList !== undefined ? `taskset -c ${launch.cpuList} ` : '';
  const entry = launch.entry === 'source' ? 'node --import tsx src/cli/run.ts' : 'node bin/wshub.js';
  return `${pin}${entry} serve --host 127.0.0.1 --port 0 ${launch.args.join(' ')}`.trim();
}

/**
 * The server's own processes: the primary and the descendants that run the
 * wshub command (its workers), primary first. Helpers of the runtime (the
 * esbuild service tsx starts when running the sources) are left out.
 */
export function serverPids(server: AttackServer): number[] {
  const [primary, ...rest] = server.pids();
  if (primary === undefined) return [];
  return [primary, ...rest.filter(runsWshub)];
}

function runsWshub(pid: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('wshub.js') || cmdline.includes(join('src', 'cli', 'run.ts'));
  } catch {
    return false;
  }
}

/** CPU-seconds (user + system) of each server process, primary first. */
export function treeCpu(server: AttackServer): Array<{ pid: number; cpuSec: number }> {
  return serverPids(server).map((pid) => ({ pid, cpuSec: procCpuSeconds(pid) }));
}

/** RSS in bytes summed over the server processes. */
export function treeRss(server: AttackServer): number {
  let sum = 0;
  for (const pid of serverPids(server)) {
    const rss = procRssBytes(pid);
    if (Number.isFinite(rss)) sum += rss;
  }
  return sum;
}

/** Open descriptors summed over the server processes (where the workers hold their sockets). */
export function treeFds(server: AttackServer): number {
  let sum = 0;
  for (const pid of serverPids(server)) {
    const n = countFds(pid);
    if (Number.isFinite(n)) sum += n;
  }
  return sum;
}

/**
 * Starts `wshub serve --host 127.0.0.1 --port 0 ARGS` and resolves once it
 * printed its `listening on` line (with --workers: once every worker
 * listens). Always stop() the result.
 */
export async function startServeTree(launch: ServeLaunch): Promise<AttackServer> {
  const nodeArgs = [...wshubCommand(launch.entry ?? 'dist'), 'serve', '--host', '127.0.0.1', '--port', '0'];
  nodeArgs.push(...launch.args);
  const pinned = launch.cpuList !== undefined && tasksetAvailable();
  const [file, args] = pinned
    ? ['taskset', ['-c', launch.cpuList!, process.execPath, ...nodeArgs]]
    : [process.execPath, nodeArgs];
  const child = spawn(file, args, { cwd: ROOT, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  return whenListening(child, performance.now());
}
