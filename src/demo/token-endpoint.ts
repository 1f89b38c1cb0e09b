/**
 * `POST /demo/token`: trades a display name for a short-lived HS256 token.
 *
 * - With a `room` (the raw `/ws` rooms): the room password too, for
 *   protected rooms. Browsers cannot send the room password header on a
 *   WebSocket upgrade, so the password is checked here and the grant
 *   travels inside the token (`rooms` claim).
 * - Without a room: a channel connection token (the SDK's `getToken`),
 *   with the name as connection `info`, so publications and presence carry
 *   it. A `refresh` field holding the previous token (valid, or expired
 *   less than REFRESH_GRACE_SECONDS ago) keeps its user and name: the
 *   channel protocol refuses a refresh whose token names another user.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RoomPasswords } from '../auth/room-password.ts';
import { HS256TokenAuthenticator, signHS256 } from '../auth/token.ts';
import { WshubError } from '../errors.ts';
import {
  HttpRejection,
  refusal,
  sendRejection,
  type Rejection,
  type RejectionKind,
} from '../http/rejections.ts';
import { isValidRoomName } from '../hub/validation.ts';
import { securityHeaders } from './static-files.ts';

/** Largest accepted request body, in bytes. */
export const MAX_TOKEN_REQUEST_BYTES = 4096;
/** Longest display name, in characters (code points). */
export const MAX_NAME_CHARS = 32;

/** How long after its expiry a token may still be traded for a fresh one, in seconds. */
export const REFRESH_GRACE_SECONDS = 3600;

/** What the token endpoint needs. */
export interface TokenEndpointOptions {
  secret: Uint8Array;
  roomPasswords: RoomPasswords;
  /** Lifetime of room tokens, in seconds. */
  tokenTtlSeconds: number;
  /** Lifetime of channel connection tokens, in seconds (short, so the SDK refreshes them). */
  channelTokenTtlSeconds: number;
  /**
   * The server's room-password lockout (WshubServer.roomPasswordAttempt), so
   * guessing through this endpoint is limited as through upgrades; absent
   * before the demo is bound to a server.
   */
  passwordAttempt?: (request: IncomingMessage, room: string) => PasswordAttempt;
}

/** One room-password attempt under the lockout: seconds still locked (0: may try), and its outcome. */
export interface PasswordAttempt {
  lockedFor: number;
  record(accepted: boolean): void;
}

/** A refused token request: a row of the rejection table, with a message that may say more. */
export class TokenRequestError extends WshubError {
  readonly status: number;
  readonly rejection: Rejection;

  constructor(kind: RejectionKind, message: string = kind.message, headers?: Record<string, string>) {
    super(kind.code, message);
    this.status = kind.status;
    this.rejection = refusal(kind, message, headers);
  }
}

/** A validated token request. */
export interface TokenRequest {
  name: string;
  /** The raw room to join; undefined for a channel connection token. */
  room: string | undefined;
  password: string | undefined;
  /** The previous channel connection token, whose user and name the new one keeps. */
  refresh: string | undefined;
}

/**
 * Validates a parsed JSON body. Returns the request, or throws
 * TokenRequestError (400) naming the first bad field.
 */
export function parseTokenRequest(body: unknown): TokenRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new TokenRequestError(HttpRejection.INVALID_REQUEST);
  }
  const { name, room, password, refresh } = body as Record<string, unknown>;
  if (typeof name !== 'string')
    throw new TokenRequestError(HttpRejection.INVALID_NAME, 'name must be a string');
  const trimmed = name.trim();
  const chars = [...trimmed].length;
  // Control characters would be refused later by the message validation of
  // anyone who echoes the name, and have no place in a display name anyway.
  // eslint-disable-next-line no-control-regex
  if (chars < 1 || chars > MAX_NAME_CHARS || /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(trimmed)) {
    throw new TokenRequestError(
      HttpRejection.INVALID_NAME,
      `name must be 1 to ${MAX_NAME_CHARS} printable characters`,
    );
  }
  if (room !== undefined && (typeof room !== 'string' || !isValidRoomName(room))) {
    throw new TokenRequestError(
      HttpRejection.INVALID_ROOM_FIELD,
      'room must be 1 to 128 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-"',
    );
  }
  if (password !== undefined && password !== null && typeof password !== 'string') {
    throw new TokenRequestError(HttpRejection.INVALID_PASSWORD);
  }
  if (refresh !== undefined && (typeof refresh !== 'string' || refresh === '' || room !== undefined)) {
    throw new TokenRequestError(
      HttpRejection.INVALID_REQUEST,
      'refresh must be the previous channel token (without a room)',
    );
  }
  return {
    name: trimmed,
    room,
    password: typeof password === 'string' ? password : undefined,
    refresh,
  };
}

/**
 * Issues the token a request asks for. For a room: checks the room password
 * (when the room has one) and resolves with `{ token, room }`, or rejects
 * with TokenRequestError 403 `ROOM_PASSWORD_REQUIRED` (no password given)
 * or `ROOM_PASSWORD_INVALID`, or 429 `WEBSOCKET_ROOM_LOCKED` with `Retry-After`
 * while `attempt` (the server's lockout for this client and room) says so. Without a room: resolves with `{ token }`, a
 * channel connection token; with `refresh`, one for the same user and name,
 * or TokenRequestError 403 when the previous token is not one of ours.
 */
export async function issueToken(
  request: TokenRequest,
  options: TokenEndpointOptions,
  attempt?: (room: string) => PasswordAttempt,
): Promise<{ token: string; room?: string }> {
  if (request.room === undefined) return issueChannelToken(request, options);
  const claims: Record<string, unknown> = { sub: randomUUID(), name: request.name };
  if (options.roomPasswords.hasRoomPassword(request.room)) {
    if (request.password === undefined || request.password === '') {
      throw new TokenRequestError(HttpRejection.ROOM_PASSWORD_REQUIRED);
    }
    const gate = attempt?.(request.room);
    if (gate !== undefined && gate.lockedFor > 0) {
      throw new TokenRequestError(HttpRejection.ROOM_LOCKED, undefined, {
        'Retry-After': String(gate.lockedFor),
      });
    }
    const accepted = await options.roomPasswords.verify(request.room, request.password);
    gate?.record(accepted);
    if (!accepted) throw new TokenRequestError(HttpRejection.ROOM_PASSWORD_INVALID);
    claims.rooms = [request.room];
  }
  const token = await signHS256(claims, options.secret, { expiresInSeconds: options.tokenTtlSeconds });
  return { token, room: request.room };
}

async function issueChannelToken(
  request: TokenRequest,
  options: TokenEndpointOptions,
): Promise<{ token: string }> {
  let sub: string = randomUUID();
  let name = request.name;
  if (request.refresh !== undefined) {
    const previous = await refreshVerifier(options.secret)
      .authenticate(request.refresh)
      .catch(() => {
        throw new TokenRequestError(HttpRejection.INVALID_TOKEN, 'the previous token is not valid');
      });
    const claims = previous.claims;
    if (typeof claims.sub !== 'string' || typeof claims.name !== 'string')
      throw new TokenRequestError(HttpRejection.INVALID_TOKEN, 'the previous token is not a demo token');
    sub = claims.sub;
    name = claims.name;
  }
  const claims = { sub, name, info: { name } };
  const token = await signHS256(claims, options.secret, { expiresInSeconds: options.channelTokenTtlSeconds });
  return { token };
}

/** One verifier per secret: it caches verified signatures. */
const verifiers = new WeakMap<Uint8Array, HS256TokenAuthenticator>();

function refreshVerifier(secret: Uint8Array): HS256TokenAuthenticator {
  let verifier = verifiers.get(secret);
  if (verifier === undefined) {
    verifier = new HS256TokenAuthenticator(secret, { leewaySeconds: REFRESH_GRACE_SECONDS, cacheSize: 256 });
    verifiers.set(secret, verifier);
  }
  return verifier;
}

/** Handles one request to the token endpoint, writing a JSON answer. */
export async function handleTokenRequest(
  request: IncomingMessage,
  response: ServerResponse,
  options: TokenEndpointOptions,
): Promise<void> {
  try {
    if (request.method !== 'POST') {
      throw new TokenRequestError(HttpRejection.METHOD_NOT_ALLOWED, 'use POST');
    }
    const type = request.headers['content-type'] ?? '';
    // Requiring JSON keeps cross-site HTML forms (which cannot send it) out.
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      throw new TokenRequestError(HttpRejection.UNSUPPORTED_MEDIA_TYPE);
    }
    const raw = await readBody(request, MAX_TOKEN_REQUEST_BYTES);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new TokenRequestError(HttpRejection.INVALID_JSON);
    }
    const passwordAttempt = options.passwordAttempt;
    const attempt =
      passwordAttempt === undefined ? undefined : (room: string) => passwordAttempt(request, room);
    sendJson(response, 200, await issueToken(parseTokenRequest(body), options, attempt));
  } catch (error) {
    if (error instanceof TokenRequestError) {
      const extra: Record<string, string> = { ...securityHeaders(), 'Cache-Control': 'no-store' };
      if (error.status === 405) extra.Allow = 'POST';
      // An over-long body is left unread; closing the connection spares us draining it.
      if (error.status === 413) extra.Connection = 'close';
      sendRejection(response, error.rejection, extra);
      return;
    }
    sendRejection(response, refusal(HttpRejection.INTERNAL_ERROR, 'could not issue a token'), {
      ...securityHeaders(),
      'Cache-Control': 'no-store',
    });
  }
}

/** Reads the whole body, rejecting with TokenRequestError 413 past `limit` bytes. */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(
      new TokenRequestError(HttpRejection.BODY_TOO_LARGE, `body must be at most ${limit} bytes`),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.off('data', onData);
        request.pause();
        reject(new TokenRequestError(HttpRejection.BODY_TOO_LARGE, `body must be at most ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    request.on('data', onData);
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

/** The 200 answer; errors go through sendRejection. */
function sendJson(response: ServerResponse, status: number, value: unknown): void {
  if (response.headersSent) return;
  const body = JSON.stringify(value);
  response.writeHead(status, {
    ...securityHeaders(),
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  response.end(body);
}
