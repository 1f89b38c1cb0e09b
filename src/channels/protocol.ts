/**
 * The Centrifuge client protocol, version 2, JSON encoding: the shapes of
 * commands, replies and pushes (field names as in Centrifugo's
 * `client.proto`, snake_case on the wire), and the two code tables every
 * refusal comes from: reply errors (100–113) and disconnects (3000–3999).
 *
 * In the JSON encoding a `bytes` field carries raw JSON (not base64), so
 * `data`, `info`, `conn_info` and `chan_info` hold any JSON value.
 */
import { WshubError } from '../errors.ts';

/** Any JSON value, as JSON.parse returns it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

// ---- commands (client → server) ---------------------------------------------

export interface StreamPosition {
  offset?: number;
  epoch?: string;
}

export interface ConnectRequest {
  token?: string;
  data?: Json;
  subs?: Record<string, SubscribeRequest>;
  name?: string;
  version?: string;
  headers?: Record<string, string>;
}

export interface SubscribeRequest {
  channel?: string;
  token?: string;
  recover?: boolean;
  epoch?: string;
  offset?: number;
  data?: Json;
  positioned?: boolean;
  recoverable?: boolean;
  join_leave?: boolean;
  delta?: string;
}

export interface Command {
  id?: number;
  connect?: ConnectRequest;
  subscribe?: SubscribeRequest;
  unsubscribe?: { channel?: string };
  publish?: { channel?: string; data?: Json };
  presence?: { channel?: string };
  presence_stats?: { channel?: string };
  history?: { channel?: string; limit?: number; since?: StreamPosition; reverse?: boolean };
  ping?: Record<string, never>;
  send?: { data?: Json };
  rpc?: { method?: string; data?: Json };
  refresh?: { token?: string };
  sub_refresh?: { channel?: string; token?: string };
}

/** The request kinds a command may carry, in client.proto's field order. */
export const COMMAND_METHODS = [
  'connect',
  'subscribe',
  'unsubscribe',
  'publish',
  'presence',
  'presence_stats',
  'history',
  'ping',
  'send',
  'rpc',
  'refresh',
  'sub_refresh',
] as const;
export type CommandMethod = (typeof COMMAND_METHODS)[number];

// ---- replies and pushes (server → client) ---------------------------------------

export interface ClientInfo {
  user: string;
  client: string;
  conn_info?: Json;
  chan_info?: Json;
}

export interface Publication {
  data: Json;
  info?: ClientInfo;
  offset?: number;
  tags?: Record<string, string>;
}

export interface SubscribeResult {
  expires?: boolean;
  ttl?: number;
  recoverable?: boolean;
  epoch?: string;
  publications?: Publication[];
  recovered?: boolean;
  offset?: number;
  positioned?: boolean;
  data?: Json;
  was_recovering?: boolean;
}

export interface ConnectResult {
  client: string;
  version: string;
  expires?: boolean;
  ttl?: number;
  data?: Json;
  subs?: Record<string, SubscribeResult>;
  ping?: number;
  pong?: boolean;
  session?: string;
  node?: string;
}

export interface HistoryResult {
  publications: Publication[];
  epoch: string;
  offset: number;
}

export interface Push {
  channel?: string;
  pub?: Publication;
  join?: { info: ClientInfo };
  leave?: { info: ClientInfo };
  unsubscribe?: { code: number; reason: string };
  message?: { data: Json };
  subscribe?: Omit<SubscribeResult, 'publications' | 'recovered' | 'was_recovering' | 'expires' | 'ttl'>;
  disconnect?: { code: number; reason: string; reconnect: boolean };
}

export interface ReplyError {
  code: number;
  message: string;
  temporary?: boolean;
}

// ---- reply errors -------------------------------------------------------------------

/**
 * The protocol's reply errors (Centrifuge's table): the command failed, the
 * connection stays. `temporary` errors tell the SDK to retry.
 */
export const ReplyErrors = {
  INTERNAL: { code: 100, message: 'internal server error', temporary: true },
  UNAUTHORIZED: { code: 101, message: 'unauthorized' },
  UNKNOWN_CHANNEL: { code: 102, message: 'unknown channel' },
  PERMISSION_DENIED: { code: 103, message: 'permission denied' },
  METHOD_NOT_FOUND: { code: 104, message: 'method not found' },
  ALREADY_SUBSCRIBED: { code: 105, message: 'already subscribed' },
  LIMIT_EXCEEDED: { code: 106, message: 'limit exceeded' },
  BAD_REQUEST: { code: 107, message: 'bad request' },
  NOT_AVAILABLE: { code: 108, message: 'not available' },
  TOKEN_EXPIRED: { code: 109, message: 'token expired' },
  EXPIRED: { code: 110, message: 'expired' },
  TOO_MANY_REQUESTS: { code: 111, message: 'too many requests', temporary: true },
  UNRECOVERABLE_POSITION: { code: 112, message: 'unrecoverable position' },
} as const satisfies Record<string, ReplyError>;

/** A command failed with a reply error; thrown inside command handling, answered as `{"id", "error"}`. */
export class ReplyErrorException extends WshubError {
  constructor(readonly error: ReplyError) {
    super('CHANNEL_REPLY_ERROR', error.message);
  }
}

// ---- disconnects ----------------------------------------------------------------------

export interface Disconnect {
  /** WebSocket close code: 3000–3499 and 4000–4499 reconnect, 3500–3999 and 4500–4999 do not. */
  code: number;
  reason: string;
}

/** The protocol's disconnects (Centrifuge's table), sent as the close frame's code and reason. */
export const Disconnects = {
  CONNECTION_CLOSED: { code: 3000, reason: 'connection closed' },
  SHUTDOWN: { code: 3001, reason: 'shutdown' },
  SERVER_ERROR: { code: 3004, reason: 'internal server error' },
  EXPIRED: { code: 3005, reason: 'connection expired' },
  SUB_EXPIRED: { code: 3006, reason: 'subscription expired' },
  SLOW: { code: 3008, reason: 'slow' },
  WRITE_ERROR: { code: 3009, reason: 'write error' },
  INSUFFICIENT_STATE: { code: 3010, reason: 'insufficient state' },
  FORCE_RECONNECT: { code: 3011, reason: 'force reconnect' },
  NO_PONG: { code: 3012, reason: 'no pong' },
  TOO_MANY_REQUESTS: { code: 3013, reason: 'too many requests' },
  INVALID_TOKEN: { code: 3500, reason: 'invalid token' },
  BAD_REQUEST: { code: 3501, reason: 'bad request' },
  STALE: { code: 3502, reason: 'stale' },
  FORCE_NO_RECONNECT: { code: 3503, reason: 'force disconnect' },
  CONNECTION_LIMIT: { code: 3504, reason: 'connection limit' },
  CHANNEL_LIMIT: { code: 3505, reason: 'channel limit' },
  PERMISSION_DENIED: { code: 3507, reason: 'permission denied' },
  NOT_AVAILABLE: { code: 3508, reason: 'not available' },
  TOO_MANY_ERRORS: { code: 3509, reason: 'too many errors' },
} as const satisfies Record<string, Disconnect>;

/** Ends the connection with a disconnect; thrown inside command handling. */
export class DisconnectException extends WshubError {
  constructor(readonly disconnect: Disconnect) {
    super('CHANNEL_DISCONNECT', disconnect.reason);
  }
}

/** Unsubscribe codes of the unsubscribe push: below 2500 final, from 2500 the SDK resubscribes. */
export const Unsubscribes = {
  SERVER: { code: 2000, reason: 'server unsubscribe' },
  INSUFFICIENT_STATE: { code: 2500, reason: 'insufficient state' },
  EXPIRED: { code: 2501, reason: 'subscription expired' },
} as const;
