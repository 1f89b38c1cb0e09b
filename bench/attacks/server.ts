/**
 * Starts `wshub serve` from a checkout (its bin/wshub.js and built dist/) as
 * a child process on a free loopback port, and measures it from the
 * outside: RSS and CPU of the whole process tree (the primary and, with
 * --workers, its workers) from /proc, open descriptors, and how it ended.
 *
 * The child is `bash -c 'ulimit -n N; exec node …'` when a descriptor limit
 * is asked for; bash execs node, so the child's pid is the server's pid.
 * It runs in its own process group so that its workers can be stopped with
 * it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { clockTicksPerSecond, countFds, procRssBytes } from '../peer-process.ts';

const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 3_000;
const LISTENING = /listening on http:\/\/[^:\s]+:(\d+)/;

/** How to start one server. */
export interface ServerLaunch {
  /** The checkout to run: `<dir>/bin/wshub.js` with its built dist/. */
  wshubDir: string;
  secret: string;
  /** Extra `wshub serve` flags. */
  args?: string[];
  /** Extra node flags (e.g. `--max-old-space-size=256`). */
  nodeFlags?: string[];
  /** `ulimit -n` for the server. */
  fdLimit?: number;
}

/** How a server process ended, when it did. */
export interface ServerExit {
  code: number | null;
  signal: string | null;
  /** Milliseconds after start. */
  atMs: number;
  /** performance.now() at the exit. */
  at: number;
}

/** Fields of /proc/<pid>/stat after the command name: [state, ppid, …]. */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Pids of the live descendants of `root` (children, grandchildren, …), from /proc. */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields !== undefined && fields[0] !== 'Z') parent.set(Number(entry), Number(fields[1]));
  }
  const out: number[] = [];
  let frontier = [root];
  while (frontier.length > 0) {
    const next: number[] = [];
    for (const [pid, ppid] of parent) if (frontier.includes(ppid)) next.push(pid);
    out.push(...next);
    frontier = next;
  }
  return out;
}

/**
 * CPU seconds of `pid` (user + system) plus those of its children it has
 * already reaped (cutime + cstime); NaN when it is gone.
 */
function cpuWithReaped(pid: number): number {
  const f = statFields(pid);
  if (f === undefined) return NaN;
  // utime, stime, cutime, cstime are fields 14–17 of the line, 11–14 here.
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / clockTicksPerSecond();
}

function cpuOwn(pid: number): number {
  const f = statFields(pid);
  if (f === undefined) return 0;
  return (Number(f[11]) + Number(f[12])) / clockTicksPerSecond();
}

/** A running `wshub serve`. Create with {@link startServer}; always {@link AttackServer.stop} it. */
export class AttackServer {
  readonly port: number;
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly startedAt: number;
  private stderrTail = '';
  private stdoutTail = '';
  /** Log lines per `event` field (JSON-lines logs on stderr). */
  readonly logEvents: Record<string, number> = {};
  exit: ServerExit | undefined;
  private readonly exited: Promise<void>;
  private lastCpu = 0;

  constructor(child: ChildProcess, port: number, startedAt: number, stderrTail: string) {
    this.child = child;
    this.port = port;
    this.pid = child.pid!;
    this.startedAt = startedAt;
    this.stderrTail = stderrTail;
    // The lines written before `listening on` (startup logs) are counted too.
    let partial = stderrTail;
    const take = (text: string): void => {
      partial += text;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        const event = /"event"\s*:\s*"([^"]+)"/.exec(line)?.[1];
        if (event !== undefined) this.logEvents[event] = (this.logEvents[event] ?? 0) + 1;
      }
      if (partial.length > 65536) partial = '';
    };
    take('');
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.stderrTail = (this.stderrTail + text).slice(-4000);
      take(text);
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      this.stdoutTail = (this.stdoutTail + chunk.toString('utf8')).slice(-2000);
    });
    this.exited = new Promise((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null): void => {
        this.exit ??= { code, signal, atMs: performance.now() - this.startedAt, at: performance.now() };
        resolve();
      };
      if (child.exitCode !== null || child.signalCode !== null) done(child.exitCode, child.signalCode);
      else child.once('exit', done);
    });
  }

  alive(): boolean {
    return this.exit === undefined;
  }

  /** Resolves when the server process has exited. */
  whenExited(): Promise<void> {
    return this.exited;
  }

  /** Pids of the server's process tree (primary first). */
  pids(): number[] {
    return this.alive() ? [this.pid, ...descendants(this.pid)] : [];
  }

  /** RSS of the whole tree, in bytes (0 once it is gone). */
  rssBytes(): number {
    let sum = 0;
    for (const pid of this.pids()) {
      const rss = procRssBytes(pid);
      if (Number.isFinite(rss)) sum += rss;
    }
    return sum;
  }

  /**
   * CPU seconds used by the tree since start: the primary, its reaped
   * children, and its live descendants. Never goes backwards (the last
   * figure stays once the process is gone).
   */
  cpuSeconds(): number {
    const root = cpuWithReaped(this.pid);
    if (!Number.isFinite(root)) return this.lastCpu;
    let sum = root;
    for (const pid of descendants(this.pid)) sum += cpuOwn(pid);
    this.lastCpu = Math.max(this.lastCpu, sum);
    return this.lastCpu;
  }

  /** Open descriptors of the primary. */
  fds(): number {
    return countFds(this.pid);
  }

  stderr(): string {
    return this.stderrTail.trim();
  }

  stdout(): string {
    return this.stdoutTail.trim();
  }

  /** SIGTERM to the process group, then SIGKILL to the group if it lingers. */
  async stop(): Promise<void> {
    if (this.alive()) {
      signalGroup(this.pid, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(this.pid, 'SIGKILL'), STOP_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    }
    // Workers left behind by a primary that died are in the same group.
    signalGroup(this.pid, 'SIGKILL');
    this.child.stdin?.destroy();
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/** The command line that {@link startServer} runs, for the report. */
export function commandLine(launch: ServerLaunch): string {
  const node = [
    'node',
    ...(launch.nodeFlags ?? []),
    'bin/wshub.js',
    'serve',
    '--port',
    '0',
    ...(launch.args ?? []),
  ];
  const prefix = launch.fdLimit !== undefined ? `ulimit -n ${launch.fdLimit}; ` : '';
  return `WS_SECRET=… ${prefix}${node.join(' ')}`;
}

/** Starts `wshub serve` and resolves once it prints its `listening on` line. */
export async function startServer(launch: ServerLaunch): Promise<AttackServer> {
  const bin = join(launch.wshubDir, 'bin', 'wshub.js');
  const nodeArgs = [
    ...(launch.nodeFlags ?? []),
    bin,
    'serve',
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    ...(launch.args ?? []),
  ];
  const env = { ...process.env, WS_SECRET: launch.secret };
  const [file, args] =
    launch.fdLimit !== undefined
      ? ['bash', ['-c', `ulimit -n ${launch.fdLimit} && exec "$0" "$@"`, process.execPath, ...nodeArgs]]
      : [process.execPath, nodeArgs];
  const child = spawn(file, args, {
    cwd: launch.wshubDir,
    env,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return whenListening(child, performance.now());
}

/**
 * Waits for a `wshub serve` child (spawned detached, with piped stdio) to
 * print its `listening on` line and wraps it as an AttackServer. A child
 * that exits or fails first, or stays silent for READY_TIMEOUT_MS, is
 * killed with its process group (workers included) and rejected with the
 * tail of its stderr.
 */
export async function whenListening(child: ChildProcess, startedAt: number): Promise<AttackServer> {
  const out = child.stdout!;
  const err = child.stderr!;
  child.stdin?.on('error', () => {});
  let stdout = '';
  let stderr = '';
  const onStderr = (chunk: Buffer): void => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  };
  err.on('data', onStderr);
  const port = await new Promise<number>((resolve, reject) => {
    const fail = (error: Error): void => {
      cleanup();
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
      reject(error);
    };
    const timer = setTimeout(
      () =>
        fail(
          new Error(`wshub serve: no "listening on" line within ${READY_TIMEOUT_MS} ms: ${stderr.trim()}`),
        ),
      READY_TIMEOUT_MS,
    );
    const onData = (chunk: Buffer): void => {
      stdout += chunk.toString('utf8');
      const match = LISTENING.exec(stdout);
      if (match) {
        cleanup();
        resolve(Number(match[1]));
      }
    };
    const onExit = (code: number | null, signal: string | null): void =>
      fail(
        new Error(`wshub serve exited before listening (code ${code}, signal ${signal}): ${stderr.trim()}`),
      );
    const cleanup = (): void => {
      clearTimeout(timer);
      out.off('data', onData);
      child.off('exit', onExit);
      child.off('error', fail);
    };
    out.on('data', onData);
    child.once('exit', onExit);
    child.once('error', fail);
  });
  err.off('data', onStderr);
  return new AttackServer(child, port, startedAt, stderr);
}
