/**
 * Centrifugo v6.9.1 as a benchmark peer of the channel scenario. Not a
 * peer script like its neighbours (it is a Go binary, not a Node server):
 * this module builds the binary when it is missing, writes its
 * configuration into a temporary folder, and starts it through
 * startExternalPeer, so it is pinned and measured exactly like the others,
 * with `GOMAXPROCS=1` so the Go runtime schedules on that one core only.
 *
 * The build is `GOBIN=<bin dir> go install github.com/centrifugal/centrifugo/v6@v6.9.1`,
 * the bin dir being $WSHUB_BENCH_BIN_DIR or ~/.cache/wshub-bench/bin
 * (outside the repository). A binary there that `go version -m` shows to
 * be another version is rebuilt.
 *
 * Configuration (Centrifugo v6 keys): anonymous connections without a
 * token, subscriptions to channels without a namespace allowed for any
 * client, no history, no presence, no join/leave (so the comparison is pure
 * fan-out), the server API key, the health endpoint for readiness, errors
 * only in the log, no usage statistics sent anywhere. For the cross-node
 * scenario a node may use the Redis engine (`engine.type: redis`, so nodes
 * sharing one Redis form one cluster), and channels may keep a history
 * there (`history_size`, `history_ttl`, recovery allowed).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChannelAccess } from '../loadgen/index.ts';
import { startExternalPeer, type PeerProcess } from '../peer-process.ts';
import { runGo } from '../go-command.ts';

/** The Go module and version the issue names. */
export const CENTRIFUGO_MODULE = 'github.com/centrifugal/centrifugo/v6';
export const CENTRIFUGO_VERSION = 'v6.9.1';
/** Where its clients connect. */
export const CENTRIFUGO_WS_PATH = '/connection/websocket';

const BUILD_TIMEOUT_MS = 20 * 60_000;
const HOST = '127.0.0.1';

/** The folder the binary is built into (outside the repository). */
export function centrifugoBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['WSHUB_BENCH_BIN_DIR'] ?? join(homedir(), '.cache', 'wshub-bench', 'bin');
}

/**
 * The version `go version -m` reads from a binary's build info for the
 * Centrifugo module; undefined when Go is missing or the file is not such a binary.
 */
export function builtVersion(binary: string): string | undefined {
  const out = spawnSync('go', ['version', '-m', binary], { encoding: 'utf8', timeout: 30_000 });
  if (out.status !== 0 || typeof out.stdout !== 'string') return undefined;
  const line = out.stdout.split('\n').find((l) => /^\s*mod\s/.test(l) && l.includes(CENTRIFUGO_MODULE));
  return line?.trim().split(/\s+/)[2];
}

/**
 * Returns the path of a Centrifugo v6.9.1 binary, building it first with
 * `go install` when it is absent (or another version). Throws when Go is
 * not installed or the build fails; `log` gets progress lines.
 */
export async function ensureCentrifugo(
  log: (line: string) => void,
  binDir = centrifugoBinDir(),
): Promise<string> {
  const binary = join(binDir, 'centrifugo');
  if (existsSync(binary)) {
    const version = builtVersion(binary);
    if (version === CENTRIFUGO_VERSION) return binary;
    if (version === undefined && spawnSync('go', ['version'], { stdio: 'ignore' }).status !== 0) {
      log(`  centrifugo: cannot check ${binary}'s version without Go; using it as ${CENTRIFUGO_VERSION}`);
      return binary;
    }
    log(`  centrifugo: ${binary} is ${version ?? 'not a Centrifugo build'}; rebuilding`);
  }
  mkdirSync(binDir, { recursive: true });
  const target = `${CENTRIFUGO_MODULE}@${CENTRIFUGO_VERSION}`;
  log(`  centrifugo: building ${target} into ${binDir} (the first build takes minutes)`);
  const started = Date.now();
  await runGo(['install', target], {
    label: 'centrifugo',
    whenMissing: `install Go to build ${target}`,
    env: { ...process.env, GOBIN: binDir },
    timeoutMs: BUILD_TIMEOUT_MS,
  });
  if (!existsSync(binary)) throw new Error(`centrifugo: go install ${target} left no ${binary}`);
  log(`  centrifugo: built in ${Math.round((Date.now() - started) / 1000)} s`);
  return binary;
}

/** How a Centrifugo node keeps its channels: alone in memory (default), or in a cluster through Redis. */
export interface CentrifugoEngine {
  /** `redis://HOST:PORT` of the Redis engine; nodes given the same one form a cluster. */
  redisUrl?: string;
  /** Publications kept per channel (0 or absent: no history). */
  historySize?: number;
  /** How long a channel's history lives, in seconds (with historySize). */
  historyTtlSec?: number;
}

/** Centrifugo v6's configuration for the benchmark: see the module comment. */
export function centrifugoConfig(
  port: number,
  apiKey: string,
  engine: CentrifugoEngine = {},
): Record<string, unknown> {
  const historySize = engine.historySize ?? 0;
  const history =
    historySize > 0
      ? { history_size: historySize, history_ttl: `${engine.historyTtlSec ?? 300}s`, allow_recovery: true }
      : { history_size: 0 };
  return {
    ...(engine.redisUrl === undefined
      ? {}
      : { engine: { type: 'redis', redis: { address: [engine.redisUrl] } } }),
    http_server: { address: HOST, port },
    log: { level: 'error' },
    usage_stats: { disabled: true },
    health: { enabled: true },
    http_api: { key: apiKey },
    client: { allow_anonymous_connect_without_token: true },
    channel: {
      without_namespace: {
        allow_subscribe_for_client: true,
        allow_subscribe_for_anonymous: true,
        presence: false,
        join_leave: false,
        ...history,
      },
    },
  };
}

/** A port that was free a moment ago (the server is told to listen on it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves true when `GET path` on the port answers 200 within a second. */
export function answers200(port: number, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: HOST, port, path, timeout: 1000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** A running channel server: its process, where clients connect, how to publish, and how to stop it. */
export interface ChannelPeer {
  peer: PeerProcess;
  wsPath: string;
  access: ChannelAccess;
  stop(): Promise<void>;
}

/**
 * Builds Centrifugo if needed, starts it with GOMAXPROCS=1 pinned to
 * `cpuList`, and resolves once its health endpoint answers. The caller must
 * `stop()` it (SIGTERM, SIGKILL after a few seconds, temp folder removed).
 * `engine` makes it a node of a cluster through Redis (see CentrifugoEngine);
 * `apiKey` gives every node of one cluster the same key (default: a fresh one).
 */
export async function startCentrifugo(
  cpuList: string,
  log: (line: string) => void,
  engine: CentrifugoEngine = {},
  apiKey = randomBytes(24).toString('hex'),
): Promise<ChannelPeer> {
  const binary = await ensureCentrifugo(log);
  const dir = mkdtempSync(join(tmpdir(), 'wshub-bench-centrifugo-'));
  try {
    const port = await freePort();
    const config = join(dir, 'config.json');
    writeFileSync(config, `${JSON.stringify(centrifugoConfig(port, apiKey, engine), null, 2)}\n`);
    const peer = await startExternalPeer({
      name: 'centrifugo',
      command: binary,
      args: ['--config', config],
      port,
      cwd: dir,
      cpuList,
      env: { ...process.env, GOMAXPROCS: '1' },
      ready: () => answers200(port, '/health'),
    });
    return {
      peer,
      wsPath: CENTRIFUGO_WS_PATH,
      access: { apiKey },
      stop: async () => {
        await peer.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
