/**
 * `wshub serve`: runs a WshubServer over http or https with its
 * configuration taken from flags, an optional JSON config file and
 * secrets from the environment or secret files. Adds GET /healthz,
 * JSON-lines logs on stderr, graceful shutdown on SIGINT/SIGTERM and, with
 * `--dev`, the demo chat page.
 */
import cluster, { type Worker } from 'node:cluster';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { ServerOptions as HttpsOptions } from 'node:https';
import { SecretReuseError, WeakSecretError } from '../auth/errors.ts';
import type { RoomPasswords } from '../auth/room-password.ts';
import { generateSecureSecret, validateRoomPassword } from '../auth/security.ts';
import type { WshubConfig } from '../config.ts';
import { createDemo, type Demo } from '../demo/demo.ts';
import { ConfigError } from '../errors.ts';
import { HttpRejection, refusal, sendRejection } from '../http/rejections.ts';
import { createWshub, type WshubServer } from '../server/server.ts';
import { createMetricsRegistry, serveMetrics } from '../metrics/prometheus.ts';
import { parseFlags, UsageError } from './args.ts';
import {
  buildRoomPasswords,
  loadApiKey,
  loadMetricsKey,
  loadConfigFile,
  loadRoomPasswordFile,
  loadSecret,
  readBinaryFile,
  readTextFile,
} from './config-file.ts';
import { createLogger, type Logger, type LogLevel } from './logger.ts';
import { flagsHelp, parseArgsOptions, readServeValues, SERVE_OPTIONS } from './serve-options.ts';
import { AddressSet } from '../http/trusted-proxy.ts';
import { readPublicKey } from '../auth/token-keys.ts';
import { buildChannelEngine, loadStateClient, planState, type StatePlan } from './state.ts';
import {
  buildCluster,
  connectCluster,
  loadBrokerClient,
  planScaleOut,
  type ScaleOutPlan,
} from './scaleout.ts';
import { isShutdownMessage, runPrimary, type ControlMessage } from './workers.ts';

/** Help text of `wshub serve`, its flags generated from SERVE_OPTIONS. */
export const SERVE_USAGE = `usage: wshub serve [flags]

Runs a WebSocket hub. Clients connect to ws://HOST:PORT/ws?room=NAME.
Secrets come only from the environment or from files:
  WS_SECRET              HS256 token secret (at least 32 bytes)
  WS_BROADCAST_SECRET    admin broadcast secret (at least 32 bytes, with --broadcast)
  WS_API_KEY             server API key (at least 32 bytes, not the token secret);
                         without one the server API is off
  WS_METRICS_KEY         bearer key of /metrics on the main port (at least 32 bytes, with --metrics)
Channel clients (the Centrifuge protocol, e.g. the centrifuge SDK) connect to
ws://HOST:PORT/connection/websocket.

Every flag can also come from an environment variable: WSHUB_ and the flag in
upper snake case (--max-room-connections 10 is WSHUB_MAX_ROOM_CONNECTIONS=10).
Booleans take 1/0, true/false, yes/no or on/off; repeatable flags take a
comma-separated list. A flag wins over its variable, a variable over --config.

flags:
${flagsHelp()}
--config may hold "channels" (channel options and "namespaces": [{"name": …, …}])
and "channelLimits" (bounds of the channel protocol); see docs/CONFIG.md.
GET /healthz answers with the health report as JSON (200 healthy, 503 otherwise;
with --workers, from whichever worker takes the request).
SIGINT or SIGTERM shuts down gracefully (close code 1001); a second signal exits at once.
`;

const SERVE_FLAGS = parseArgsOptions();

type ServeFlags = Record<string, string | boolean | string[] | undefined>;

/** Upper bound on the whole graceful shutdown; past it the process exits with code 1. */
export const SHUTDOWN_BOUND_MS = 10_000;
/** Longest the hub waits for clients to answer the close frame during shutdown. */
const SHUTDOWN_CLOSE_WAIT_MS = 5_000;

/** Everything `serve` decided before starting: the server options and how to run them. */
export interface ServePlan {
  config: Partial<WshubConfig>;
  host: string;
  port: number;
  tls: HttpsOptions | undefined;
  logger: Logger;
  roomPasswords: RoomPasswords;
  dev: boolean;
  /** True when --dev generated the secret because WS_SECRET was unset. */
  randomSecret: boolean;
  scaleOut: ScaleOutPlan;
  /** The --metrics-port listener, when asked for. */
  metrics?: { port: number; host: string } | undefined;
  state: StatePlan;
}

/**
 * Turns the flags (and `env`) into a ServePlan: config file first, the
 * WSHUB_* environment over it, flags over both, then secrets and room
 * passwords. Throws UsageError for every bad input, before anything listens.
 */
export async function planServe(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): Promise<ServePlan> {
  // Flags and variables are checked before any file is read, so a typo is reported first.
  const v = readServeValues(flags, env);
  const str = (flag: string) => v.get(flag) as string | undefined;
  const int = (flag: string) => v.get(flag) as number | undefined;
  const bool = (flag: string) => v.get(flag) as boolean | undefined;
  const logLevel = str('log-level') as LogLevel;
  const port = int('port')!;
  const host = str('host')!;

  const fromFlags: Partial<WshubConfig> & Record<string, unknown> = {};
  for (const option of SERVE_OPTIONS) {
    const value = v.get(option.flag);
    if (option.key === undefined || value === undefined || option.kind === 'list') continue;
    fromFlags[option.key] = value;
  }
  const list = (flag: string) => v.get(flag) as string[] | undefined;
  const issuers = list('token-issuer');
  if (issuers !== undefined) fromFlags.tokenIssuer = issuers;
  const audiences = list('token-audience');
  if (audiences !== undefined) fromFlags.tokenAudience = audiences;
  const exempt = list('limit-exempt');
  if (exempt !== undefined) fromFlags.limitExempt = exempt.includes('none') ? [] : [...exempt];
  const proxies = list('trusted-proxy');
  if (proxies !== undefined) fromFlags.trustedProxies = [...proxies];
  for (const [flag, ranges] of [
    ['limit-exempt', fromFlags.limitExempt],
    ['trusted-proxy', fromFlags.trustedProxies],
  ] as const) {
    for (const range of ranges ?? []) checkCidr(v.source(flag) ?? `--${flag}`, range);
  }
  if (typeof fromFlags.jwksUrl === 'string') checkJwksUrl(fromFlags.jwksUrl);
  const validation = str('message-validation');
  if (validation !== undefined) fromFlags.messageValidation = validation === 'off' ? false : {};
  if (bool('deflate') === true && bool('no-deflate') === true)
    throw new UsageError('--deflate and --no-deflate exclude each other');
  if (bool('deflate') === true) fromFlags.perMessageDeflate = true;
  if (bool('no-deflate') === true) fromFlags.perMessageDeflate = false;
  if (bool('no-channels') === true) {
    for (const flag of ['channel-path', 'allow-anonymous-connect', 'dev'] as const) {
      if (v.get(flag) !== undefined) throw new UsageError(`--${flag} needs channels: drop --no-channels`);
    }
    fromFlags.channelsEnabled = false;
  }
  if ((str('tls-cert') === undefined) !== (str('tls-key') === undefined)) {
    throw new UsageError('--tls-cert and --tls-key must be given together');
  }
  if (v.source('metrics-host') !== undefined && int('metrics-port') === undefined)
    throw new UsageError(`${v.source('metrics-host')} needs --metrics-port`);
  const raw = v.raw();
  const dev = bool('dev') === true;
  const scaleOut = planScaleOut(raw, dev);
  await loadBrokerClient(scaleOut);
  const state = planState(raw);
  if (state.redis !== undefined && bool('no-channels') === true)
    throw new UsageError('--state redis://… needs channels: drop --no-channels');
  await loadStateClient(state);

  const configFile = str('config');
  const file = configFile !== undefined ? await loadConfigFile(configFile) : undefined;
  const config: Partial<WshubConfig> = { ...file?.config };
  for (const [key, value] of Object.entries(fromFlags)) {
    if (value !== undefined) (config as Record<string, unknown>)[key] = value;
  }
  const origins = v.get('allow-origin') as string[] | undefined;
  if (origins !== undefined) {
    for (const origin of origins) checkOrigin(origin, v.source('allow-origin')!);
    config.allowedOrigins = [...origins];
  }

  if (bool('allow-anonymous-connect') === true) {
    config.channelLimits = { ...config.channelLimits, allowAnonymousConnect: true };
  }
  // `wshub serve` serves channels unless told not to (the library only when configured).
  config.channelsEnabled ??= true;

  if (dev && config.channelsEnabled === false)
    throw new UsageError('--dev needs channels: the config file sets "channelsEnabled": false');
  let secret = await loadSecret({ env: 'WS_SECRET', flag: '--secret-file', file: str('secret-file') }, env);
  let randomSecret = false;
  if (secret === undefined && dev) {
    secret = generateSecureSecret();
    randomSecret = true;
  }
  const publicKeyFile = str('token-public-key-file');
  if (publicKeyFile !== undefined) {
    config.tokenPublicKey = await readTextFile(publicKeyFile, '--token-public-key-file');
    checkPublicKey(config.tokenPublicKey);
  }
  const hasPublicKeys = (config.tokenPublicKey ?? '') !== '' || (config.jwksUrl ?? '') !== '';
  if (secret === undefined && !hasPublicKeys && config.allowUnauthenticated !== true) {
    throw new UsageError(
      'no token key: set WS_SECRET or --secret-file (at least 32 bytes), --token-public-key-file or --jwks-url, or pass --allow-unauthenticated',
    );
  }
  config.secret = secret;
  const apiKey = await loadApiKey(str('api-key-file'), secret, env);
  if (apiKey !== undefined) config.apiKey = apiKey;
  const metricsPort = int('metrics-port');
  const metricsKey =
    config.metricsEnabled === true || str('metrics-key-file') !== undefined
      ? await loadMetricsKey(str('metrics-key-file'), secret, env)
      : undefined;
  if (config.metricsEnabled === true) {
    if (metricsKey === undefined)
      throw new UsageError(
        '--metrics needs WS_METRICS_KEY or --metrics-key-file (at least 32 bytes); or serve metrics on --metrics-port',
      );
    config.metricsKey = metricsKey;
  }
  if (config.broadcastEnabled === true) {
    const broadcastSecret = await loadSecret(
      { env: 'WS_BROADCAST_SECRET', flag: '--broadcast-secret-file', file: str('broadcast-secret-file') },
      env,
    );
    if (broadcastSecret === undefined) {
      throw new UsageError(
        '--broadcast needs WS_BROADCAST_SECRET or --broadcast-secret-file (at least 32 bytes)',
      );
    }
    config.broadcastSecret = broadcastSecret;
  }

  const passwords = { ...file?.roomPasswords };
  const roomPasswordFile = str('room-passwords');
  if (roomPasswordFile !== undefined) Object.assign(passwords, await loadRoomPasswordFile(roomPasswordFile));

  let tls: HttpsOptions | undefined;
  const tlsCert = str('tls-cert');
  const tlsKey = str('tls-key');
  if (tlsCert !== undefined && tlsKey !== undefined) {
    tls = {
      cert: await readBinaryFile(tlsCert, '--tls-cert file'),
      key: await readBinaryFile(tlsKey, '--tls-key file'),
    };
  }
  const logger = createLogger(logLevel);
  for (const [room, password] of Object.entries(passwords)) {
    const check = validateRoomPassword(password);
    if (!check.ok) logger.warn('weak_room_password', { room, reason: check.reason });
  }
  const roomPasswords = await buildRoomPasswords(passwords);
  if (!dev && roomPasswords.rooms().length > 0) config.roomAuthorizer = roomPasswords;
  const metrics =
    metricsPort === undefined ? undefined : { port: metricsPort, host: str('metrics-host') ?? '127.0.0.1' };
  return { config, host, port, tls, logger, roomPasswords, dev, randomSecret, scaleOut, state, metrics };
}

/** A CIDR flag value, checked before anything listens. */
function checkCidr(flag: string, range: string): void {
  try {
    new AddressSet([range], flag);
  } catch {
    throw new UsageError(`${flag} must be an IP address or CIDR like 10.0.0.0/8, got "${range}"`);
  }
}

function checkJwksUrl(url: string): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:'))
    throw new UsageError(`--jwks-url must be an absolute http(s) URL, got "${url}"`);
}

/** The --token-public-key-file contents must be a usable public key. */
function checkPublicKey(text: string): void {
  try {
    readPublicKey(text);
  } catch (error) {
    if (error instanceof ConfigError)
      throw new UsageError(`--token-public-key-file: ${error.message.replace(/^tokenPublicKey: /, '')}`);
    throw error;
  }
}

function checkOrigin(origin: string, source: string): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(origin);
  } catch {
    parsed = undefined;
  }
  if (parsed?.origin !== origin) {
    throw new UsageError(`${source} must be an origin like https://example.com, got "${origin}"`);
  }
}

/** Creates the WshubServer, turning configuration errors into UsageErrors. */
function buildServer(config: Partial<WshubConfig>): WshubServer {
  try {
    return createWshub(config);
  } catch (error) {
    if (
      error instanceof ConfigError ||
      error instanceof WeakSecretError ||
      error instanceof SecretReuseError
    ) {
      throw new UsageError(`invalid configuration: ${error.message}`);
    }
    throw error;
  }
}

/** Runs `wshub serve [flags]` until SIGINT/SIGTERM; returns the exit code. */
export async function serveCommand(argv: string[]): Promise<number> {
  if (argv.some((arg) => arg === '--secret' || arg.startsWith('--secret='))) {
    throw new UsageError(
      'there is no --secret flag: put the secret in WS_SECRET or in a file named by --secret-file',
    );
  }
  const flags = parseFlags(argv, SERVE_FLAGS) as ServeFlags;
  if (flags.help === true) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  const plan = await planServe(flags);
  const workers = plan.scaleOut.workers;
  if (workers !== undefined && cluster.isPrimary) {
    return runPrimary({
      workers,
      argv,
      host: plan.host,
      port: plan.port,
      scheme: plan.tls !== undefined ? 'https' : 'http',
      logger: plan.logger,
      waitForSignal: () => waitForSignal(),
    });
  }
  const worker = workers !== undefined ? cluster.worker : undefined;
  if (worker === undefined) return serveNode(plan, plan.logger, undefined);
  try {
    return await serveNode(plan, withWorker(plan.logger, worker.id), worker);
  } finally {
    // The IPC channel would keep a worker alive; closing it lets the process end.
    if (worker.isConnected()) worker.disconnect();
  }
}

/** Runs one node (the whole server, or one --workers worker) until shutdown; returns the exit code. */
async function serveNode(plan: ServePlan, logger: Logger, worker: Worker | undefined): Promise<number> {
  let demo: Demo | undefined;
  let config = plan.config;
  if (plan.dev) {
    demo = createDemo({
      secret: plan.config.secret as Uint8Array,
      roomPasswords: plan.roomPasswords,
      channels: plan.config.channels,
    });
    config = { ...config, ...demo.config };
  }
  const scaleOut = buildCluster(plan.scaleOut, logger, worker?.id);
  if (scaleOut !== undefined) config = { ...config, cluster: scaleOut };
  const engine = await buildChannelEngine(plan.state, logger);
  if (engine !== undefined) config = { ...config, channelEngine: engine };
  const ws = buildServer(config);
  ws.log = logger.log;
  demo?.bind(ws);
  if (!(await connectCluster(ws, plan.scaleOut, plan.state.redis))) return 1;

  const server = ws.createServer((request, response) => {
    if (pathOf(request) === '/healthz') {
      healthz(ws, request, response);
      return;
    }
    if (demo?.handleRequest(request, response) === true) return;
    notFound(response);
  }, plan.tls);
  server.on('tlsClientError', (error: Error) => logger.debug('tls_client_error', { error: error.message }));

  try {
    await listen(server, plan.port, plan.host);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    process.stderr.write(`wshub: cannot listen on ${plan.host}:${plan.port}: ${code}\n`);
    await ws.shutdown({ timeout: 0 });
    return 1;
  }
  server.on('error', (error: Error) => logger.error('server_error', { error: error.message }));
  let metricsServer: Server | undefined;
  if (plan.metrics !== undefined) {
    metricsServer = metricsListener(ws, logger);
    try {
      await listen(metricsServer, plan.metrics.port, plan.metrics.host);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      process.stderr.write(
        `wshub: cannot listen on ${plan.metrics.host}:${plan.metrics.port} for metrics: ${code}\n`,
      );
      server.close();
      await ws.shutdown({ timeout: 0 });
      return 1;
    }
  }

  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : plan.port;
  const scheme = plan.tls !== undefined ? 'https' : 'http';
  const hostPart = plan.host.includes(':') ? `[${plan.host}]` : plan.host;
  const url = `${scheme}://${hostPart}:${port}`;
  if (demo !== undefined) {
    // The demo page connects from its own origin, which must pass the origin check.
    ws.config.allowedOrigins.push(url);
    if (plan.host === '127.0.0.1') ws.config.allowedOrigins.push(`${scheme}://localhost:${port}`);
    process.stdout.write('wshub: development mode (demo page, in-memory hub) - not for production\n');
    if (plan.randomSecret) {
      process.stdout.write(
        'wshub: WS_SECRET is not set; using a random per-run secret (tokens stop working after a restart)\n',
      );
    }
    logger.warn('dev_mode', { random_secret: plan.randomSecret });
  }
  logger.info('start', {
    url,
    node: scaleOut?.nodeId,
    broker: scaleOut?.transport.kind,
    state: engine?.kind ?? 'memory',
    path: ws.config.wsRoutePath,
    channel_path: ws.channels === null ? undefined : ws.config.channelPath,
    api: ws.config.apiKey !== undefined,
    tls: plan.tls !== undefined,
    auth: authMode(ws.config),
    broadcast: ws.config.broadcastEnabled,
    dev: plan.dev,
  });
  if (authMode(ws.config) === 'none')
    logger.warn('auth_disabled', { reason: '--allow-unauthenticated without a secret' });
  // Printed before the listening line, which tells a supervisor that everything is up.
  if (metricsServer !== undefined && worker === undefined) {
    const m = metricsServer.address();
    const mPort = typeof m === 'object' && m !== null ? m.port : plan.metrics?.port;
    const mHost = plan.metrics!.host.includes(':') ? `[${plan.metrics!.host}]` : plan.metrics!.host;
    process.stdout.write(`metrics on http://${mHost}:${mPort}/metrics\n`);
  }

  if (worker !== undefined) {
    // The primary prints the listening line once every worker is up.
    process.send?.({ wshub: 'listening', port } satisfies ControlMessage);
  } else {
    process.stdout.write(`listening on ${url}\n`);
  }
  if (demo !== undefined) process.stdout.write(`demo: open ${url}/\n`);
  const signal = await waitForSignal(worker !== undefined);
  metricsServer?.close();
  metricsServer?.closeAllConnections();
  return shutdown(ws, server, logger, signal);
}

/** The --metrics-port listener: GET /metrics without a key (the port is its access control), 404 elsewhere. */
function metricsListener(ws: WshubServer, logger: Logger): Server {
  const endpoint = { registry: createMetricsRegistry(ws) };
  const server = createHttpServer({ headersTimeout: 10_000, requestTimeout: 10_000 }, (request, response) => {
    if (pathOf(request) !== '/metrics') {
      notFound(response);
      return;
    }
    serveMetrics(request, response, endpoint).catch((error: unknown) => {
      logger.error('metrics_failed', { error: String(error) });
      sendRejection(response, refusal(HttpRejection.INTERNAL_ERROR));
    });
  });
  server.on('error', (error: Error) => logger.error('metrics_server_error', { error: error.message }));
  return server;
}

/** A logger that adds the worker's number and pid to every entry. */
function withWorker(logger: Logger, id: number): Logger {
  const log: Logger['log'] = (entry) => logger.log({ ...entry, worker: id, pid: process.pid });
  const at =
    (level: Logger['level']) =>
    (event: string, fields: Record<string, unknown> = {}): void =>
      log({ ...fields, level, event });
  return {
    level: logger.level,
    log,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}

function authMode(config: WshubConfig): string {
  if (!config.allowUnauthenticated) return 'token';
  return config.secret !== undefined ? 'optional' : 'none';
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Resolves with the first SIGINT or SIGTERM (or, in a worker, the primary's
 * shutdown message, reported as SIGTERM); any later signal ends the process
 * at once.
 */
function waitForSignal(inWorker = false): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown): void => {
      if (isShutdownMessage(message)) first('SIGTERM');
    };
    const first = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', first);
      process.off('SIGTERM', first);
      process.off('message', onMessage);
      const again = (next: NodeJS.Signals): void => {
        process.stderr.write(`wshub: ${next} during shutdown, exiting now\n`);
        process.exit(next === 'SIGINT' ? 130 : 143);
      };
      process.once('SIGINT', again);
      process.once('SIGTERM', again);
      resolve(signal);
    };
    process.on('SIGINT', first);
    process.on('SIGTERM', first);
    if (inWorker) process.on('message', onMessage);
  });
}

/**
 * Graceful shutdown: stop accepting, close every WebSocket with 1001 (the
 * hub waits for the answers, bounded), end idle HTTP connections, and give
 * up after SHUTDOWN_BOUND_MS. Returns the exit code.
 */
async function shutdown(ws: WshubServer, server: Server, logger: Logger, signal: NodeJS.Signals) {
  logger.info('stop', { signal, active_connections: ws.health().active_connections });
  const watchdog = setTimeout(() => {
    logger.error('shutdown_timeout', { bound_ms: SHUTDOWN_BOUND_MS });
    process.exit(1);
  }, SHUTDOWN_BOUND_MS);
  watchdog.unref();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  await ws.shutdown({ timeout: Math.min(ws.config.closeTimeout, SHUTDOWN_CLOSE_WAIT_MS) });
  server.closeAllConnections();
  await closed;
  clearTimeout(watchdog);
  logger.info('stopped', { signal });
  return 0;
}

function healthz(ws: WshubServer, request: IncomingMessage, response: ServerResponse): void {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    sendRejection(response, refusal(HttpRejection.METHOD_NOT_ALLOWED, 'use GET', { Allow: 'GET, HEAD' }));
    return;
  }
  const health = ws.health();
  const body = JSON.stringify(health);
  response.writeHead(health.status === 'healthy' ? 200 : 503, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
  });
  response.end(request.method === 'HEAD' ? undefined : body);
}

function notFound(response: ServerResponse): void {
  sendRejection(response, refusal(HttpRejection.NOT_FOUND));
}

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
