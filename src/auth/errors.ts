import { WshubError } from '../errors.ts';

/** Why a token was rejected; stable strings meant for logs and metrics labels. */
export type InvalidTokenReason =
  | 'malformed'
  | 'algorithm'
  | 'signature'
  | 'expired'
  | 'not_before'
  | 'claims'
  | 'issuer'
  | 'audience'
  /** No key of the key set (JWKS) has the token's `kid`, even after a refetch. */
  | 'key'
  | 'unconfigured';

/**
 * Thrown (as a rejection) by token authenticators for every kind of bad token.
 * Takes a human message and a machine-friendly reason; the upgrade pipeline maps
 * it to 403 WEBSOCKET_INVALID_TOKEN. Any other error from an authenticator is
 * an outage and answers 503 WEBSOCKET_AUTH_UNAVAILABLE.
 */
export class InvalidTokenError extends WshubError {
  declare readonly code: 'WEBSOCKET_INVALID_TOKEN';
  readonly reason: InvalidTokenReason;

  constructor(message: string, reason: InvalidTokenReason) {
    super('WEBSOCKET_INVALID_TOKEN', message);
    this.reason = reason;
  }
}

/**
 * Thrown when a secret is shorter than 32 bytes (or missing where one is required).
 * `field` names the configuration field at fault, e.g. 'secret' or 'broadcastSecret'.
 */
export class WeakSecretError extends WshubError {
  declare readonly code: 'WEAK_SECRET';
  readonly field: string;

  constructor(message: string, field = 'secret') {
    super('WEAK_SECRET', message);
    this.field = field;
  }
}

/** Thrown when the admin broadcast secret is the same as the token secret. */
export class SecretReuseError extends WshubError {
  declare readonly code: 'SECRET_REUSED';

  constructor(message = 'broadcastSecret must differ from secret') {
    super('SECRET_REUSED', message);
  }
}

/**
 * Thrown when setting a room password that is not acceptable.
 * `reason` is one of the strings returned by `validateRoomPassword`
 * ('empty', 'too_long', 'too_short', 'missing_uppercase', 'missing_lowercase', 'missing_digit').
 */
export class InvalidRoomPasswordError extends WshubError {
  declare readonly code: 'INVALID_ROOM_PASSWORD';
  readonly reason: string;

  constructor(message: string, reason: string) {
    super('INVALID_ROOM_PASSWORD', message);
    this.reason = reason;
  }
}

/**
 * Thrown (as a rejection) by a room authorizer that cannot take one more
 * check right now (RoomPasswords: too many password checks waiting). The
 * upgrade pipeline maps it to 503 WEBSOCKET_AUTH_BUSY with Retry-After.
 */
export class RoomAuthBusyError extends WshubError {
  declare readonly code: 'ROOM_AUTH_BUSY';
  /** Seconds the client should wait before trying again (the Retry-After value). */
  readonly retryAfterSeconds: number;

  constructor(message = 'too many room authorizations waiting', retryAfterSeconds = 1) {
    super('ROOM_AUTH_BUSY', message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * The token keys could not be had (a JWKS that cannot be fetched, answers
 * with an error, is too large or is not a key set): no verdict on the
 * token. The upgrade pipeline answers 503 WEBSOCKET_AUTH_UNAVAILABLE; the
 * channel protocol an internal error. `cause` holds the underlying error.
 */
export class TokenKeysUnavailableError extends WshubError {
  declare readonly code: 'TOKEN_KEYS_UNAVAILABLE';

  constructor(cause?: unknown) {
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    super('TOKEN_KEYS_UNAVAILABLE', `token keys are unavailable${detail}`);
    this.cause = cause;
  }
}
