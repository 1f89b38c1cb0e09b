/**
 * Server configuration: every option with its default in one place, and
 * the one validation. The hub's and the connection's options, and their
 * defaults, are derived from here: adding a hub option means its field and
 * use in hub.ts, and its default, key and check here. Defaults never read
 * environment variables.
 */
import type { IncomingMessage } from 'node:http';
import type { ProtocolSelector } from './upgrade/respond.ts';
import type { RoomAuthorizer } from './auth/room-password.ts';
import type { UpgradeRequest } from './upgrade/request-head.ts';
import type { Cluster } from './broker/cluster.ts';
import type { TokenAuthenticator } from './auth/token.ts';
import { constantTimeEqual, validateSecurityConfig } from './auth/security.ts';
import { MIN_SECRET_BYTES, secretBytes } from './auth/secret.ts';
import type { Connection, ConnectionOptions } from './connection/connection.ts';
import { ConfigError } from './errors.ts';
import type { HubOptions } from './hub/hub.ts';
import type { SendBehavior } from './connection/send-queue.ts';
import type { RoomValidator, TextValidationOptions } from './hub/validation.ts';
import type { ChannelEngine } from './channels/engine.ts';
import type { ChannelHooks, ChannelLimits } from './channels/node.ts';
import type { ChannelsConfig } from './channels/options.ts';
import type { HistoryLimits } from './channels/history.ts';
import type { PresenceLimits } from './channels/presence.ts';
import type { DeflateSettings } from './protocol/deflate.ts';
import { AddressSet, type ForwardedHeader } from './http/trusted-proxy.ts';

/** Client addresses the per-client limits skip unless configured otherwise: loopback. */
export const DEFAULT_LIMIT_EXEMPT: readonly string[] = ['127.0.0.0/8', '::1/128'];

/**
 * Default frame cap per message. Frames are copied into one buffer, so their
 * number costs no memory; the cap bounds per-frame work on one message.
 * Browsers do not fragment; libraries that do use frames of a few KiB (4 KiB
 * frames still carry 256 MiB), and 4 MiB in 64-byte frames, the finest
 * fragmentation of the Autobahn suite, is exactly 65,536 frames.
 */
export const DEFAULT_MAX_FRAGMENTS = 65_536;

/**
 * Default ping rate cap: browsers never send pings and client heartbeats
 * come every few seconds, so 100 a second is far above any real client.
 */
export const DEFAULT_MAX_PING_RATE = 100;

/** Bound on the time from connect to a complete upgrade request, in ms. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

/** Bound on the size of the request line plus headers, in bytes. */
export const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;

/** Hard upper bound for `readLimit`. */
export const MAX_READ_LIMIT = 64 * 1024 * 1024;

/** Handles a message from a client instead of the built-in room fan-out. */
export type MessageHandler = (conn: Connection, data: Buffer, binary: boolean) => void | Promise<void>;

export interface WshubConfig {
  // -- broadcast jobs (see docs/CONFIG.md for their meaning in Node) --
  workerCount: number;
  jobQueueSize: number;
  // -- per-connection sending --
  sendQueueSize: number;
  sendQueueBytes: number;
  sendTimeout: number;
  writeTimeout: number;
  sendBehavior: SendBehavior;
  /** Queue plus socket bytes past which a connection is destroyed (0 = no cap; default 2 × sendQueueBytes). */
  maxOutboundBytes: number;
  // -- routes --
  wsRoutePath: string;
  broadcastPath: string;
  broadcastEnabled: boolean;
  broadcastMaxBytes: number;
  // -- origins and auth --
  allowedOrigins: string[];
  allowAllOrigins: boolean;
  allowUnauthenticated: boolean;
  allowQueryToken: boolean;
  /** HS256 secret (≥ 32 bytes) unless tokenAuthenticator is given or allowUnauthenticated. */
  secret?: Uint8Array | string | undefined;
  /** Admin broadcast secret (≥ 32 bytes, different from secret) unless broadcastAuthorizer is given. */
  broadcastSecret?: Uint8Array | string | undefined;
  tokenAuthenticator?: TokenAuthenticator | undefined;
  broadcastAuthorizer?: ((request: IncomingMessage) => boolean | Promise<boolean>) | undefined;
  roomAuthorizer?: RoomAuthorizer | undefined;
  /** Close a connection (code 4001) when its token's `exp` passes. */
  closeOnTokenExpiry: boolean;
  /** PEM (SPKI) or JWK (JSON text) public key verifying RS256/ES256/EdDSA tokens ('' = none). */
  tokenPublicKey: string;
  /** JWKS URL of the token issuer's keys ('' = none); fetched, cached and refetched on an unknown `kid`. */
  jwksUrl: string;
  /** Accepted `iss` values of tokens ([] = not checked). */
  tokenIssuer: string[];
  /** Accepted `aud` values of tokens ([] = not checked). */
  tokenAudience: string[];
  /** Clock skew tolerated for `exp` and `nbf`, in seconds. */
  tokenLeeway: number;
  // -- per-client limits (docs/OPERATIONS.md) --
  /** Concurrent connections per client address, IPv6 per /64 (0 = unlimited); past it 429. */
  maxConnsPerIp: number;
  /** New upgrades per client address per second (0 = unlimited); past it 429. */
  maxHandshakesPerIp: number;
  /** Concurrent connections per user (token `sub`) over /ws and channels (0 = unlimited). */
  maxConnsPerUser: number;
  /** Messages a connection may send per second (0 = unlimited); past it close 1008 (channels 3013). */
  maxMessagesPerSec: number;
  /**
   * Bytes a connection may send per second (0 = unlimited; default 2 × readLimit, so a message of
   * `readLimit` bytes always fits); past it close 1008 (channels 3013).
   */
  maxBytesPerSec: number;
  /** Wrong room passwords from one address for one room before a lockout (0 = no lockout). */
  passwordLockout: number;
  /** Length of a room-password lockout, in ms. */
  passwordLockoutMs: number;
  /** Client addresses (CIDRs) the per-client limits do not apply to (default: loopback). */
  limitExempt: string[];
  /** Proxies (CIDRs) whose forwarding header names the client address ([] = trust none). */
  trustedProxies: string[];
  /** The forwarding header the trusted proxies set. */
  trustedProxyHeader: ForwardedHeader;
  // -- limits --
  maxRoomRegistrations: number;
  maxRoomConnections: number;
  maxConnectionRate: number;
  roomValidator?: RoomValidator | undefined;
  // -- protocol --
  readLimit: number;
  pingPeriod: number;
  pongWait: number;
  closeTimeout: number;
  handshakeTimeout: number;
  maxHeaderSize: number;
  /** Handshakes in progress at once; past it the oldest is dropped for the newcomer (0 = unlimited). */
  maxPendingHandshakes: number;
  /** Handshakes in progress from one address (IPv6: one /64); past it 429 (0 = unlimited). */
  maxPendingHandshakesPerAddress: number;
  fragmentSize: number;
  /** Frames one incoming message may be split into (0 = no limit). */
  maxFragments: number;
  /** Bytes all incomplete incoming messages may hold together (0 = no budget). */
  maxPartialMessageBytes: number;
  /** Pings a client may send per second (0 = no limit). */
  maxPingRate: number;
  selectProtocol?: ProtocolSelector | undefined;
  // -- compression (permessage-deflate, RFC 7692; docs/CONFIG.md for the costs) --
  /**
   * Where permessage-deflate is negotiated when a client offers it: true =
   * both endpoints, false = neither, "channels" = the channel endpoint only.
   */
  perMessageDeflate: boolean | 'channels';
  /** Messages shorter than this many bytes are sent uncompressed. */
  deflateThreshold: number;
  /** zlib compression level, 0–9. */
  deflateLevel: number;
  /** zlib memory level of the (shared) compressors, 1–9. */
  deflateMemLevel: number;
  /** Largest window the server compresses with, 8–15 (a client may ask for less). */
  deflateWindowBits: number;
  /** Window the server asks clients to compress within, when their offer lets it ask (8–15). */
  deflateClientWindowBits: number;
  // -- scale-out --
  /** Share rooms and broadcasts with other nodes (see docs/SCALE-OUT.md); call `start()` before serving. */
  cluster?: Cluster | undefined;
  // -- messages --
  /** Text message validation (the seed's defaults), or false to switch it off. */
  messageValidation: Partial<TextValidationOptions> | false;
  onMessage?: MessageHandler | undefined;
  onConnect?: ((conn: Connection, request: UpgradeRequest) => void) | undefined;
  onClose?: ((conn: Connection, code: number, reason: string) => void) | undefined;
  // -- channels (the Centrifuge client protocol; docs/CHANNELS.md) --
  /**
   * Serve the channel protocol at `channelPath`. Unset: on when any channel
   * option is given (`channels`, `channelLimits`, `channelHooks`,
   * `channelPath`, `subscriptionTokenAuthenticator`, `apiKey`), off
   * otherwise, so servers that do not use channels (several hubs on one
   * http server, say) serve exactly the seed's paths.
   */
  channelsEnabled: boolean;
  channelPath: string;
  /** Channel options (top level) and namespaces. */
  channels: ChannelsConfig;
  /** Bounds of the channel protocol, per connection and per node (merged over defaultChannelBounds()). */
  channelLimits: Partial<ChannelBounds>;
  /** Verifies subscription tokens (default: the connection token authenticator). */
  subscriptionTokenAuthenticator?: TokenAuthenticator | undefined;
  /** RPC, send and authorization hooks of the channel protocol. */
  channelHooks?: ChannelHooks | undefined;
  /**
   * Where channel history and presence live: unset, this process's memory
   * (per node); a `RedisEngine` (from `wshub/redis`) shares them between
   * nodes (docs/SCALE-OUT.md, "Channel state in Redis"). Connected by `start()`.
   */
  channelEngine?: ChannelEngine | undefined;
  /** Server API key (≥ 32 bytes, different from secret); without one the server API is off. */
  apiKey?: Uint8Array | string | undefined;
  /** Prefix of the server API (`POST <apiPath>/publish`, …). */
  apiPath: string;
  /** Largest server API request body in bytes. */
  apiMaxBodyBytes: number;
  // -- metrics (docs/OPERATIONS.md) --
  /** Serve the Prometheus metrics at `metricsPath` on this server's port (needs `metricsKey`). */
  metricsEnabled: boolean;
  metricsPath: string;
  /** Bearer key (≥ 32 bytes, not the token secret) a scraper must send to `metricsPath`. */
  metricsKey?: Uint8Array | string | undefined;
}

/** Options that switch the channel protocol on when `channelsEnabled` is not given. */
const CHANNEL_OPTIONS = [
  'channels',
  'channelLimits',
  'channelHooks',
  'channelPath',
  'subscriptionTokenAuthenticator',
  'apiKey',
  'channelEngine',
] as const satisfies ReadonlyArray<keyof WshubConfig>;

/** Every bound of the channel layer: the protocol's, history's and presence's. */
export interface ChannelBounds extends ChannelLimits {
  historyMaxBytes: HistoryLimits['maxBytes'];
  historyMaxStreams: HistoryLimits['maxStreams'];
  historyMetaTtl: HistoryLimits['metaTtl'];
  presenceMaxEntries: PresenceLimits['maxEntries'];
}

/** Defaults of the channel bounds (see docs/CONFIG.md for the reasons). */
export function defaultChannelBounds(): ChannelBounds {
  return {
    connectTimeout: 10_000,
    pingInterval: 25_000,
    pongTimeout: 8_000,
    expiredCloseDelay: 25_000,
    maxSubscriptions: 128,
    maxPublicationBytes: 64 * 1024,
    maxCommandsPerSecond: 100,
    maxCommandsPerFrame: 256,
    maxPendingCommands: 512,
    maxHistoryLimit: 1000,
    maxRecoveredPublications: 1000,
    hookTimeout: 10_000,
    allowAnonymousConnect: false,
    historyMaxBytes: 64 * 1024 * 1024,
    historyMaxStreams: 100_000,
    historyMetaTtl: 24 * 3600 * 1000,
    presenceMaxEntries: 1_000_000,
  };
}

/**
 * The configuration after `resolveConfig`: every option set, validated,
 * secrets copied into Buffers.
 */
export interface ResolvedConfig extends Omit<
  WshubConfig,
  'secret' | 'broadcastSecret' | 'apiKey' | 'channelLimits' | 'metricsKey'
> {
  channelLimits: ChannelBounds;
  secret?: Buffer | undefined;
  broadcastSecret?: Buffer | undefined;
  apiKey?: Buffer | undefined;
  metricsKey?: Buffer | undefined;
}

/** The seed's defaults. Reads no environment variables. */
export function defaultConfig(): WshubConfig {
  return {
    workerCount: 16,
    jobQueueSize: 4096,
    sendQueueSize: 256,
    sendQueueBytes: 16 * 1024 * 1024,
    sendTimeout: 200,
    writeTimeout: 10_000,
    sendBehavior: 'block',
    maxOutboundBytes: 32 * 1024 * 1024,
    wsRoutePath: '/ws',
    broadcastPath: '/_admin/broadcast',
    broadcastEnabled: false,
    broadcastMaxBytes: 1024 * 1024,
    allowedOrigins: [],
    allowAllOrigins: false,
    allowUnauthenticated: false,
    allowQueryToken: false,
    closeOnTokenExpiry: true,
    tokenPublicKey: '',
    jwksUrl: '',
    tokenIssuer: [],
    tokenAudience: [],
    tokenLeeway: 0,
    maxConnsPerIp: 1000,
    maxHandshakesPerIp: 100,
    maxConnsPerUser: 0,
    maxMessagesPerSec: 1000,
    maxBytesPerSec: 32 * 1024 * 1024,
    passwordLockout: 10,
    passwordLockoutMs: 60_000,
    limitExempt: [...DEFAULT_LIMIT_EXEMPT],
    trustedProxies: [],
    trustedProxyHeader: 'x-forwarded-for',
    maxRoomRegistrations: 0,
    maxRoomConnections: 0,
    maxConnectionRate: 0,
    readLimit: 16 * 1024 * 1024,
    pingPeriod: 20_000,
    pongWait: 30_000,
    closeTimeout: 5_000,
    handshakeTimeout: DEFAULT_HANDSHAKE_TIMEOUT,
    maxHeaderSize: DEFAULT_MAX_HEADER_SIZE,
    maxPendingHandshakes: 1024,
    maxPendingHandshakesPerAddress: 64,
    fragmentSize: 0,
    maxFragments: DEFAULT_MAX_FRAGMENTS,
    maxPartialMessageBytes: 256 * 1024 * 1024,
    maxPingRate: DEFAULT_MAX_PING_RATE,
    perMessageDeflate: 'channels',
    deflateThreshold: 128,
    deflateLevel: 3,
    deflateMemLevel: 8,
    deflateWindowBits: 15,
    deflateClientWindowBits: 15,
    messageValidation: {},
    channelsEnabled: false,
    channelPath: '/connection/websocket',
    channels: {},
    channelLimits: defaultChannelBounds(),
    apiPath: '/api',
    apiMaxBodyBytes: 1024 * 1024,
    metricsEnabled: false,
    metricsPath: '/metrics',
  };
}

const NUMERIC_OPTIONS = [
  'workerCount',
  'jobQueueSize',
  'sendQueueSize',
  'sendQueueBytes',
  'sendTimeout',
  'writeTimeout',
  'broadcastMaxBytes',
  'maxRoomRegistrations',
  'maxRoomConnections',
  'maxConnectionRate',
  'readLimit',
  'pingPeriod',
  'pongWait',
  'closeTimeout',
  'handshakeTimeout',
  'maxHeaderSize',
  'maxPendingHandshakes',
  'maxPendingHandshakesPerAddress',
  'fragmentSize',
  'maxOutboundBytes',
  'maxFragments',
  'maxPartialMessageBytes',
  'maxPingRate',
  'apiMaxBodyBytes',
  'deflateThreshold',
  'deflateLevel',
  'deflateMemLevel',
  'deflateWindowBits',
  'deflateClientWindowBits',
  'tokenLeeway',
  'maxConnsPerIp',
  'maxHandshakesPerIp',
  'maxConnsPerUser',
  'maxMessagesPerSec',
  'maxBytesPerSec',
  'passwordLockout',
  'passwordLockoutMs',
] as const satisfies ReadonlyArray<keyof WshubConfig>;

const HUB_NUMERIC_OPTIONS = [
  'workerCount',
  'jobQueueSize',
  'maxRoomRegistrations',
  'maxRoomConnections',
  'maxConnectionRate',
  'fragmentSize',
  'sendTimeout',
  'closeTimeout',
] as const satisfies ReadonlyArray<(typeof NUMERIC_OPTIONS)[number] & keyof HubOptions>;

/** Every listed option is a finite non-negative number. */
function checkNumbers<T extends object>(options: T, keys: ReadonlyArray<keyof T & string>): void {
  for (const key of keys) {
    const value = options[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new ConfigError(key, `must be a non-negative number, got ${String(value)}`);
    }
  }
}

function checkWorkerCount(workerCount: number): void {
  if (workerCount < 1) throw new ConfigError('workerCount', 'must be at least 1');
}

/** The options a Hub takes from the configuration (HubOptions has them all). */
const HUB_OPTION_KEYS = [...HUB_NUMERIC_OPTIONS, 'roomValidator', 'cluster'] as const satisfies ReadonlyArray<
  keyof HubOptions & keyof WshubConfig
>;
type HubOptionKey = (typeof HUB_OPTION_KEYS)[number];

/** The options a Connection takes from the configuration (all but its resource guard). */
const CONNECTION_OPTION_KEYS = [
  'readLimit',
  'sendQueueSize',
  'sendQueueBytes',
  'sendBehavior',
  'sendTimeout',
  'writeTimeout',
  'pingPeriod',
  'pongWait',
  'closeTimeout',
  'fragmentSize',
  'maxFragments',
  'maxPingRate',
  'maxOutboundBytes',
  'maxMessagesPerSec',
  'maxBytesPerSec',
] as const satisfies ReadonlyArray<keyof ConnectionOptions & keyof WshubConfig>;
type ConnectionOptionKey = (typeof CONNECTION_OPTION_KEYS)[number];

/** Copies the set values of `keys` from `source`. */
function pick<T extends object, K extends keyof T>(source: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out;
}

/** The hub's options from a resolved configuration. */
export function hubOptionsOf(config: Pick<ResolvedConfig, HubOptionKey>): HubOptions {
  return pick(config, HUB_OPTION_KEYS);
}

/** A connection's options from a resolved configuration (the server adds its resource guard). */
export function connectionOptionsOf(config: Pick<ResolvedConfig, ConnectionOptionKey>): ConnectionOptions {
  return pick(config, CONNECTION_OPTION_KEYS);
}

/** Defaults of a Hub constructed directly: the configuration's defaults. */
export function defaultHubOptions(): HubOptions {
  return hubOptionsOf(defaultConfig());
}

/**
 * Defaults of a Connection constructed directly: the configuration's
 * defaults, with the outbound cap left unset so it follows `sendQueueBytes`,
 * and no inbound rate limits (those protect a server from its clients; a
 * client or an echo test peer must take what it is sent).
 */
export function defaultConnectionOptions(): ConnectionOptions {
  const options = connectionOptionsOf(defaultConfig());
  delete options.maxOutboundBytes;
  delete options.maxMessagesPerSec;
  delete options.maxBytesPerSec;
  return options;
}

/**
 * Merges `input` over the hub defaults and validates it by the rules of
 * `resolveConfig`. Throws ConfigError.
 */
export function resolveHubOptions(input: Partial<HubOptions>): HubOptions {
  const options: HubOptions = { ...defaultHubOptions() };
  for (const key of HUB_OPTION_KEYS) {
    const value = input[key];
    if (value !== undefined) (options as unknown as Record<string, unknown>)[key] = value;
  }
  checkNumbers(options, HUB_NUMERIC_OPTIONS);
  checkWorkerCount(options.workerCount);
  return options;
}

/** Options whose values are code or live objects (functions, authenticators, a cluster), never data. */
export const CODE_OPTIONS = [
  'tokenAuthenticator',
  'broadcastAuthorizer',
  'roomAuthorizer',
  'roomValidator',
  'selectProtocol',
  'onMessage',
  'onConnect',
  'onClose',
  'cluster',
  'subscriptionTokenAuthenticator',
  'channelHooks',
  'channelEngine',
] as const satisfies ReadonlyArray<keyof WshubConfig>;

/** Every option name, for the CLI's config file check. */
export const CONFIG_KEYS: ReadonlyArray<keyof WshubConfig> = [
  ...(Object.keys(defaultConfig()) as Array<keyof WshubConfig>),
  'secret',
  'broadcastSecret',
  'apiKey',
  'metricsKey',
  ...CODE_OPTIONS,
];

/**
 * Merges `input` over the defaults and validates the result. Secrets are
 * copied. Throws ConfigError, WeakSecretError or SecretReuseError.
 */
export function resolveConfig(input: Partial<WshubConfig>): ResolvedConfig {
  const config: WshubConfig = { ...defaultConfig() };
  for (const [key, value] of Object.entries(input)) {
    if (value !== undefined) (config as unknown as Record<string, unknown>)[key] = value;
  }
  checkNumbers(config, NUMERIC_OPTIONS);
  checkWorkerCount(config.workerCount);
  if (config.sendQueueSize < 1) throw new ConfigError('sendQueueSize', 'must be at least 1');
  for (const key of [
    'maxPendingHandshakes',
    'maxPendingHandshakesPerAddress',
    'maxConnsPerIp',
    'maxHandshakesPerIp',
    'maxConnsPerUser',
    'passwordLockout',
  ] as const) {
    if (!Number.isInteger(config[key])) throw new ConfigError(key, 'must be a whole number');
  }
  if (config.readLimit < 1 || config.readLimit > MAX_READ_LIMIT) {
    throw new ConfigError('readLimit', `must be between 1 and ${MAX_READ_LIMIT}`);
  }
  // Unset, the outbound cap follows the queue size: a full queue plus as much again in the socket.
  if (input.maxOutboundBytes === undefined) config.maxOutboundBytes = 2 * config.sendQueueBytes;
  if (config.maxOutboundBytes > 0 && config.maxOutboundBytes < config.sendQueueBytes) {
    throw new ConfigError('maxOutboundBytes', 'must be 0 (no cap) or at least sendQueueBytes');
  }
  // Unset, the inbound byte rate follows the message size: two largest messages a second.
  if (input.maxBytesPerSec === undefined) config.maxBytesPerSec = 2 * config.readLimit;
  if (config.maxBytesPerSec > 0 && config.maxBytesPerSec <= config.readLimit) {
    throw new ConfigError('maxBytesPerSec', 'must be 0 (no limit) or more than readLimit');
  }
  if (config.maxPartialMessageBytes > 0 && config.maxPartialMessageBytes < config.readLimit) {
    throw new ConfigError('maxPartialMessageBytes', 'must be 0 (no budget) or at least readLimit');
  }
  checkDeflate(config);
  if (!['block', 'drop', 'close'].includes(config.sendBehavior)) {
    throw new ConfigError('sendBehavior', 'must be "block", "drop" or "close"');
  }
  checkPath('wsRoutePath', config.wsRoutePath);
  checkPath('broadcastPath', config.broadcastPath);
  checkPath('channelPath', config.channelPath);
  if (input.channelsEnabled === undefined)
    config.channelsEnabled = CHANNEL_OPTIONS.some((key) => input[key] !== undefined);
  checkPath('apiPath', config.apiPath);
  checkPath('metricsPath', config.metricsPath);
  checkDistinctPaths(config);
  const channelLimits = resolveChannelBounds(input.channelLimits);
  if (config.channels === null || typeof config.channels !== 'object' || Array.isArray(config.channels))
    throw new ConfigError('channels', 'must be an object of channel options and namespaces');
  if (!Array.isArray(config.allowedOrigins) || config.allowedOrigins.some((o) => typeof o !== 'string')) {
    throw new ConfigError('allowedOrigins', 'must be an array of strings');
  }
  checkClientLimits(config);
  checkTokenOptions(config);
  validateSecurityConfig({
    secret: config.secret,
    broadcastSecret: config.broadcastSecret,
    broadcastEnabled: config.broadcastEnabled,
    allowUnauthenticated: config.allowUnauthenticated,
    hasTokenAuthenticator:
      config.tokenAuthenticator !== undefined || config.tokenPublicKey !== '' || config.jwksUrl !== '',
    hasBroadcastAuthorizer: config.broadcastAuthorizer !== undefined,
  });
  if (config.apiKey !== undefined && config.apiKey.length > 0) checkApiKey(config.apiKey, config.secret);
  // Metrics on a shared port are never open to anyone: a scraper proves itself with the key.
  if (config.metricsEnabled) checkApiKey(config.metricsKey, config.secret, 'metricsKey');
  return {
    ...config,
    secret: copySecret(config.secret),
    broadcastSecret: copySecret(config.broadcastSecret),
    apiKey: config.apiKey === undefined || config.apiKey.length === 0 ? undefined : copySecret(config.apiKey),
    metricsKey: config.metricsEnabled ? copySecret(config.metricsKey) : undefined,
    channelLimits,
    allowedOrigins: [...config.allowedOrigins],
    limitExempt: [...config.limitExempt],
    trustedProxies: [...config.trustedProxies],
    tokenIssuer: [...config.tokenIssuer],
    tokenAudience: [...config.tokenAudience],
  };
}

/** permessage-deflate options: where it is on, and zlib's ranges. Throws ConfigError. */
function checkDeflate(config: WshubConfig): void {
  if (![true, false, 'channels'].includes(config.perMessageDeflate))
    throw new ConfigError('perMessageDeflate', 'must be true, false or "channels"');
  const ranges = [
    ['deflateLevel', 0, 9],
    ['deflateMemLevel', 1, 9],
    ['deflateWindowBits', 8, 15],
    ['deflateClientWindowBits', 8, 15],
  ] as const;
  for (const [key, min, max] of ranges) {
    const value = config[key];
    if (!Number.isInteger(value) || value < min || value > max)
      throw new ConfigError(key, `must be a whole number from ${min} to ${max}`);
  }
  if (!Number.isInteger(config.deflateThreshold))
    throw new ConfigError('deflateThreshold', 'must be a whole number of bytes');
}

/**
 * The permessage-deflate settings of an endpoint from a resolved
 * configuration, or null when deflate is off there.
 */
export function deflateSettingsOf(
  config: Pick<
    ResolvedConfig,
    | 'perMessageDeflate'
    | 'deflateThreshold'
    | 'deflateLevel'
    | 'deflateMemLevel'
    | 'deflateWindowBits'
    | 'deflateClientWindowBits'
  >,
  endpoint: 'rooms' | 'channels',
): DeflateSettings | null {
  const on = config.perMessageDeflate;
  if (on === false || (on === 'channels' && endpoint !== 'channels')) return null;
  return {
    threshold: config.deflateThreshold,
    level: config.deflateLevel,
    memLevel: config.deflateMemLevel,
    serverMaxWindowBits: config.deflateWindowBits,
    clientMaxWindowBits: config.deflateClientWindowBits,
    preferClientNoContextTakeover: true,
  };
}

/** The address lists parse as CIDRs, and the forwarding header is one wshub reads. Throws ConfigError. */
function checkClientLimits(config: WshubConfig): void {
  new AddressSet(config.limitExempt, 'limitExempt');
  new AddressSet(config.trustedProxies, 'trustedProxies');
  if (config.trustedProxyHeader !== 'x-forwarded-for' && config.trustedProxyHeader !== 'forwarded')
    throw new ConfigError('trustedProxyHeader', 'must be "x-forwarded-for" or "forwarded"');
}

/** Token options: strings where strings belong, an http(s) JWKS URL. Throws ConfigError. */
function checkTokenOptions(config: WshubConfig): void {
  for (const key of ['tokenIssuer', 'tokenAudience'] as const) {
    const list = config[key];
    if (!Array.isArray(list) || list.some((v) => typeof v !== 'string' || v === ''))
      throw new ConfigError(key, 'must be an array of non-empty strings');
  }
  if (typeof config.tokenPublicKey !== 'string')
    throw new ConfigError('tokenPublicKey', 'must be a PEM or JWK text');
  if (typeof config.jwksUrl !== 'string') throw new ConfigError('jwksUrl', 'must be a URL');
  if (config.jwksUrl !== '') {
    let url: URL;
    try {
      url = new URL(config.jwksUrl);
    } catch {
      throw new ConfigError('jwksUrl', 'must be an absolute http(s) URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new ConfigError('jwksUrl', 'must be an absolute http(s) URL');
  }
}

/** The routes a server serves must be distinct (a prefix for the API). */
function checkDistinctPaths(config: WshubConfig): void {
  const routes: Array<[string, string, boolean]> = [
    ['wsRoutePath', config.wsRoutePath, true],
    ['broadcastPath', config.broadcastPath, config.broadcastEnabled],
    ['channelPath', config.channelPath, config.channelsEnabled],
    ['metricsPath', config.metricsPath, config.metricsEnabled],
  ];
  const seen = new Map<string, string>();
  for (const [name, path, used] of routes) {
    if (!used) continue;
    const other = seen.get(path);
    if (other !== undefined) throw new ConfigError(name, `must differ from ${other}`);
    seen.set(path, name);
    if (config.apiKey !== undefined && (path === config.apiPath || path.startsWith(`${config.apiPath}/`)))
      throw new ConfigError(name, 'must not lie under apiPath');
  }
}

/** Merges channel bounds over their defaults; every number finite and ≥ 0 (timeouts ≥ 1). Throws ConfigError. */
export function resolveChannelBounds(input: Partial<ChannelBounds> | undefined): ChannelBounds {
  const bounds = defaultChannelBounds();
  if (input === undefined) return bounds;
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw new ConfigError('channelLimits', 'must be an object');
  for (const [key, value] of Object.entries(input)) {
    if (!(key in bounds)) throw new ConfigError(`channelLimits.${key}`, 'is not a channel limit');
    if (value === undefined) continue;
    const expected = typeof (bounds as unknown as Record<string, unknown>)[key];
    if (expected === 'boolean') {
      if (typeof value !== 'boolean') throw new ConfigError(`channelLimits.${key}`, 'must be true or false');
    } else if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new ConfigError(`channelLimits.${key}`, `must be a non-negative number, got ${String(value)}`);
    }
    (bounds as unknown as Record<string, unknown>)[key] = value;
  }
  for (const key of [
    'connectTimeout',
    'pongTimeout',
    'hookTimeout',
    'maxCommandsPerFrame',
    'maxSubscriptions',
  ] as const) {
    if (bounds[key] < 1) throw new ConfigError(`channelLimits.${key}`, 'must be at least 1');
  }
  // Each ping rearms the one pong check: a check longer than the interval never fires.
  if (bounds.pingInterval > 0 && bounds.pongTimeout >= bounds.pingInterval)
    throw new ConfigError('channelLimits.pongTimeout', 'must be less than channelLimits.pingInterval');
  return bounds;
}

/**
 * Checks the API key option: at least 32 bytes, and not the token secret
 * (compared in constant time), so a leaked key cannot sign tokens nor the
 * other way round. Takes the key (bytes, or a string as UTF-8), the token
 * secret when there is one, and the option's name for the error; returns a
 * copy of the key as a Buffer or throws ConfigError.
 */
export function checkApiKey(
  key: Uint8Array | string | undefined,
  tokenSecret?: Uint8Array | string,
  option = 'apiKey',
): Buffer {
  if (key === undefined || (typeof key !== 'string' && !(key instanceof Uint8Array))) {
    throw new ConfigError(option, `an API key of at least ${MIN_SECRET_BYTES} bytes is required`);
  }
  const bytes = secretBytes(key);
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new ConfigError(option, `must be at least ${MIN_SECRET_BYTES} bytes, got ${bytes.length}`);
  }
  if (tokenSecret !== undefined && constantTimeEqual(bytes, tokenSecret)) {
    throw new ConfigError(option, 'must differ from the token secret');
  }
  return bytes;
}

function checkPath(option: string, path: unknown): void {
  if (typeof path !== 'string' || path === '' || !path.startsWith('/')) {
    throw new ConfigError(option, 'must be a non-empty path starting with "/"');
  }
}

function copySecret(secret: Uint8Array | string | undefined): Buffer | undefined {
  if (secret === undefined) return undefined;
  return typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
}
