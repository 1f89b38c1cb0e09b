/**
 * Server configuration: every option with its default in one place
 * (see docs/CONFIG.md), and the validation the constructor runs. Defaults never read
 * environment variables.
 */
import type { IncomingMessage } from 'node:http';
import type { ProtocolSelector } from './accept.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_HEADER_SIZE } from './accept.ts';
import type { RoomAuthorizer } from './auth/room-password.ts';
import type { UpgradeRequest } from './protocol/request-head.ts';
import type { Cluster } from './broker/cluster.ts';
import type { TokenAuthenticator } from './auth/token.ts';
import { validateSecurityConfig } from './auth/security.ts';
import {
  DEFAULT_MAX_FRAGMENTS,
  DEFAULT_MAX_PING_RATE,
  MAX_READ_LIMIT,
  type Connection,
  type SendBehavior,
} from './connection.ts';
import { ConfigError } from './errors.ts';
import type { RoomValidator, TextValidationOptions } from './validation.ts';

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
  // -- scale-out --
  /** Share rooms and broadcasts with other nodes (see docs/SCALE-OUT.md); call `start()` before serving. */
  cluster?: Cluster | undefined;
  // -- messages --
  /** Text message validation (the seed's defaults), or false to switch it off. */
  messageValidation: Partial<TextValidationOptions> | false;
  onMessage?: MessageHandler | undefined;
  onConnect?: ((conn: Connection, request: UpgradeRequest) => void) | undefined;
  onClose?: ((conn: Connection, code: number, reason: string) => void) | undefined;
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
    messageValidation: {},
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
] as const satisfies ReadonlyArray<keyof WshubConfig>;

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
] as const satisfies ReadonlyArray<keyof WshubConfig>;

/** Every option name, for the CLI's config file check. */
export const CONFIG_KEYS: ReadonlyArray<keyof WshubConfig> = [
  ...(Object.keys(defaultConfig()) as Array<keyof WshubConfig>),
  'secret',
  'broadcastSecret',
  ...CODE_OPTIONS,
];

/**
 * Merges `input` over the defaults and validates the result. Secrets are
 * copied. Throws ConfigError, WeakSecretError or SecretReuseError.
 */
export function resolveConfig(input: Partial<WshubConfig>): WshubConfig {
  const config: WshubConfig = { ...defaultConfig() };
  for (const [key, value] of Object.entries(input)) {
    if (value !== undefined) (config as unknown as Record<string, unknown>)[key] = value;
  }
  for (const key of NUMERIC_OPTIONS) {
    const value = config[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new ConfigError(key, `must be a non-negative number, got ${String(value)}`);
    }
  }
  if (config.workerCount < 1) throw new ConfigError('workerCount', 'must be at least 1');
  if (config.sendQueueSize < 1) throw new ConfigError('sendQueueSize', 'must be at least 1');
  for (const key of ['maxPendingHandshakes', 'maxPendingHandshakesPerAddress'] as const) {
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
  if (config.maxPartialMessageBytes > 0 && config.maxPartialMessageBytes < config.readLimit) {
    throw new ConfigError('maxPartialMessageBytes', 'must be 0 (no budget) or at least readLimit');
  }
  if (!['block', 'drop', 'close'].includes(config.sendBehavior)) {
    throw new ConfigError('sendBehavior', 'must be "block", "drop" or "close"');
  }
  checkPath('wsRoutePath', config.wsRoutePath);
  checkPath('broadcastPath', config.broadcastPath);
  if (config.broadcastEnabled && config.broadcastPath === config.wsRoutePath) {
    throw new ConfigError('broadcastPath', 'must differ from wsRoutePath');
  }
  if (!Array.isArray(config.allowedOrigins) || config.allowedOrigins.some((o) => typeof o !== 'string')) {
    throw new ConfigError('allowedOrigins', 'must be an array of strings');
  }
  validateSecurityConfig({
    secret: config.secret,
    broadcastSecret: config.broadcastSecret,
    broadcastEnabled: config.broadcastEnabled,
    allowUnauthenticated: config.allowUnauthenticated,
    hasTokenAuthenticator: config.tokenAuthenticator !== undefined,
    hasBroadcastAuthorizer: config.broadcastAuthorizer !== undefined,
  });
  config.secret = copySecret(config.secret);
  config.broadcastSecret = copySecret(config.broadcastSecret);
  config.allowedOrigins = [...config.allowedOrigins];
  return config;
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
