/**
 * A throwaway Redis Cluster for tests: three masters (no replicas), each a
 * `redis-server --cluster-enabled yes` on its own free loopback port with its
 * own temporary directory and no persistence, joined by
 * `redis-cli --cluster create`. Resolves once every node reports
 * `cluster_state:ok` and all 16384 slots are assigned.
 *
 *   test('...', redisClusterRequirement(), async () => {
 *     const cluster = await startRedisCluster();
 *     try { ... cluster.rootUrls ... } finally { await cluster.stop(); }
 *   });
 *
 * Fault tests can kill and restart a master on the same port (it rejoins
 * with its slots from its nodes.conf) and move a slot between masters.
 * Processes and directories left behind by a crashed test run are removed
 * when the test process exits.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireAll, requireBinary, type SkipOption } from './binaries.ts';
import { pingRedis } from './redis.ts';

/** Slots of a Redis Cluster. */
export const CLUSTER_SLOTS = 16_384;
/** The cluster bus listens on the client port plus this offset. */
const BUS_OFFSET = 10_000;

/** node:test option: skips locally (fails in CI) when redis-server or redis-cli is missing. */
export function redisClusterRequirement(): SkipOption {
  return requireAll(requireBinary('redis-server', 'redis-server'), requireBinary('redis-cli', 'redis-tools'));
}

/** One master of the test cluster. */
export interface RedisClusterNode {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Whether its process is running. */
  readonly running: boolean;
  /** Kills the process (SIGKILL by default) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and directory (it rejoins with its slots); waits until it answers PING. */
  restart(): Promise<void>;
  /** SIGSTOP: the process keeps its sockets but answers nothing. */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
}

export interface RedisCluster {
  readonly nodes: readonly RedisClusterNode[];
  /** Every master's `redis://127.0.0.1:<port>`. */
  readonly rootUrls: string[];
  /** Every master's port. */
  readonly ports: number[];
  /** Runs one command on the node at `port` through redis-cli; resolves with its raw output. */
  command(port: number, ...args: string[]): Promise<string>;
  /** Port of the master that owns `slot` (from CLUSTER SLOTS on a running node). */
  ownerOf(slot: number): Promise<number>;
  /**
   * Moves `slot` (and any keys in it) to the master at `toPort`, the way a
   * resharding does: IMPORTING/MIGRATING, MIGRATE of the keys, then
   * SETSLOT NODE on every master.
   */
  moveSlot(slot: number, toPort: number): Promise<void>;
  /** Resolves once every running node says cluster_state:ok and all slots are covered (rejects after `timeoutMs`). */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Kills every node and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Child processes and directories alive right now, cleaned up if the test process exits early. */
const alive = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of alive) child.kill('SIGKILL');
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A client port that is free, and whose cluster bus port (+10000) is free too. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.has(port) || taken.has(port + BUS_OFFSET)) continue;
    if ((await portFree(port)) && (await portFree(port + BUS_OFFSET))) {
      taken.add(port);
      taken.add(port + BUS_OFFSET);
      return port;
    }
  }
  throw new Error('no free port pair for a Redis Cluster node');
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function launch(port: number, dir: string, nodeTimeoutMs: number): ChildProcess {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(dir, 'nodes.conf'),
      '--cluster-node-timeout',
      String(nodeTimeoutMs),
      '--loglevel',
      'warning',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.resume();
  alive.add(child);
  child.once('exit', () => alive.delete(child));
  return child;
}

async function waitPing(child: ChildProcess, port: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (exited(child))
      throw new Error(`redis-server (cluster) on port ${port} exited with ${child.exitCode}`);
    if (await pingRedis(port)) return;
    if (performance.now() > deadline)
      throw new Error(`redis-server on port ${port} not ready within ${timeoutMs} ms`);
    await sleep(20);
  }
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (exited(child)) return;
  const done = once(child, 'exit');
  child.kill('SIGCONT');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
  await done;
  clearTimeout(timer);
}

/** Runs redis-cli with `args`; rejects on a non-zero exit or after `timeoutMs`. */
function redisCli(args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'redis-cli',
      args,
      { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`redis-cli ${args.join(' ')} failed: ${error.message} ${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/** Parses `CLUSTER INFO` into a map of its fields. */
function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

export interface RedisClusterOptions {
  /** Masters (default 3, the minimum Redis accepts). */
  masters?: number;
  /** `cluster-node-timeout` in ms (default 1000): how soon a dead master is marked failed. */
  nodeTimeoutMs?: number;
  /** Bound on the whole start, until the cluster is healthy (ms, default 20,000). */
  timeoutMs?: number;
}

/**
 * Starts a Redis Cluster of `masters` masters without replicas on free
 * loopback ports; resolves once it is healthy. On failure everything started
 * so far is killed and removed before the error is thrown.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  installExitHook();
  const masters = options.masters ?? 3;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1_000;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const taken = new Set<number>();
  const states: { port: number; dir: string; child: ChildProcess }[] = [];
  let stopped = false;

  const command = (port: number, ...args: string[]): Promise<string> =>
    redisCli(['-h', '127.0.0.1', '-p', String(port), ...args]);

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(states.map((s) => terminate(s.child, 'SIGKILL')));
    for (const s of states) {
      rmSync(s.dir, { recursive: true, force: true });
      dirs.delete(s.dir);
    }
  };

  const waitHealthy = async (waitMs = timeoutMs): Promise<void> => {
    const deadline = performance.now() + waitMs;
    for (;;) {
      const running = states.filter((s) => !exited(s.child));
      const infos = await Promise.all(
        running.map((s) =>
          command(s.port, 'CLUSTER', 'INFO').then(parseInfo, () => new Map<string, string>()),
        ),
      );
      const healthy =
        running.length === states.length &&
        infos.every(
          (info) =>
            info.get('cluster_state') === 'ok' &&
            info.get('cluster_slots_assigned') === String(CLUSTER_SLOTS) &&
            info.get('cluster_slots_ok') === String(CLUSTER_SLOTS) &&
            info.get('cluster_known_nodes') === String(states.length),
        );
      if (healthy) return;
      const last = infos
        .map((info) => `${info.get('cluster_state')}/${info.get('cluster_slots_ok')}`)
        .join(', ');
      if (performance.now() > deadline)
        throw new Error(`redis cluster not healthy within ${waitMs} ms (${last})`);
      await sleep(50);
    }
  };

  try {
    for (let i = 0; i < masters; i++) {
      const port = await freeClusterPort(taken);
      const dir = mkdtempSync(join(tmpdir(), 'wshub-redis-cluster-'));
      dirs.add(dir);
      states.push({ port, dir, child: launch(port, dir, nodeTimeoutMs) });
    }
    await Promise.all(states.map((s) => waitPing(s.child, s.port, timeoutMs)));
    await redisCli(
      [
        '--cluster',
        'create',
        ...states.map((s) => `127.0.0.1:${s.port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      timeoutMs,
    );
    await waitHealthy();
  } catch (error) {
    await stop();
    throw error;
  }

  const nodeIdOf = async (port: number): Promise<string> => (await command(port, 'CLUSTER', 'MYID')).trim();

  const ownerOf = async (slot: number): Promise<number> => {
    const running = states.find((s) => !exited(s.child));
    if (running === undefined) throw new Error('no cluster node running');
    // CLUSTER SHARDS would be neater but needs 7.0 output parsing; the
    // "nodes" line format is stable: "<id> <ip:port@bus> <flags> … <slots>".
    const nodes = await command(running.port, 'CLUSTER', 'NODES');
    for (const line of nodes.split('\n')) {
      const fields = line.trim().split(' ');
      if (fields.length < 9 || !fields[2]!.includes('master')) continue;
      for (const range of fields.slice(8)) {
        if (range.startsWith('[')) continue;
        const [from, to] = range.split('-').map(Number);
        if (from !== undefined && slot >= from && slot <= (to ?? from)) {
          return Number(fields[1]!.split('@')[0]!.split(':').pop());
        }
      }
    }
    throw new Error(`slot ${slot} has no owner`);
  };

  const moveSlot = async (slot: number, toPort: number): Promise<void> => {
    const fromPort = await ownerOf(slot);
    if (fromPort === toPort) return;
    const fromId = await nodeIdOf(fromPort);
    const toId = await nodeIdOf(toPort);
    await command(toPort, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId);
    await command(fromPort, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId);
    for (;;) {
      const keys = (await command(fromPort, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '100'))
        .split('\n')
        .filter((k) => k !== '');
      if (keys.length === 0) break;
      await command(fromPort, 'MIGRATE', '127.0.0.1', String(toPort), '', '0', '5000', 'KEYS', ...keys);
    }
    for (const s of states) {
      if (!exited(s.child)) await command(s.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
    }
  };

  const nodes: RedisClusterNode[] = states.map((state) => ({
    port: state.port,
    url: `redis://127.0.0.1:${state.port}`,
    get running() {
      return !exited(state.child);
    },
    kill: (signal: NodeJS.Signals = 'SIGKILL') => terminate(state.child, signal),
    async restart() {
      await terminate(state.child, 'SIGKILL');
      state.child = launch(state.port, state.dir, nodeTimeoutMs);
      await waitPing(state.child, state.port, timeoutMs);
    },
    pause: () => void state.child.kill('SIGSTOP'),
    resume: () => void state.child.kill('SIGCONT'),
  }));

  return {
    nodes,
    rootUrls: nodes.map((n) => n.url),
    ports: nodes.map((n) => n.port),
    command,
    ownerOf,
    moveSlot,
    waitHealthy,
    stop,
  };
}
