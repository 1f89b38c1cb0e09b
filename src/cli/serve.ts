/**
 * `wshub serve`: runs a WshubServer over http or https with its
 * configuration taken from flags, an optional JSON config file and
 * secrets from the environment or secret files. Adds GET /healthz,
 * JSON-lines logs on stderr, graceful shutdown on SIGINT/SIGTERM and, with
 * `--dev`, the demo chat page.
 */
import cluster, { type Worker } from 'node:cluster';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { ServerOptions as HttpsOptions } from 'node:https';
import { SecretReuseError, WeakSecretError } from '../auth/errors.ts';
import type { RoomPasswords } from '../auth/room-password.ts';
import { generateSecureSecret, validateRoomPassword } from '../auth/security.ts';
import type { WshubConfig } from '../config.ts';
import { MAX_READ_LIMIT } from '../connection/connection.ts';
import { createDemo, type Demo } from '../demo/demo.ts';
import { ConfigError } from '../errors.ts';
import { HttpRejection, refusal, sendRejection } from '../http/rejections.ts';
import { createWshub, type WshubServer } from '../server/server.ts';
import { parseFlags, UsageError, type Flags } from './args.ts';
import {
  buildRoomPasswords,
  loadApiKey,
  loadConfigFile,
  loadRoomPasswordFile,
  loadSecret,
  readBinaryFile,
  readTextFile,
} from './config-file.ts';
import { AddressSet } from '../http/trusted-proxy.ts';
import { readPublicKey } from '../auth/token-keys.ts';
import { createLogger, isLogLevel, LOG_LEVELS, type Logger } from './logger.ts';
import { buildChannelEngine, loadStateClient, planState, type StatePlan } from './state.ts';
import {
  buildCluster,
  connectCluster,
  loadBrokerClient,
  planScaleOut,
  type ScaleOutPlan,
} from './scaleout.ts';
import { isShutdownMessage, runPrimary, type ControlMessage } from './workers.ts';

/** Help text of `wshub serve`. */
export const SERVE_USAGE = `usage: wshub serve [flags]

Runs a WebSocket hub. Clients connect to ws://HOST:PORT/ws?room=NAME.
Secrets come only from the environment or from files:
  WS_SECRET              HS256 token secret (at least 32 bytes)
  WS_BROADCAST_SECRET    admin broadcast secret (at least 32 bytes, with --broadcast)
  WS_API_KEY             server API key (at least 32 bytes, not the token secret);
                         without one the server API is off
Channel clients (the Centrifuge protocol, e.g. the centrifuge SDK) connect to
ws://HOST:PORT/connection/websocket.

flags:
  --host HOST                    address to listen on (default 127.0.0.1)
  --port N                       port (default 8080; 0 picks a free port)
  --path PATH                    WebSocket endpoint path (default /ws)
  --config FILE                  JSON object of server options (camelCase names, plus
                                 "roomPasswords": {"ROOM": "PASSWORD"}); flags override it
  --secret-file FILE             read the token secret from FILE instead of WS_SECRET
  --broadcast-secret-file FILE   read the broadcast secret from FILE instead of WS_BROADCAST_SECRET
  --room-passwords FILE          JSON object {"ROOM": "PASSWORD"} of password-protected rooms
  --allow-unauthenticated        accept clients without a token (a token, if sent, is still checked)
  --token-public-key-file FILE   verify RS256/ES256/EdDSA tokens with this public key
                                 (PEM SPKI or JWK); the algorithm follows the key
  --jwks-url URL                 verify RS/PS/ES/EdDSA tokens with the issuer's JSON Web
                                 Key Set (cached; refetched once on an unknown kid)
  --token-issuer ISS             accepted "iss" of tokens (repeatable)
  --token-audience AUD           accepted "aud" of tokens (repeatable)
  --token-leeway SECONDS         clock skew tolerated for "exp" and "nbf" (default 0)
  --allow-query-token            accept the token in ?token= as well as in headers
  --allow-origin ORIGIN          allow browser pages from ORIGIN (repeatable; replaces
                                 the config file's allowedOrigins)
  --allow-all-origins            allow every origin
  --broadcast                    enable the admin broadcast endpoint (needs the broadcast secret)
  --broadcast-path PATH          admin broadcast path (default /_admin/broadcast)
  --max-room-connections N       connections per room (0 = unlimited)
  --max-room-registrations N     room memberships in the whole hub (0 = unlimited)
  --max-connection-rate N        new joins per second, hub-wide (0 = unlimited)
  --max-pending-handshakes N     handshakes in progress at once; past it the oldest
                                 is dropped for the newcomer (default 1024, 0 = unlimited)
  --max-pending-handshakes-per-ip N
                                 handshakes in progress per client address (IPv6: per /64);
                                 past it 429 (default 64, 0 = unlimited)
  --max-conns-per-ip N           connections per client address (IPv6: per /64); past it
                                 429 (default 1000, 0 = unlimited)
  --max-handshakes-per-ip N      new connections per client address per second; past it
                                 429 (default 100, 0 = unlimited)
  --max-conns-per-user N         connections per user (token "sub"), /ws and channels
                                 together; past it 429 or channel disconnect 3504
                                 (default 0 = unlimited)
  --max-messages-per-sec N       messages one connection may send per second; past it
                                 close 1008 (channels 3013) (default 1000, 0 = unlimited)
  --max-bytes-per-sec BYTES      bytes one connection may send per second; past it close
                                 1008 (channels 3013) (default twice --read-limit, 0 = unlimited)
  --password-lockout N           wrong room passwords from one address for one room
                                 before a lockout (429) (default 10, 0 = no lockout)
  --password-lockout-ms MS       length of a room-password lockout (default 60000)
  --limit-exempt CIDR            client addresses the per-client limits skip (repeatable;
                                 replaces the default 127.0.0.0/8 and ::1; "none" for none)
  --trusted-proxy CIDR           read the client address from the forwarding header of
                                 requests from these proxies (repeatable; IPv4 or IPv6)
  --trusted-proxy-header NAME    the header they set: x-forwarded-for (default) or forwarded
  --send-behavior MODE           full send queue: block, drop or close (default block)
  --send-queue N                 messages queued per connection (default 256)
  --send-timeout MS              how long a blocked send waits (default 200)
  --read-limit BYTES             largest message accepted (default 16777216)
  --max-partial-message-bytes BYTES
                                 bytes all incomplete incoming messages may hold together;
                                 past it a connection is closed with 1013 (default 268435456)
  --max-outbound-bytes BYTES     bytes waiting to go out to one connection before it is
                                 destroyed (default twice the send queue bytes, 33554432)
  --message-validation MODE      text message checks: strict or off (default strict)
  --channel-path PATH            channel protocol endpoint (default /connection/websocket)
  --no-channels                  do not serve the channel protocol
  --allow-anonymous-connect      accept channel connects without a token (as user "")
  --api-key-file FILE            read the server API key from FILE instead of WS_API_KEY
  --tls-cert FILE --tls-key FILE serve https and wss with this PEM certificate and key
  --log-level LEVEL              debug, info, warn or error (default info)
  --broker URL                   scale out through a broker: redis://HOST:PORT, rediss://…
                                 or nats://HOST:PORT (comma-separate several NATS servers,
                                 or several Redis Cluster seed nodes with --broker-cluster);
                                 unreachable at start → exit code 1, no retry
  --broker-cluster               the redis:// URLs are Redis Cluster nodes: the cluster
                                 client, sharded pub/sub routed to each channel's master
  --broker-sharded               one Redis server, sharded pub/sub (SSUBSCRIBE/SPUBLISH,
                                 Redis 7+); implied by --broker-cluster
  --node-id ID                   this node's id in the cluster (default: random)
  --state URL                    where channel history and presence live: memory (per
                                 node) or redis://…, rediss://… (shared by all nodes);
                                 default: the --broker's Redis if it is one, else memory
  --state-cluster                the --state Redis is a Redis Cluster
  --state-presence-ttl MS        presence entries of a node that stopped refreshing
                                 them (e.g. killed) vanish within this (default 60000)
  --broker-max-in-flight-bytes BYTES
                                 message bytes waiting for the broker at once; beyond
                                 them publishes are dropped and counted (default 67108864)
  --broker-max-remote-rooms N    room counts kept from other nodes' announcements, all
                                 nodes together; beyond them announcements are refused
                                 and counted (default 1048576)
  --workers N                    run N worker processes sharing the port; they stay
                                 consistent through --broker, or through the primary
                                 process when no broker is given; crashed workers restart
  --dev                          development mode: the demo chat page at / (channels
                                 chat:* with history, recovery and presence), a random
                                 per-run secret when WS_SECRET is unset; not for production
  -h, --help                     show this help

--config may hold "channels" (channel options and "namespaces": [{"name": …, …}])
and "channelLimits" (bounds of the channel protocol); see docs/CONFIG.md.
GET /healthz answers with the health report as JSON (200 healthy, 503 otherwise;
with --workers, from whichever worker takes the request).
SIGINT or SIGTERM shuts down gracefully (close code 1001); a second signal exits at once.
`;

const SERVE_FLAGS = {
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '8080' },
  path: { type: 'string' },
  config: { type: 'string' },
  'secret-file': { type: 'string' },
  'broadcast-secret-file': { type: 'string' },
  'room-passwords': { type: 'string' },
  'allow-unauthenticated': { type: 'boolean' },
  'allow-query-token': { type: 'boolean' },
  'allow-origin': { type: 'string', multiple: true },
  'allow-all-origins': { type: 'boolean' },
  broadcast: { type: 'boolean' },
  'broadcast-path': { type: 'string' },
  'max-room-connections': { type: 'string' },
  'max-room-registrations': { type: 'string' },
  'max-connection-rate': { type: 'string' },
  'max-pending-handshakes': { type: 'string' },
  'max-pending-handshakes-per-ip': { type: 'string' },
  'max-conns-per-ip': { type: 'string' },
  'max-handshakes-per-ip': { type: 'string' },
  'max-conns-per-user': { type: 'string' },
  'max-messages-per-sec': { type: 'string' },
  'max-bytes-per-sec': { type: 'string' },
  'password-lockout': { type: 'string' },
  'password-lockout-ms': { type: 'string' },
  'limit-exempt': { type: 'string', multiple: true },
  'trusted-proxy': { type: 'string', multiple: true },
  'trusted-proxy-header': { type: 'string' },
  'token-public-key-file': { type: 'string' },
  'jwks-url': { type: 'string' },
  'token-issuer': { type: 'string', multiple: true },
  'token-audience': { type: 'string', multiple: true },
  'token-leeway': { type: 'string' },
  'send-behavior': { type: 'string' },
  'send-queue': { type: 'string' },
  'send-timeout': { type: 'string' },
  'read-limit': { type: 'string' },
  'max-partial-message-bytes': { type: 'string' },
  'max-outbound-bytes': { type: 'string' },
  'message-validation': { type: 'string' },
  'channel-path': { type: 'string' },
  'no-channels': { type: 'boolean' },
  'allow-anonymous-connect': { type: 'boolean' },
  'api-key-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'log-level': { type: 'string', default: 'info' },
  broker: { type: 'string' },
  'broker-sharded': { type: 'boolean' },
  'broker-cluster': { type: 'boolean' },
  'node-id': { type: 'string' },
  'broker-max-in-flight-bytes': { type: 'string' },
  'broker-max-remote-rooms': { type: 'string' },
  state: { type: 'string' },
  'state-cluster': { type: 'boolean' },
  'state-presence-ttl': { type: 'string' },
  workers: { type: 'string' },
  dev: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type ServeFlags = Flags<typeof SERVE_FLAGS>;

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
  state: StatePlan;
}

/** Parses an optional whole-number flag within [min, max]; undefined when absent. */
function optionalInt(name: string, value: string | undefined, min = 0, max = Number.MAX_SAFE_INTEGER) {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${value}`);
  return n;
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]) {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  }
  return value as T;
}

/**
 * Turns the flags (and `env`) into a ServePlan: config file first, flags
 * over it, then secrets and room passwords. Throws UsageError for every
 * bad input, before anything listens.
 */
export async function planServe(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): Promise<ServePlan> {
  const logLevel = flags['log-level'];
  if (!isLogLevel(logLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const port = optionalInt('port', flags.port, 0, 65535)!;
  const host = flags.host;
  if (host === '') throw new UsageError('--host must not be empty');

  // Flags are checked before any file is read, so a typo is reported first.
  const fromFlags: Partial<WshubConfig> = {
    wsRoutePath: flags.path,
    broadcastPath: flags['broadcast-path'],
    maxRoomConnections: optionalInt('max-room-connections', flags['max-room-connections']),
    maxRoomRegistrations: optionalInt('max-room-registrations', flags['max-room-registrations']),
    maxConnectionRate: optionalInt('max-connection-rate', flags['max-connection-rate']),
    maxPendingHandshakes: optionalInt('max-pending-handshakes', flags['max-pending-handshakes']),
    maxPendingHandshakesPerAddress: optionalInt(
      'max-pending-handshakes-per-ip',
      flags['max-pending-handshakes-per-ip'],
    ),
    sendBehavior: oneOf('send-behavior', flags['send-behavior'], ['block', 'drop', 'close'] as const),
    sendQueueSize: optionalInt('send-queue', flags['send-queue'], 1),
    sendTimeout: optionalInt('send-timeout', flags['send-timeout']),
    readLimit: optionalInt('read-limit', flags['read-limit'], 1, MAX_READ_LIMIT),
    maxPartialMessageBytes: optionalInt('max-partial-message-bytes', flags['max-partial-message-bytes']),
    maxOutboundBytes: optionalInt('max-outbound-bytes', flags['max-outbound-bytes']),
    channelPath: flags['channel-path'],
    maxConnsPerIp: optionalInt('max-conns-per-ip', flags['max-conns-per-ip']),
    maxHandshakesPerIp: optionalInt('max-handshakes-per-ip', flags['max-handshakes-per-ip']),
    maxConnsPerUser: optionalInt('max-conns-per-user', flags['max-conns-per-user']),
    maxMessagesPerSec: optionalInt('max-messages-per-sec', flags['max-messages-per-sec']),
    maxBytesPerSec: optionalInt('max-bytes-per-sec', flags['max-bytes-per-sec']),
    passwordLockout: optionalInt('password-lockout', flags['password-lockout']),
    passwordLockoutMs: optionalInt('password-lockout-ms', flags['password-lockout-ms']),
    trustedProxyHeader: oneOf('trusted-proxy-header', flags['trusted-proxy-header'], [
      'x-forwarded-for',
      'forwarded',
    ] as const),
    jwksUrl: flags['jwks-url'],
    tokenIssuer: flags['token-issuer'],
    tokenAudience: flags['token-audience'],
    tokenLeeway: optionalInt('token-leeway', flags['token-leeway'], 0, 3600),
  };
  const exempt = flags['limit-exempt'];
  if (exempt !== undefined) fromFlags.limitExempt = exempt.includes('none') ? [] : [...exempt];
  if (flags['trusted-proxy'] !== undefined) fromFlags.trustedProxies = [...flags['trusted-proxy']];
  for (const [flag, list] of [
    ['limit-exempt', fromFlags.limitExempt],
    ['trusted-proxy', fromFlags.trustedProxies],
  ] as const) {
    for (const range of list ?? []) checkCidr(flag, range);
  }
  if (fromFlags.jwksUrl !== undefined) checkJwksUrl(fromFlags.jwksUrl);
  const validation = oneOf('message-validation', flags['message-validation'], ['strict', 'off'] as const);
  if (validation !== undefined) fromFlags.messageValidation = validation === 'off' ? false : {};
  if (flags['allow-unauthenticated']) fromFlags.allowUnauthenticated = true;
  if (flags['allow-query-token']) fromFlags.allowQueryToken = true;
  if (flags['allow-all-origins']) fromFlags.allowAllOrigins = true;
  if (flags.broadcast) fromFlags.broadcastEnabled = true;
  if (flags['no-channels']) {
    for (const flag of ['channel-path', 'allow-anonymous-connect', 'dev'] as const) {
      if (flags[flag] !== undefined) throw new UsageError(`--${flag} needs channels: drop --no-channels`);
    }
    fromFlags.channelsEnabled = false;
  }
  for (const path of [flags.path, flags['broadcast-path'], flags['channel-path']]) {
    if (path !== undefined && !path.startsWith('/')) {
      throw new UsageError(`paths must start with "/", got "${path}"`);
    }
  }
  if ((flags['tls-cert'] === undefined) !== (flags['tls-key'] === undefined)) {
    throw new UsageError('--tls-cert and --tls-key must be given together');
  }
  const scaleOut = planScaleOut(flags, flags.dev === true);
  await loadBrokerClient(scaleOut);
  const state = planState(flags);
  if (state.redis !== undefined && flags['no-channels'] === true)
    throw new UsageError('--state redis://… needs channels: drop --no-channels');
  await loadStateClient(state);

  const file = flags.config !== undefined ? await loadConfigFile(flags.config) : undefined;
  const config: Partial<WshubConfig> = { ...file?.config };
  for (const [key, value] of Object.entries(fromFlags)) {
    if (value !== undefined) (config as Record<string, unknown>)[key] = value;
  }
  const origins = flags['allow-origin'];
  if (origins !== undefined) {
    for (const origin of origins) checkOrigin(origin);
    config.allowedOrigins = [...origins];
  }

  if (flags['allow-anonymous-connect']) {
    config.channelLimits = { ...config.channelLimits, allowAnonymousConnect: true };
  }
  // `wshub serve` serves channels unless told not to (the library only when configured).
  config.channelsEnabled ??= true;

  const dev = flags.dev === true;
  if (dev && config.channelsEnabled === false)
    throw new UsageError('--dev needs channels: the config file sets "channelsEnabled": false');
  let secret = await loadSecret({ env: 'WS_SECRET', flag: '--secret-file', file: flags['secret-file'] }, env);
  let randomSecret = false;
  if (secret === undefined && dev) {
    secret = generateSecureSecret();
    randomSecret = true;
  }
  if (flags['token-public-key-file'] !== undefined) {
    config.tokenPublicKey = await readTextFile(flags['token-public-key-file'], '--token-public-key-file');
    checkPublicKey(config.tokenPublicKey);
  }
  const hasPublicKeys = (config.tokenPublicKey ?? '') !== '' || (config.jwksUrl ?? '') !== '';
  if (secret === undefined && !hasPublicKeys && config.allowUnauthenticated !== true) {
    throw new UsageError(
      'no token key: set WS_SECRET or --secret-file (at least 32 bytes), --token-public-key-file or --jwks-url, or pass --allow-unauthenticated',
    );
  }
  config.secret = secret;
  const apiKey = await loadApiKey(flags['api-key-file'], secret, env);
  if (apiKey !== undefined) config.apiKey = apiKey;
  if (config.broadcastEnabled === true) {
    const broadcastSecret = await loadSecret(
      { env: 'WS_BROADCAST_SECRET', flag: '--broadcast-secret-file', file: flags['broadcast-secret-file'] },
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
  if (flags['room-passwords'] !== undefined) {
    Object.assign(passwords, await loadRoomPasswordFile(flags['room-passwords']));
  }

  let tls: HttpsOptions | undefined;
  if (flags['tls-cert'] !== undefined && flags['tls-key'] !== undefined) {
    tls = {
      cert: await readBinaryFile(flags['tls-cert'], '--tls-cert file'),
      key: await readBinaryFile(flags['tls-key'], '--tls-key file'),
    };
  }
  const logger = createLogger(logLevel);
  for (const [room, password] of Object.entries(passwords)) {
    const check = validateRoomPassword(password);
    if (!check.ok) logger.warn('weak_room_password', { room, reason: check.reason });
  }
  const roomPasswords = await buildRoomPasswords(passwords);
  if (!dev && roomPasswords.rooms().length > 0) config.roomAuthorizer = roomPasswords;
  return { config, host, port, tls, logger, roomPasswords, dev, randomSecret, scaleOut, state };
}

/** A CIDR flag value, checked before anything listens. */
function checkCidr(flag: string, range: string): void {
  try {
    new AddressSet([range], flag);
  } catch {
    throw new UsageError(`--${flag} must be an IP address or CIDR like 10.0.0.0/8, got "${range}"`);
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

function checkOrigin(origin: string): void {
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    throw new UsageError(`--allow-origin must be an origin like https://example.com, got "${origin}"`);
  }
  if (parsed.origin !== origin) {
    throw new UsageError(`--allow-origin must be an origin like https://example.com, got "${origin}"`);
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
  const flags = parseFlags(argv, SERVE_FLAGS);
  if (flags.help) {
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
  if (worker !== undefined) {
    // The primary prints the listening line once every worker is up.
    process.send?.({ wshub: 'listening', port } satisfies ControlMessage);
  } else {
    process.stdout.write(`listening on ${url}\n`);
  }
  if (demo !== undefined) process.stdout.write(`demo: open ${url}/\n`);

  const signal = await waitForSignal(worker !== undefined);
  return shutdown(ws, server, logger, signal);
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
