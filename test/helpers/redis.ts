/**
 * A throwaway redis-server for scale-out tests: started on a free loopback
 * port without persistence, stopped (SIGTERM, then SIGKILL after a bound)
 * afterwards, and killable, pausable and restartable on the SAME port for
 * fault tests.
 *
 *   test('...', redisRequirement(), async () => {
 *     const redis = await startRedis();
 *     try { ... redis.url ... } finally { await redis.stop(); }
 *   });
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireBinary, type SkipOption } from './binaries.ts';

const BINARY = 'redis-server';

/** node:test option: skips locally (fails in CI) when redis-server is not installed. */
export function redisRequirement(): SkipOption {
  return requireBinary(BINARY, 'redis-server');
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Whether a redis server answers PING on `port` within `timeoutMs`. */
export function pingRedis(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
  });
}

/** A redis-server process under the test's control. */
export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Whether a process is currently running (possibly paused). */
  readonly running: boolean;
  /** Kills the process (SIGKILL by default) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a fresh process on the same port (after `kill`) and waits until it answers. */
  restart(): Promise<void>;
  /** SIGSTOP: the process keeps its sockets but answers nothing (a "slow broker"). */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

function launch(port: number): ChildProcess {
  const child = spawn(
    BINARY,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--loglevel',
      'warning',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.resume();
  return child;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function waitReady(child: ChildProcess, port: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (exited(child)) throw new Error(`redis-server on port ${port} exited with ${child.exitCode}`);
    if (await pingRedis(port)) return;
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server on port ${port} not ready within ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (exited(child)) return;
  const done = once(child, 'exit');
  child.kill('SIGCONT');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(timer);
}

/**
 * Starts redis-server on `port` (default: a free one) bound to 127.0.0.1,
 * without RDB/AOF persistence; resolves once it answers PING.
 */
export async function startRedis(port?: number, timeoutMs = 5_000): Promise<RedisServer> {
  const chosen = port ?? (await freePort());
  let child = launch(chosen);
  await waitReady(child, chosen, timeoutMs);
  return {
    port: chosen,
    url: `redis://127.0.0.1:${chosen}`,
    get running() {
      return !exited(child);
    },
    kill: (signal = 'SIGKILL') => terminate(child, signal, 2_000),
    async restart() {
      await terminate(child, 'SIGKILL', 2_000);
      child = launch(chosen);
      await waitReady(child, chosen, timeoutMs);
    },
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    stop: (graceMs = 2_000) => terminate(child, 'SIGTERM', graceMs),
  };
}
