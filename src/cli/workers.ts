/**
 * `wshub serve --workers N`, primary side: forks N worker processes that
 * share one listening port through node:cluster (round-robin), relays the
 * built-in inter-process transport between them, restarts crashed workers
 * with exponential backoff for as long as it runs, and shuts them all down
 * gracefully on SIGINT/SIGTERM (the only way the primary ends once started).
 *
 * Startup: with --port 0 the primary first picks a free port itself (a
 * listen-and-close on the host), because node:cluster shares one listening
 * handle per address *as requested*: workers asking for port 0 would share
 * a random port only while one of them stays alive, and a restart after
 * every worker died would land elsewhere. One worker is forked first, then
 * the others, and only when all of them listen does the primary print
 * `listening on URL`. A
 * worker that fails before listening (bad broker, port in use) ends the
 * whole command with its exit code, so the failure is reported once.
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer } from 'node:net';
import { IpcRelay, type IpcDelivery, type RelayPeer } from '../broker/ipc.ts';
import type { Logger } from './logger.ts';

/**
 * Crashed workers are restarted after a delay that starts at
 * RESTART_BACKOFF_MIN_MS and doubles with every crash up to
 * RESTART_BACKOFF_MAX_MS, so a crash loop costs little CPU; a worker that
 * stayed up for RESTART_STABLE_MS before crashing starts the delay over.
 */
export const RESTART_BACKOFF_MIN_MS = 100;
export const RESTART_BACKOFF_MAX_MS = 30_000;
export const RESTART_STABLE_MS = 10_000;
/** Longest the primary waits for its workers to shut down before killing them. */
export const WORKERS_SHUTDOWN_BOUND_MS = 12_000;

/** IPC messages between the primary and its workers, other than the transport's. */
export type ControlMessage = { wshub: 'listening'; port: number } | { wshub: 'shutdown' };

/** Whether `message` is the primary's request to shut down. */
export function isShutdownMessage(message: unknown): boolean {
  return (
    typeof message === 'object' && message !== null && (message as { wshub?: unknown }).wshub === 'shutdown'
  );
}

function listeningPort(message: unknown): number | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const m = message as { wshub?: unknown; port?: unknown };
  return m.wshub === 'listening' && typeof m.port === 'number' ? m.port : undefined;
}

/** What the primary needs to know. */
export interface PrimaryOptions {
  workers: number;
  /** The serve arguments the workers are started with (without the command name). */
  argv: string[];
  host: string;
  port: number;
  scheme: 'http' | 'https';
  logger: Logger;
  /** Resolves with the signal that asks for shutdown. */
  waitForSignal: () => Promise<NodeJS.Signals>;
}

/** Runs the primary until shutdown; returns the exit code. */
export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const { logger } = options;
  const relay = new IpcRelay();
  const peers = new Map<number, RelayPeer>();
  const listening = new Map<number, (port: number) => void>();
  // Workers that listen, and so wait for the shutdown message.
  const serving = new Set<number>();
  let stopping = false;
  let backoff = RESTART_BACKOFF_MIN_MS;
  let restarts = 0;
  const forkedAt = new Map<number, number>();
  // Pending restarts are ref'd timers: with every worker dead they are what
  // keeps the primary (and so the port) alive until the replacement forks.
  const pendingRestarts = new Set<NodeJS.Timeout>();
  // Installed first: a signal during startup must stop the workers already forked.
  const signalled = options.waitForSignal();

  const peerOf = (worker: Worker): RelayPeer => {
    let peer = peers.get(worker.id);
    if (peer === undefined) {
      peer = {
        id: worker.id,
        send(message: IpcDelivery, done) {
          if (!worker.isConnected()) return done(new Error('worker disconnected'));
          try {
            worker.send(message, undefined, undefined, done);
          } catch (error) {
            done(error instanceof Error ? error : new Error(String(error)));
          }
        },
      };
      peers.set(worker.id, peer);
    }
    return peer;
  };

  const onMessage = (worker: Worker, message: unknown): void => {
    if (relay.handle(peerOf(worker), message)) return;
    const port = listeningPort(message);
    if (port !== undefined) listening.get(worker.id)?.(port);
  };
  cluster.on('message', onMessage);

  /** Forks one worker; resolves with its port, or rejects with its exit code if it ends first. */
  const fork = (): { worker: Worker; ready: Promise<number> } => {
    const worker = cluster.fork();
    forkedAt.set(worker.id, performance.now());
    const ready = new Promise<number>((resolve, reject) => {
      listening.set(worker.id, (port) => {
        listening.delete(worker.id);
        serving.add(worker.id);
        resolve(port);
      });
      worker.once('exit', (code: number | null, signal: string | null) => {
        if (listening.delete(worker.id)) reject(new StartFailure(code ?? (signal !== null ? 1 : 0)));
      });
    });
    ready.catch(() => {});
    logger.info('worker_started', { worker: worker.id, pid: worker.process.pid });
    return { worker, ready };
  };

  const onExit = (worker: Worker, code: number | null, signal: string | null): void => {
    relay.remove(worker.id);
    peers.delete(worker.id);
    serving.delete(worker.id);
    const uptime = performance.now() - (forkedAt.get(worker.id) ?? 0);
    forkedAt.delete(worker.id);
    if (stopping) return;
    logger.error('worker_exit', {
      worker: worker.id,
      pid: worker.process.pid,
      code,
      signal,
      uptime_ms: Math.round(uptime),
    });
    if (uptime >= RESTART_STABLE_MS) backoff = RESTART_BACKOFF_MIN_MS;
    const delay = backoff;
    backoff = Math.min(backoff * 2, RESTART_BACKOFF_MAX_MS);
    restarts++;
    logger.warn('worker_restart', { after_worker: worker.id, delay_ms: delay, restarts });
    const timer = setTimeout(() => {
      pendingRestarts.delete(timer);
      // A replacement that fails before listening is one more crash: onExit restarts it again.
      if (!stopping) fork().ready.catch(() => {});
    }, delay);
    pendingRestarts.add(timer);
  };
  const cancelRestarts = (): void => {
    for (const timer of pendingRestarts) clearTimeout(timer);
    pendingRestarts.clear();
  };

  let port = options.port;
  const startup = async (): Promise<void> => {
    if (port === 0) port = await freePort(options.host);
    // Later flags win, so the appended --port overrides the user's.
    cluster.setupPrimary({ exec: process.argv[1], args: ['serve', ...options.argv, '--port', String(port)] });
    const ports = [await fork().ready];
    ports.push(...(await Promise.all(Array.from({ length: options.workers - 1 }, () => fork().ready))));
    // Every worker asked for the same address, so node:cluster gave them one shared handle.
    if (ports.some((p) => p !== port))
      throw new Error(`workers listen on ports ${ports.join(', ')}, not ${port}`);
  };
  const interrupted = signalled.then((signal) => {
    throw new Interrupted(signal);
  });
  interrupted.catch(() => {});
  try {
    await Promise.race([startup(), interrupted]);
  } catch (error) {
    stopping = true;
    await stopAll(logger, serving);
    cluster.off('message', onMessage);
    if (error instanceof Interrupted) {
      logger.info('primary_stopped', { signal: error.signal });
      return 0;
    }
    if (error instanceof StartFailure) return error.code === 0 ? 1 : error.code;
    process.stderr.write(`wshub: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  cluster.on('exit', onExit);

  const hostPart = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `${options.scheme}://${hostPart}:${port}`;
  logger.info('primary_start', { url, workers: options.workers, pid: process.pid });
  process.stdout.write(`listening on ${url}\n`);

  const signal = await signalled;
  stopping = true;
  cancelRestarts();
  logger.info('primary_stop', { signal });
  const ok = await stopAll(logger, serving);
  cluster.off('message', onMessage);
  cluster.off('exit', onExit);
  logger.info('primary_stopped', { signal, relay: relay.metrics() });
  return ok ? 0 : 1;
}

/** A port that was free on `host` a moment ago (the OS picks it). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

class StartFailure extends Error {
  constructor(readonly code: number) {
    super(`worker exited with code ${code} before listening`);
  }
}

/**
 * Asks every serving worker to shut down gracefully (one still starting
 * gets SIGTERM, as it has nothing to drain yet) and waits for all of them;
 * past WORKERS_SHUTDOWN_BOUND_MS the rest are killed. Resolves true when
 * every worker exited with code 0.
 */
async function stopAll(logger: Logger, serving: ReadonlySet<number>): Promise<boolean> {
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  let ok = true;
  const exits = workers.map(
    (worker) =>
      new Promise<void>((resolve) => {
        if (worker.process.exitCode !== null || worker.process.signalCode !== null) {
          resolve();
          return;
        }
        worker.once('exit', (code: number | null) => {
          if (code !== 0) ok = false;
          resolve();
        });
        if (serving.has(worker.id) && worker.isConnected())
          worker.send({ wshub: 'shutdown' } satisfies ControlMessage, undefined, undefined, () => {});
        else worker.process.kill('SIGTERM');
      }),
  );
  const watchdog = setTimeout(() => {
    logger.error('shutdown_timeout', { bound_ms: WORKERS_SHUTDOWN_BOUND_MS });
    ok = false;
    for (const worker of workers) worker.process.kill('SIGKILL');
  }, WORKERS_SHUTDOWN_BOUND_MS);
  await Promise.all(exits);
  clearTimeout(watchdog);
  return ok;
}
