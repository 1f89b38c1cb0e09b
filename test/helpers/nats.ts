/**
 * A real `nats-server` for tests: started on free loopback ports (client and
 * monitoring), stopped afterwards, and killable / restartable on the SAME
 * ports for fault tests. Its monitoring endpoint tells which subjects each
 * client connection is subscribed to — the server's own view of interest.
 *
 *   test('...', requireNatsServer(), async () => {
 *     const nats = await startNatsServer();
 *     try { ... nats.url ... } finally { await nats.stop(); }
 *   });
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { get } from 'node:http';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster } from '../../src/broker/cluster.ts';
import { NatsTransport } from '../../src/broker/nats.ts';
import { requireBinary, type SkipOption } from './binaries.ts';

/** `{ skip: false }` when nats-server is installed; skips locally and fails in CI otherwise. */
export function requireNatsServer(): SkipOption {
  return requireBinary('nats-server', 'nats-server');
}

/** One client connection as the server's `/connz?subs=1` reports it. */
export interface NatsConnectionInfo {
  name: string;
  subjects: string[];
}

export interface NatsServer {
  /** Client port on 127.0.0.1. */
  readonly port: number;
  /** HTTP monitoring port on 127.0.0.1. */
  readonly monitorPort: number;
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  /** Whether the process is currently running. */
  readonly running: boolean;
  /** SIGKILLs the process (no goodbye to clients) and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and waits until it accepts clients. */
  restart(): Promise<void>;
  /** SIGTERM, then SIGKILL after a bound; resolves once it exited. Idempotent. */
  stop(): Promise<void>;
  /** SIGSTOP: the process keeps its sockets but answers nothing (a stalled broker). */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
  /** Client connections and their subscribed subjects, from the monitoring endpoint. */
  connections(): Promise<NatsConnectionInfo[]>;
  /** What the server wrote on stderr (for failure messages). */
  log(): string;
}

/** A port nobody listens on right now (bound, read, released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves once something on 127.0.0.1:`port` sends the NATS `INFO` greeting. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('data', (chunk: Buffer) => done(chunk.toString('latin1').startsWith('INFO ')));
    socket.once('error', () => done(false));
  });
}

/** GETs a JSON document from the monitoring port on a connection of its own. */
function getJson(port: number, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const request = get({ host: '127.0.0.1', port, path, agent: false, timeout: 2_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (d: string) => (body += d));
      response.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${path} timed out`)));
    request.on('error', reject);
  });
}

/**
 * Starts nats-server on free ports (or the given ones) bound to 127.0.0.1
 * and resolves once it greets clients; rejects if it is not ready within
 * `readyTimeoutMs`.
 */
export async function startNatsServer(
  options: { port?: number; monitorPort?: number; readyTimeoutMs?: number } = {},
): Promise<NatsServer> {
  const port = options.port ?? (await freePort());
  const monitorPort = options.monitorPort ?? (await freePort());
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  let child: ChildProcess | null = null;
  let stderr = '';

  const launch = async (): Promise<void> => {
    const proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = proc;
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8_000)));
    const deadline = performance.now() + readyTimeoutMs;
    while (!(await greets(port))) {
      if (proc.exitCode !== null || proc.signalCode !== null || performance.now() > deadline) {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
        throw new Error(`nats-server on port ${port} did not become ready:\n${stderr}`);
      }
      await sleep(20);
    }
  };

  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = null;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGCONT');
    proc.kill(signal);
    if (signal !== 'SIGKILL') {
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    } else {
      await exited;
    }
  };

  await launch();
  return {
    port,
    monitorPort,
    url: `nats://127.0.0.1:${port}`,
    get running() {
      return child !== null && child.exitCode === null && child.signalCode === null;
    },
    kill: () => end('SIGKILL'),
    async restart() {
      await end('SIGTERM');
      await launch();
    },
    stop: () => end('SIGTERM'),
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async connections() {
      const connz = (await getJson(monitorPort, '/connz?subs=1&limit=1024')) as {
        connections?: { name?: string; subscriptions_list?: string[] }[];
      };
      return (connz.connections ?? []).map((c) => ({
        name: c.name ?? '',
        subjects: c.subscriptions_list ?? [],
      }));
    },
    log: () => stderr,
  };
}

/**
 * A Cluster over its own NatsTransport connection to `url`, named `name` in
 * the server's monitoring pages, announcing presence every 100 ms and
 * retrying lost connections every 100 ms (quick enough for tests).
 */
export function natsCluster(url: string, name: string): Cluster {
  return new Cluster({
    transport: new NatsTransport({ servers: url, reconnectMaxDelayMs: 100, name }),
    nodeId: name,
    presenceInterval: 100,
  });
}
