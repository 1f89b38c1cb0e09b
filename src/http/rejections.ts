/**
 * Every HTTP error wshub answers with, in one table, and the one JSON body
 * they all carry: `{"error":{"code","message","category"}}`. Upgrade
 * refusals, handshake limits, the admin endpoint, the 404s, the health
 * check and the demo's token endpoint all draw from here, so a client can
 * branch on `code` (stable) or `category` (coarse) wherever the answer came
 * from.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';

/** Coarse class of an error, for clients that branch on it. */
export type RejectionCategory =
  'forbidden' | 'validation' | 'auth' | 'capacity' | 'unavailable' | 'not_found' | 'method';

/** Why a request was refused: an HTTP status plus a stable error code. */
export interface Rejection {
  status: number;
  code: string;
  message: string;
  category: RejectionCategory;
  /** Extra response headers, e.g. `Sec-WebSocket-Version: 13` on a version mismatch. */
  headers?: Record<string, string>;
  /**
   * The precise cause, for the log only (e.g. `expired` or `signature` for
   * one WEBSOCKET_INVALID_TOKEN): the body keeps the stable code.
   */
  reason?: string;
  /** A sentence on the cause, for the log only (never holds the token or a secret). */
  detail?: string;
}

/** One row of the table: what is fixed for a kind of refusal (the message is its default). */
export interface RejectionKind {
  readonly status: number;
  readonly code: string;
  readonly category: RejectionCategory;
  readonly message: string;
}

function kind(status: number, code: string, category: RejectionCategory, message: string): RejectionKind {
  return { status, code, category, message };
}

/**
 * The HTTP rejection table. Several kinds share a code (e.g. the four
 * reasons for WEBSOCKET_JOIN_DENIED) and differ in status or category.
 */
export const HttpRejection = {
  // ---- the upgrade pipeline, in its order ----
  ORIGIN_FORBIDDEN: kind(403, 'WEBSOCKET_FORBIDDEN_ORIGIN', 'forbidden', 'origin not allowed'),
  METHOD_NOT_ALLOWED: kind(405, 'METHOD_NOT_ALLOWED', 'method', 'WebSocket upgrades must use GET'),
  /** An upgrade in HTTP/1.0 (RFC 6455 §4.1 needs 1.1 or later). */
  OLD_HTTP: kind(400, 'WEBSOCKET_BAD_REQUEST', 'validation', 'WebSocket upgrades need HTTP/1.1'),
  /** Not exactly one Host field (RFC 9112 §3.2, RFC 6455 §4.1). */
  BAD_HOST: kind(400, 'WEBSOCKET_BAD_REQUEST', 'validation', 'exactly one Host header is required'),
  /**
   * Transfer-Encoding, or a Content-Length other than 0: the bytes after the
   * head would be a body to a front proxy and frames to the WebSocket.
   */
  BODY_NOT_ALLOWED: kind(
    400,
    'WEBSOCKET_BAD_REQUEST',
    'validation',
    'an upgrade request must not carry a body',
  ),
  BAD_UPGRADE: kind(
    400,
    'WEBSOCKET_BAD_UPGRADE',
    'validation',
    'expected "Connection: Upgrade" and "Upgrade: websocket"',
  ),
  /** A plain (non-upgrade) request to the WebSocket path. */
  UPGRADE_REQUIRED: kind(426, 'WEBSOCKET_BAD_UPGRADE', 'validation', 'upgrade required'),
  BAD_VERSION: kind(400, 'WEBSOCKET_BAD_VERSION', 'validation', 'Sec-WebSocket-Version must be 13'),
  KEY_MISSING: kind(400, 'WEBSOCKET_KEY_MISSING', 'validation', 'Sec-WebSocket-Key is required'),
  KEY_INVALID: kind(
    400,
    'WEBSOCKET_KEY_INVALID',
    'validation',
    'Sec-WebSocket-Key must be base64 of 16 bytes',
  ),
  TOO_MANY_SUBPROTOCOLS: kind(400, 'WEBSOCKET_BAD_PROTOCOL', 'validation', 'too many subprotocols'),
  INVALID_ROOM: kind(400, 'WEBSOCKET_INVALID_ROOM', 'validation', 'invalid room name'),
  TOKEN_REQUIRED: kind(401, 'WEBSOCKET_TOKEN_REQUIRED', 'auth', 'a bearer token is required'),
  INVALID_TOKEN: kind(403, 'WEBSOCKET_INVALID_TOKEN', 'auth', 'invalid token'),
  ROOM_FORBIDDEN: kind(403, 'WEBSOCKET_ROOM_FORBIDDEN', 'forbidden', 'not allowed to join this room'),
  AUTH_BUSY: kind(
    503,
    'WEBSOCKET_AUTH_BUSY',
    'capacity',
    'too many room authorizations waiting, retry later',
  ),
  /** The authenticator or authorizer failed (threw or rejected): an outage, not a verdict. */
  AUTH_UNAVAILABLE: kind(503, 'WEBSOCKET_AUTH_UNAVAILABLE', 'unavailable', 'authorization is unavailable'),
  ROOM_FULL: kind(429, 'WEBSOCKET_JOIN_DENIED', 'capacity', 'room is full'),
  HUB_FULL: kind(503, 'WEBSOCKET_JOIN_DENIED', 'capacity', 'server is full'),
  RATE_LIMITED: kind(503, 'WEBSOCKET_JOIN_DENIED', 'capacity', 'too many new connections, retry later'),
  SHUTTING_DOWN: kind(503, 'WEBSOCKET_JOIN_DENIED', 'unavailable', 'server is shutting down'),
  JOIN_FAILED: kind(503, 'WEBSOCKET_JOIN_DENIED', 'unavailable', 'join failed'),
  /** The user (token `sub`) already has `maxConnsPerUser` connections open. */
  USER_CONNECTION_LIMIT: kind(
    429,
    'WEBSOCKET_USER_CONNECTION_LIMIT',
    'capacity',
    'too many connections for this user',
  ),
  /** Too many wrong room passwords from this address: locked out of the room for a while (Retry-After). */
  ROOM_LOCKED: kind(429, 'WEBSOCKET_ROOM_LOCKED', 'forbidden', 'too many wrong room passwords, retry later'),

  // ---- per-client limits (before any other step) ----
  IP_CONNECTION_LIMIT: kind(
    429,
    'WEBSOCKET_IP_CONNECTION_LIMIT',
    'capacity',
    'too many connections from this address',
  ),
  IP_HANDSHAKE_RATE: kind(
    429,
    'WEBSOCKET_IP_HANDSHAKE_RATE',
    'capacity',
    'too many new connections from this address, retry later',
  ),

  // ---- handshake admission ----
  HANDSHAKE_LIMIT: kind(429, 'HANDSHAKE_LIMIT', 'capacity', 'too many pending handshakes from this address'),
  /** The total of pending handshakes was reached, and this one was the oldest of the busiest address. */
  HANDSHAKE_EVICTED: kind(503, 'HANDSHAKE_EVICTED', 'capacity', 'too many pending handshakes, retry later'),
  /** The request head did not arrive before the handshake deadline. */
  REQUEST_TIMEOUT: kind(408, 'REQUEST_TIMEOUT', 'validation', 'the upgrade request did not arrive in time'),
  /** The head arrived, but a step (token, room authorizer) was still waiting at the deadline. */
  HANDSHAKE_TIMEOUT: kind(
    503,
    'HANDSHAKE_TIMEOUT',
    'unavailable',
    'the upgrade could not be completed in time',
  ),

  // ---- routing and failures ----
  NOT_FOUND: kind(404, 'NOT_FOUND', 'not_found', 'not found'),
  INTERNAL_ERROR: kind(500, 'INTERNAL_ERROR', 'unavailable', 'internal error'),

  // ---- admin broadcast endpoint ----
  UNAUTHORIZED: kind(401, 'UNAUTHORIZED', 'auth', 'missing or invalid broadcast credentials'),
  REQUEST_TOO_LARGE: kind(413, 'WEBSOCKET_REQUEST_TOO_LARGE', 'validation', 'request body is too large'),
  INVALID_BODY: kind(400, 'WEBSOCKET_INVALID_BODY', 'validation', 'body must be UTF-8 text'),
  BROADCAST_REJECTED: kind(503, 'WEBSOCKET_BROADCAST_REJECTED', 'unavailable', 'broadcast rejected'),

  // ---- server API (POST <apiPath>/<method>) ----
  API_UNAUTHORIZED: kind(401, 'API_UNAUTHORIZED', 'auth', 'missing or invalid API key'),
  /** The body parsed, but does not have the method's shape (a field of the wrong type, too deep, not an object). */
  API_BAD_REQUEST: kind(400, 'API_BAD_REQUEST', 'validation', 'malformed API request'),

  // ---- metrics endpoint ----
  METRICS_UNAUTHORIZED: kind(401, 'METRICS_UNAUTHORIZED', 'auth', 'missing or invalid metrics key'),

  // ---- demo token endpoint ----
  INVALID_REQUEST: kind(400, 'INVALID_REQUEST', 'validation', 'body must be a JSON object'),
  INVALID_JSON: kind(400, 'INVALID_JSON', 'validation', 'body is not valid JSON'),
  INVALID_NAME: kind(400, 'INVALID_NAME', 'validation', 'invalid name'),
  INVALID_ROOM_FIELD: kind(400, 'INVALID_ROOM', 'validation', 'invalid room'),
  INVALID_PASSWORD: kind(400, 'INVALID_PASSWORD', 'validation', 'password must be a string'),
  ROOM_PASSWORD_REQUIRED: kind(403, 'ROOM_PASSWORD_REQUIRED', 'forbidden', 'this room needs a password'),
  ROOM_PASSWORD_INVALID: kind(403, 'ROOM_PASSWORD_INVALID', 'forbidden', 'wrong room password'),
  UNSUPPORTED_MEDIA_TYPE: kind(415, 'UNSUPPORTED_MEDIA_TYPE', 'validation', 'send application/json'),
  BODY_TOO_LARGE: kind(413, 'BODY_TOO_LARGE', 'validation', 'body is too large'),
} as const satisfies Record<string, RejectionKind>;

/** The name of a row of HttpRejection. */
export type HttpRejectionName = keyof typeof HttpRejection;

/**
 * A refusal of the given kind; `message` replaces the default one when the
 * answer has more to say (e.g. the size limit that was passed).
 */
export function refusal(
  kind: RejectionKind,
  message: string = kind.message,
  headers?: Record<string, string>,
): Rejection {
  return rejection(kind.status, kind.code, message, kind.category, headers);
}

/**
 * Builds a rejection from its parts. Call sites inside wshub use `refusal`
 * with a row of HttpRejection; this stays for code that answers with its
 * own codes through the same body and response writers.
 */
export function rejection(
  status: number,
  code: string,
  message: string,
  category: RejectionCategory,
  headers?: Record<string, string>,
): Rejection {
  return headers ? { status, code, message, category, headers } : { status, code, message, category };
}

/** The JSON error body: the only place one is built. */
export function rejectionBody(r: Rejection): string {
  return JSON.stringify({ error: { code: r.code, message: r.message, category: r.category } });
}

/** A complete HTTP/1.1 error response, for a raw socket (an upgrade that never reached node:http's response). */
export function rejectionResponse(r: Rejection): string {
  const body = rejectionBody(r);
  let head = `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? 'Error'}\r\n`;
  head += 'Content-Type: application/json\r\n';
  head += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  head += 'Connection: close\r\n';
  for (const [name, value] of Object.entries(r.headers ?? {})) head += `${name}: ${value}\r\n`;
  return `${head}\r\n${body}`;
}

/**
 * Writes `r` as a node:http response. `extraHeaders` come first so the
 * rejection's own headers (Allow, Retry-After, …) and the body's type and
 * length always win. Does nothing once headers were sent.
 */
export function sendRejection(
  response: ServerResponse,
  r: Rejection,
  extraHeaders: Record<string, string> = {},
): void {
  if (response.headersSent) return;
  const body = rejectionBody(r);
  response.writeHead(r.status, {
    ...extraHeaders,
    ...r.headers,
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  response.end(body);
}
