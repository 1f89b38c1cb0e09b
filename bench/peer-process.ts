/**
 * Starts a benchmark peer (`bench/peers/<name>.ts`) as a child process pinned
 * to one core, and measures it from the outside: CPU time from
 * /proc/<pid>/stat, RSS from /proc/<pid>/status, and the peer's own `stats`
 * line (heap, counters) over stdin/stdout.
 *
 * The child is `taskset -c <cpu> node --import tsx bench/peers/<name>.ts`.
 * taskset execs node, and tsx loaded with --import runs the TypeScript in
 * that same node process, so the child's pid is the server's pid and /proc
 * figures are the server's own.
 *
 * A server that is not one of these scripts (Centrifugo, a Go binary) is
 * started with {@link startExternalPeer}: the same taskset pinning and
 * /proc measurement, readiness found by probing the server.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PEERS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'peers');
const READY_TIMEOUT_MS = 20_000;
const STATS_TIMEOUT_MS = 15_000;
const KILL_AFTER_MS = 3_000;
const LISTENING = /^listening on http:\/\/([^:\s]+):(\d+)\s*$/;

/** The JSON object of a peer's `stats` line (see bench/peers/common.ts). */
export interface PeerStatsLine {
  rss: number;
  heapUsed: number;
  cpuUser: number;
  cpuSystem: number;
  connections: number;
  dropped: number;
  closed: number;
}

/** How to start a peer. */
export interface PeerLaunch {
  /** File name under bench/peers/ without `.ts` (e.g. `wshub`). */
  name: string;
  /** Extra flags after `--port 0` (e.g. `['--send-behavior', 'close']`). */
  args?: string[];
  /** CPU list for taskset (default '0'); undefined pinning when taskset is missing. */
  cpuList?: string;
  /** Environment of the peer (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

let tasksetChecked: boolean | undefined;

/** True when `taskset` can pin a process on this machine (checked once). */
export function tasksetAvailable(): boolean {
  if (tasksetChecked === undefined) {
    const probe = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    tasksetChecked = probe.status === 0;
  }
  return tasksetChecked;
}

let clockTicks: number | undefined;

/** Clock ticks per second for /proc stat times (`getconf CLK_TCK`, 100 when that fails). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(out.stdout?.trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/**
 * CPU seconds (user + system) a process has used so far, from
 * /proc/<pid>/stat; NaN when the process is gone.
 */
export function procCpuSeconds(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; fields after the last ')' are fixed.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here (0-based, from field 3).
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / clockTicksPerSecond();
  } catch {
    return NaN;
  }
}

/**
 * CPU-seconds core `cpu` has spent busy (everything but idle and iowait)
 * since boot, from /proc/stat; NaN when unreadable. The difference over a
 * run, less the server's own CPU, is what other processes took from the
 * server's core.
 */
export function coreBusySeconds(cpu: number): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`cpu${cpu} `));
    if (line === undefined) return NaN;
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const busy = f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!;
    return busy / clockTicksPerSecond();
  } catch {
    return NaN;
  }
}

/** Resident set size in bytes from /proc/<pid>/status (VmRSS); NaN when the process is gone. */
export function procRssBytes(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Number of open file descriptors of a process (/proc/<pid>/fd); NaN when unreadable. */
export function countFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/** A running peer server. Create with {@link startPeer}; always {@link PeerProcess.stop} it. */
export class PeerProcess {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  /** Whether the peer is pinned with taskset. */
  readonly pinned: boolean;
  /** Open file descriptors right after start, before any client connected. */
  readonly idleFds: number;
  private readonly child: ChildProcess;
  private readonly waiters: Array<(line: string) => void> = [];
  private stderrTail = '';
  private exited: Promise<void>;

  /** Use {@link startPeer}. */
  constructor(name: string, port: number, child: ChildProcess, pinned: boolean, lines: AsyncLineFeed) {
    this.name = name;
    this.port = port;
    this.child = child;
    this.pid = child.pid!;
    this.pinned = pinned;
    this.idleFds = countFds(this.pid);
    lines.onLine = (line) => {
      if (line.startsWith('stats ')) this.waiters.shift()?.(line.slice(6));
    };
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-2000);
    });
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  }

  /** CPU seconds (user + system) the server has used since it started. */
  cpuSeconds(): number {
    return procCpuSeconds(this.pid);
  }

  /** The server's resident set size in bytes. */
  rssBytes(): number {
    return procRssBytes(this.pid);
  }

  /** The last lines the peer wrote on stderr (for error reports). */
  stderr(): string {
    return this.stderrTail.trim();
  }

  /** True while the child has not exited. */
  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Asks the peer for its `stats` line and resolves with the parsed object;
   * with `gc`, the peer first runs a full garbage collection (peers start
   * with --expose-gc), so memory figures leave out garbage not yet collected.
   */
  stats(options: { gc?: boolean } = {}): Promise<PeerStatsLine> {
    return new Promise((resolve, reject) => {
      if (!this.alive()) {
        reject(new Error(`${this.name}: peer exited (${this.stderr() || 'no stderr'})`));
        return;
      }
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(onLine);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`${this.name}: no stats answer within ${STATS_TIMEOUT_MS} ms`));
      }, STATS_TIMEOUT_MS);
      const onLine = (json: string): void => {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(json) as PeerStatsLine);
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      };
      this.waiters.push(onLine);
      this.child.stdin?.write(options.gc === true ? 'stats gc\n' : 'stats\n');
    });
  }

  /** Stops the peer: SIGTERM, then SIGKILL if it has not exited within a few seconds. */
  async stop(): Promise<void> {
    if (!this.alive()) return;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (this.alive()) this.child.kill('SIGKILL');
        resolve();
      }, KILL_AFTER_MS);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    await this.exited;
    this.child.stdin?.destroy();
  }
}

/** Splits a stream into lines and hands each to `onLine` (settable later). */
class AsyncLineFeed {
  onLine: (line: string) => void = () => {};
  private rest = '';

  push(chunk: string): void {
    this.rest += chunk;
    let nl: number;
    while ((nl = this.rest.indexOf('\n')) >= 0) {
      const line = this.rest.slice(0, nl).replace(/\r$/, '');
      this.rest = this.rest.slice(nl + 1);
      this.onLine(line);
    }
  }
}

/**
 * Starts `bench/peers/<name>.ts` on a free port, pinned with taskset when it
 * is available, and resolves once it has printed its `listening on` line.
 * Rejects (and kills the child) when it exits or stays silent too long.
 */
export async function startPeer(launch: PeerLaunch): Promise<PeerProcess> {
  const script = join(PEERS_DIR, `${launch.name}.ts`);
  const nodeArgs = ['--expose-gc', '--import', 'tsx', script, '--port', '0', ...(launch.args ?? [])];
  const pinned = tasksetAvailable();
  const child = pinned
    ? spawn('taskset', ['-c', launch.cpuList ?? '0', process.execPath, ...nodeArgs], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: launch.env ?? process.env,
      })
    : spawn(process.execPath, nodeArgs, { stdio: ['pipe', 'pipe', 'pipe'], env: launch.env ?? process.env });
  const lines = new AsyncLineFeed();
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => lines.push(chunk));
  let stderr = '';
  const onStderr = (chunk: Buffer): void => {
    stderr = (stderr + chunk.toString('utf8')).slice(-2000);
  };
  child.stderr.on('data', onStderr);
  // A peer that dies on a broken stdin pipe must not crash the orchestrator.
  child.stdin.on('error', () => {});

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      child.kill('SIGKILL');
      reject(
        new Error(`${launch.name}: no "listening on" line within ${READY_TIMEOUT_MS} ms ${stderr.trim()}`),
      );
    }, READY_TIMEOUT_MS);
    const onExit = (code: number | null, signal: string | null): void => {
      cleanup();
      reject(
        new Error(
          `${launch.name}: exited before listening (code ${code}, signal ${signal}) ${stderr.trim()}`,
        ),
      );
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.onLine = () => {};
    };
    lines.onLine = (line) => {
      const match = LISTENING.exec(line);
      if (match) {
        cleanup();
        resolve(Number(match[2]));
      }
    };
    child.once('exit', onExit);
    child.once('error', (error) => {
      cleanup();
      reject(error);
    });
  });
  child.stderr.off('data', onStderr);
  const peer = new PeerProcess(launch.name, port, child, pinned, lines);
  return peer;
}

/** How to start a server that is not a bench/peers script. */
export interface ExternalPeerLaunch {
  /** Label used in errors and as the peer's name. */
  name: string;
  /** Executable and its arguments; taskset execs it, so its pid is the server's. */
  command: string;
  args: string[];
  /** The port the server was told to listen on. */
  port: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** CPU list for taskset (default '0'). */
  cpuList?: string;
  /** One readiness probe; polled every 100 ms until it resolves true. */
  ready(): Promise<boolean>;
  /** Deadline for readiness in ms (default 20,000). */
  readyTimeoutMs?: number;
}

/**
 * Starts an external server pinned with taskset when available and resolves
 * with its PeerProcess once `ready()` says it serves. Rejects (and kills
 * the child) when it exits first or is not ready in time. Such a peer does
 * not answer `stats()`: its figures come from /proc only.
 */
export async function startExternalPeer(launch: ExternalPeerLaunch): Promise<PeerProcess> {
  const pinned = tasksetAvailable();
  const options = {
    stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'],
    env: launch.env ?? process.env,
    ...(launch.cwd ? { cwd: launch.cwd } : {}),
  };
  const child = pinned
    ? spawn('taskset', ['-c', launch.cpuList ?? '0', launch.command, ...launch.args], options)
    : spawn(launch.command, launch.args, options);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-2000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `code ${code}, signal ${signal}`));
  child.once('error', (error) => (exited = error.message));
  const deadline = Date.now() + (launch.readyTimeoutMs ?? READY_TIMEOUT_MS);
  for (;;) {
    if (exited !== undefined) {
      throw new Error(`${launch.name}: exited before serving (${exited}) ${output.trim()}`);
    }
    if (await launch.ready().catch(() => false)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(
        `${launch.name}: not serving within ${launch.readyTimeoutMs ?? READY_TIMEOUT_MS} ms ${output.trim()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // `keep` stays attached: a pipe nobody reads would block the server once full.
  return new PeerProcess(launch.name, launch.port, child, pinned, new AsyncLineFeed());
}
