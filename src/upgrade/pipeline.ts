/**
 * The upgrade pipeline, in the seed's order:
 *
 *   origin → method → Host and body → upgrade headers → version → key → subprotocol list
 *   → room → token → room authorization → capacity pre-check → join → 101
 *
 * The request is read once into a Handshake (readHandshake); each step is a
 * small function over it returning a Rejection (HTTP status + JSON error
 * code) or nothing. The join happens before the 101 is written, in the same
 * synchronous block, so two upgrades racing for the last slot cannot both
 * succeed.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  BEARER_PROTOCOL_PREFIX,
  extensionHeaders,
  negotiateExtensions,
  reject,
  selectProtocol,
  type ProtocolSelector,
} from './respond.ts';
import type { DeflateEndpoint } from '../protocol/deflate.ts';
import { InvalidTokenError, RoomAuthBusyError } from '../auth/errors.ts';
import type { RoomAuthorizer } from '../auth/room-password.ts';
import type { TokenAuthenticator } from '../auth/token.ts';
import type { UserInfo } from '../auth/user.ts';
import { Connection, type ConnectionHandlers, type ConnectionOptions } from '../connection/connection.ts';
import type { Hub, JoinResult } from '../hub/hub.ts';
import { WshubError } from '../errors.ts';
import {
  acceptResponse,
  checkKey,
  checkMethod,
  checkRequest,
  checkSubprotocols,
  checkUpgradeHeaders,
  checkVersion,
  readHandshake,
  type Handshake,
} from './handshake.ts';
import type { UpgradeRequest } from './request-head.ts';
import { HttpRejection, refusal, type Rejection } from '../http/rejections.ts';
import { addressKey } from '../http/address.ts';
import type { PasswordLockout } from '../auth/password-lockout.ts';
import type { UserConnectionLimit } from './client-limits.ts';

export { BEARER_PROTOCOL_PREFIX };
/** The subprotocol a browser offers next to its token, and the one the server selects. */
export const BROWSER_PROTOCOL = 'wshub';

/** Counters the pipeline keeps (part of the server's metrics). */
export interface UpgradeMetrics {
  security_rejections: number;
  invalid_ws_keys: number;
  successful_auths: number;
  /** Upgrades refused with 503 WEBSOCKET_AUTH_BUSY (the room authorizer had too much waiting). */
  room_auth_busy: number;
  /** Room authorizations whose client hung up before the verdict. */
  room_auth_abandoned: number;
  /** Upgrades refused with 503 WEBSOCKET_AUTH_UNAVAILABLE: the authenticator or room authorizer threw or rejected. */
  auth_errors: number;
}

/** Which step's user code failed. */
export type AuthStage = 'token' | 'room';

export interface UpgradeConfig {
  hub: Hub;
  connection: ConnectionOptions;
  handlers: ConnectionHandlers;
  allowedOrigins: readonly string[];
  allowAllOrigins: boolean;
  allowUnauthenticated: boolean;
  allowQueryToken: boolean;
  tokenAuthenticator?: TokenAuthenticator | undefined;
  roomAuthorizer?: RoomAuthorizer | undefined;
  selectProtocol?: ProtocolSelector | undefined;
  metrics: UpgradeMetrics;
  /** Connections per user (token `sub`); absent = unlimited. */
  userLimit?: UserConnectionLimit | undefined;
  /** Room-password lockouts per client address and room; absent = none. */
  passwordLockout?: PasswordLockout | undefined;
  /** Called for every refused upgrade (for logs). */
  onReject?: ((request: UpgradeRequest, rejection: Rejection) => void) | undefined;
  /**
   * Called when the token authenticator or room authorizer throws or
   * rejects (anything but a refusal), before the 503 is written. `error`
   * is the user code's own error; the token and password are not passed.
   */
  onAuthError?: ((request: UpgradeRequest, stage: AuthStage, error: unknown) => void) | undefined;
  /** Called with every new connection, after it joined its room. */
  onConnect?: ((conn: Connection, request: UpgradeRequest) => void) | undefined;
  /** permessage-deflate of this endpoint; null or unset = never negotiated. */
  deflate?: DeflateEndpoint | null | undefined;
}

/** The outcome of the token step. */
interface Identity {
  user: UserInfo | undefined;
  /** Whether the token came in a subprotocol (the browser path). */
  viaProtocol: boolean;
}

/** A step's result, when the step may have to wait (token and room checks with async authorizers). */
type MaybeAsync<T> = T | Promise<T>;

/**
 * Runs the pipeline for one upgrade request. Returns the new Connection, or
 * null when the request was refused (the refusal has been written to the
 * socket). The result is a Promise only when a step had to wait, so an
 * unauthenticated upgrade allocates no promises. `client` is the client's
 * address (the peer, or what a trusted proxy forwarded; default the peer)
 * and `lockout` whether room-password lockouts apply to it.
 */
export function handleUpgrade(
  request: UpgradeRequest,
  socket: Duplex,
  head: Buffer,
  config: UpgradeConfig,
  client: string | undefined = request.socket.remoteAddress,
  lockout = true,
): MaybeAsync<Connection | null> {
  const refuse = (r: Rejection): null => {
    // The handshake deadline may have closed the socket while a step waited.
    if (socket.destroyed) return null;
    config.onReject?.(request, r);
    reject({ socket }, r);
    return null;
  };

  const h = readHandshake(request);
  const early =
    checkOrigin(h, config) ??
    checkMethod(h) ??
    checkRequest(h) ??
    checkUpgradeHeaders(h) ??
    checkVersion(h) ??
    countInvalidKey(checkKey(h), config.metrics) ??
    checkSubprotocols(h) ??
    checkRoom(h, config);
  if (early !== null) return refuse(early);
  // Checked above: the list is within its cap.
  const offered = h.subprotocols!;

  return then(authenticate(h, offered, config, request), (identity) => {
    if ('status' in identity) return refuse(identity);
    const lockoutKey = lockout && config.passwordLockout?.enabled ? addressKey(client) : undefined;
    if (lockoutKey !== undefined && config.roomAuthorizer !== undefined) {
      const seconds = config.passwordLockout!.lockedFor(lockoutKey, h.room);
      if (seconds > 0)
        return refuse(refusal(HttpRejection.ROOM_LOCKED, undefined, { 'Retry-After': String(seconds) }));
    }
    return then(authorizeRoom(request, socket, h, identity.user, config, client), (denied) => {
      if (config.roomAuthorizer !== undefined && config.passwordLockout !== undefined) {
        if (denied === null) {
          if (lockoutKey !== undefined) config.passwordLockout.succeed(lockoutKey, h.room);
        } else if (denied.code === HttpRejection.ROOM_FORBIDDEN.code) {
          config.passwordLockout.fail(lockoutKey, h.room);
        }
      }
      if (denied !== null) return refuse(denied);

      // The seed's capacity pre-check, before any Connection is built.
      const full = capacityRejection(config.hub.checkJoin(h.room));
      if (full !== null) return refuse(full);

      if (socket.destroyed) return null;
      const joined = join(request, socket, head, h, identity, offered, config, client);
      return joined instanceof Connection ? joined : refuse(joined);
    });
  });
}

/** Continues with `next` at once for a plain value, or after the promise settles. */
function then<T, R>(value: MaybeAsync<T>, next: (value: T) => MaybeAsync<R>): MaybeAsync<R> {
  return value instanceof Promise ? value.then(next) : next(value);
}

// ---- step 1: origin --------------------------------------------------------

/** Browsers send Origin; other clients usually do not, and are allowed. `*` is not a wildcard. */
export function checkOrigin(
  h: Handshake,
  config: Pick<UpgradeConfig, 'allowedOrigins' | 'allowAllOrigins' | 'metrics'>,
): Rejection | null {
  const origin = h.origin;
  if (origin === undefined || origin === '' || config.allowAllOrigins) return null;
  if (config.allowedOrigins.includes(origin)) return null;
  config.metrics.security_rejections++;
  return refusal(HttpRejection.ORIGIN_FORBIDDEN);
}

// ---- step 5 bookkeeping ------------------------------------------------------

function countInvalidKey(r: Rejection | null, metrics: UpgradeMetrics): Rejection | null {
  if (r !== null) metrics.invalid_ws_keys++;
  return r;
}

// ---- step 6: room ------------------------------------------------------------

function checkRoom(h: Handshake, config: UpgradeConfig): Rejection | null {
  return config.hub.isValidRoom(h.room) ? null : refusal(HttpRejection.INVALID_ROOM);
}

// ---- step 7: token -----------------------------------------------------------

/**
 * Finds the token: `Authorization: Bearer` first, then the browser
 * subprotocol, then `?token=` when allowed. A token that is present but
 * invalid (InvalidTokenError) is refused with 403, with no anonymous
 * fallback; any other failure of the authenticator is an outage (503).
 */
function authenticate(
  h: Handshake,
  offered: readonly string[],
  config: UpgradeConfig,
  request: UpgradeRequest,
): MaybeAsync<Identity | Rejection> {
  const found = findToken(h, offered, config.allowQueryToken);
  if (found === undefined) {
    if (config.allowUnauthenticated) return { user: undefined, viaProtocol: false };
    config.metrics.security_rejections++;
    return { ...refusal(HttpRejection.TOKEN_REQUIRED), reason: 'missing' };
  }
  const invalid = (reason: string, detail?: string): Rejection => {
    config.metrics.security_rejections++;
    const r: Rejection = { ...refusal(HttpRejection.INVALID_TOKEN), reason };
    if (detail !== undefined) r.detail = detail;
    return r;
  };
  const authenticator = config.tokenAuthenticator;
  if (authenticator === undefined) return invalid('unconfigured');
  const failed = (error: unknown): Rejection =>
    error instanceof InvalidTokenError
      ? invalid(error.reason, error.message)
      : unavailable(request, 'token', error, config);
  try {
    return authenticator.authenticate(found.token).then((user): Identity => {
      config.metrics.successful_auths++;
      return { user, viaProtocol: found.viaProtocol };
    }, failed);
  } catch (error) {
    // A custom authenticator may throw before it returns its promise.
    return failed(error);
  }
}

/** The answer when user auth code failed rather than refused: reported, then 503. */
function unavailable(
  request: UpgradeRequest,
  stage: AuthStage,
  error: unknown,
  config: UpgradeConfig,
): Rejection {
  config.metrics.auth_errors++;
  config.onAuthError?.(request, stage, error);
  return refusal(HttpRejection.AUTH_UNAVAILABLE);
}

function findToken(
  h: Handshake,
  offered: readonly string[],
  allowQuery: boolean,
): { token: string; viaProtocol: boolean } | undefined {
  const header = h.authorization;
  if (header !== undefined) {
    const match = /^bearer\s+(\S+)\s*$/i.exec(header);
    // A malformed Authorization header is a present-but-invalid token.
    return { token: match?.[1] ?? '', viaProtocol: false };
  }
  const carried = offered.find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX));
  if (carried !== undefined)
    return { token: carried.slice(BEARER_PROTOCOL_PREFIX.length), viaProtocol: true };
  if (allowQuery && h.queryToken !== undefined) return { token: h.queryToken, viaProtocol: false };
  return undefined;
}

// ---- step 8: room authorization ----------------------------------------------

/**
 * Asks the room authorizer. Its context carries an AbortSignal that aborts
 * when the client hangs up before the verdict, so costly checks (password
 * hashing) are skipped for clients already gone. `false` is a 403; a
 * RoomAuthBusyError becomes 503 WEBSOCKET_AUTH_BUSY with Retry-After, and
 * any other error 503 WEBSOCKET_AUTH_UNAVAILABLE: a failing authorizer is
 * an outage, not a verdict on the client.
 */
function authorizeRoom(
  request: UpgradeRequest,
  socket: Duplex,
  h: Handshake,
  user: UserInfo | undefined,
  config: UpgradeConfig,
  client: string | undefined,
): MaybeAsync<Rejection | null> {
  const authorizer = config.roomAuthorizer;
  if (authorizer === undefined) return null;
  const verdict = (allowed: boolean): Rejection | null => {
    if (allowed) return null;
    config.metrics.security_rejections++;
    return refusal(HttpRejection.ROOM_FORBIDDEN);
  };
  const controller = new AbortController();
  const stopWatching = watchHangup(socket, controller);
  const failed = (error: unknown): Rejection | null => {
    stopWatching();
    if (error instanceof RoomAuthBusyError) {
      config.metrics.room_auth_busy++;
      return refusal(HttpRejection.AUTH_BUSY, undefined, {
        'Retry-After': String(Math.max(1, Math.ceil(error.retryAfterSeconds))),
      });
    }
    if (controller.signal.aborted) {
      // Nobody is left to read the answer; this was no verdict on the password.
      config.metrics.room_auth_abandoned++;
      return refusal(HttpRejection.ROOM_FORBIDDEN);
    }
    return unavailable(request, 'room', error, config);
  };
  try {
    const allowed = authorizer.authorize({
      request,
      room: h.room,
      password: h.password,
      user,
      claims: user?.claims,
      signal: controller.signal,
      clientAddress: client,
    });
    if (!(allowed instanceof Promise)) {
      stopWatching();
      return verdict(allowed);
    }
    return allowed.then((ok) => {
      stopWatching();
      return verdict(ok);
    }, failed);
  } catch (error) {
    return failed(error);
  }
}

/**
 * Why a room authorization was aborted. Authorizers see it as
 * `signal.reason`, so it carries a code like every wshub error; its name
 * stays 'AbortError', the name abort reasons conventionally have.
 */
class ClientGoneError extends WshubError {
  constructor() {
    super('CLIENT_GONE', 'the client closed its connection during the upgrade');
    this.name = 'AbortError';
  }
}

/**
 * Aborts `controller` once the client hangs up; returns the function that
 * stops watching. A reset shows as 'close' or 'error'; a plain FIN only as
 * the end of the readable side, which a socket nobody reads never reports,
 * so a 'readable' listener peeks with read(0) (which never consumes bytes:
 * data a client sent early stays buffered for the connection).
 */
function watchHangup(socket: Duplex, controller: AbortController): () => void {
  const gone = (): void => {
    if (!controller.signal.aborted) controller.abort(new ClientGoneError());
  };
  if (socket.destroyed || socket.readableEnded) {
    gone();
    return () => {};
  }
  const peek = (): void => {
    if (socket.readableLength === 0) socket.read(0);
  };
  socket.on('close', gone);
  socket.on('end', gone);
  socket.on('error', gone);
  socket.on('readable', peek);
  return () => {
    socket.off('close', gone);
    socket.off('end', gone);
    socket.off('error', gone);
    socket.off('readable', peek);
  };
}

/**
 * The browser path selects BROWSER_PROTOCOL when the client offered it, and
 * never echoes the token-carrying entry.
 */
function browserProtocol(offered: readonly string[]): string | undefined {
  return offered.includes(BROWSER_PROTOCOL) ? BROWSER_PROTOCOL : undefined;
}

// ---- steps 9 and 10: capacity and join -----------------------------------------

/** Maps a refused join to its HTTP answer: 429 for a full room, 503 otherwise. */
export function capacityRejection(result: JoinResult): Rejection | null {
  if (result.ok) return null;
  switch (result.reason) {
    case 'room_full':
      return refusal(HttpRejection.ROOM_FULL);
    case 'hub_full':
      return refusal(HttpRejection.HUB_FULL);
    case 'rate_limited':
      return refusal(HttpRejection.RATE_LIMITED, undefined, { 'Retry-After': '1' });
    case 'stopped':
      return refusal(HttpRejection.SHUTTING_DOWN);
    default:
      return refusal(HttpRejection.INVALID_ROOM);
  }
}

/**
 * Joins the room and writes the 101, synchronously. Returns the refusal
 * (nothing written) when the hub refuses the join: the join itself is the
 * admission check, and its result says why.
 */
function join(
  request: UpgradeRequest,
  socket: Duplex,
  head: Buffer,
  h: Handshake,
  identity: Identity,
  offered: readonly string[],
  config: UpgradeConfig,
  client: string | undefined,
): Connection | Rejection {
  const protocol = identity.viaProtocol
    ? browserProtocol(offered)
    : selectProtocol(request, config.selectProtocol, offered);
  const key = h.key!;
  const userId = identity.user?.id ?? '';
  const users = config.userLimit;
  if (users !== undefined && !users.tryAcquire(userId))
    return refusal(HttpRejection.USER_CONNECTION_LIMIT, undefined, { 'Retry-After': '1' });
  const session = negotiateExtensions(request, config.deflate);
  const conn = new Connection(
    socket as Socket,
    config.connection,
    config.handlers,
    protocol,
    undefined,
    'server',
    session,
  );
  const joined = config.hub.tryJoin(h.room, conn);
  if (!joined.ok) {
    conn.detach();
    users?.release(userId);
    return capacityRejection(joined) ?? refusal(HttpRejection.JOIN_FAILED);
  }
  conn.user = identity.user;
  conn.clientAddress = client;
  socket.write(acceptResponse(key, protocol, extensionHeaders(session)));
  config.onConnect?.(conn, request);
  if (head.length > 0) conn.receive(head);
  return conn;
}

// ---- the channel endpoint ----------------------------------------------------------

/** What the channel endpoint's upgrade needs: the seed's HTTP checks, capacity, and the channel node. */
export interface ChannelUpgradeConfig extends Pick<
  UpgradeConfig,
  'hub' | 'allowedOrigins' | 'allowAllOrigins' | 'metrics' | 'onReject' | 'deflate'
> {
  /** Options of channel connections. */
  connection: ConnectionOptions;
  /** Takes the new connection (the channel node), with the token of an `Authorization: Bearer` header. */
  accept: (conn: Connection, headerToken: string | undefined) => void;
  handlers: ConnectionHandlers;
  /** Subprotocols the endpoint speaks, in its order of preference; the first one offered is selected (`conn.protocol`). */
  protocols?: readonly string[];
}

/**
 * The channel endpoint's upgrade: origin → method → Host and body → upgrade headers →
 * version → key → subprotocol list → capacity → 101. There is no room and
 * no token step: the token comes in the connect command, which the channel
 * session waits for within its connect timeout. Synchronous; returns the
 * Connection or null when refused.
 */
export function handleChannelUpgrade(
  request: UpgradeRequest,
  socket: Duplex,
  head: Buffer,
  config: ChannelUpgradeConfig,
  client: string | undefined = request.socket.remoteAddress,
): Connection | null {
  const h = readHandshake(request);
  const refused =
    checkOrigin(h, config) ??
    checkMethod(h) ??
    checkRequest(h) ??
    checkUpgradeHeaders(h) ??
    checkVersion(h) ??
    countInvalidKey(checkKey(h), config.metrics) ??
    checkSubprotocols(h) ??
    capacityRejection(config.hub.admitConnection(true));
  if (refused !== null) {
    config.onReject?.(request, refused);
    reject({ socket }, refused);
    return null;
  }
  if (socket.destroyed) return null;
  // The first subprotocol of the endpoint's the client offers (the protobuf encoding); none: JSON.
  const offered = h.subprotocols!;
  const protocol = config.protocols?.find((p) => offered.includes(p));
  const session = negotiateExtensions(request, config.deflate);
  const conn = new Connection(
    socket as Socket,
    config.connection,
    config.handlers,
    protocol,
    undefined,
    'server',
    session,
  );
  conn.clientAddress = client;
  socket.write(acceptResponse(h.key!, protocol, extensionHeaders(session)));
  const header =
    h.authorization === undefined ? undefined : /^bearer\s+(\S+)\s*$/i.exec(h.authorization)?.[1];
  config.accept(conn, header);
  if (head.length > 0) conn.receive(head);
  return conn;
}
