/** Why a token was rejected; stable strings meant for logs and metrics labels. */
export type InvalidTokenReason =
  'malformed' | 'algorithm' | 'signature' | 'expired' | 'not_before' | 'claims' | 'unconfigured';

/**
 * Thrown (as a rejection) by token authenticators for every kind of bad token.
 * Takes a human message and a machine-friendly reason; the upgrade pipeline maps
 * it to 403 WEBSOCKET_INVALID_TOKEN.
 */
export class InvalidTokenError extends Error {
  readonly code = 'WEBSOCKET_INVALID_TOKEN';
  readonly reason: InvalidTokenReason;

  constructor(message: string, reason: InvalidTokenReason) {
    super(message);
    this.name = 'InvalidTokenError';
    this.reason = reason;
  }
}

/**
 * Thrown when a secret is shorter than 32 bytes (or missing where one is required).
 * `field` names the configuration field at fault, e.g. 'secret' or 'broadcastSecret'.
 */
export class WeakSecretError extends Error {
  readonly code = 'WEAK_SECRET';
  readonly field: string;

  constructor(message: string, field = 'secret') {
    super(message);
    this.name = 'WeakSecretError';
    this.field = field;
  }
}

/** Thrown when the admin broadcast secret is the same as the token secret. */
export class SecretReuseError extends Error {
  readonly code = 'SECRET_REUSED';

  constructor(message = 'broadcastSecret must differ from secret') {
    super(message);
    this.name = 'SecretReuseError';
  }
}

/**
 * Thrown when setting a room password that is not acceptable.
 * `reason` is one of the strings returned by `validateRoomPassword`
 * ('empty', 'too_long', 'too_short', 'missing_uppercase', 'missing_lowercase', 'missing_digit').
 */
export class InvalidRoomPasswordError extends Error {
  readonly code = 'INVALID_ROOM_PASSWORD';
  readonly reason: string;

  constructor(message: string, reason: string) {
    super(message);
    this.name = 'InvalidRoomPasswordError';
    this.reason = reason;
  }
}

/**
 * Thrown (as a rejection) by a room authorizer that cannot take one more
 * check right now (RoomPasswords: too many password checks waiting). The
 * upgrade pipeline maps it to 503 WEBSOCKET_AUTH_BUSY with Retry-After.
 */
export class RoomAuthBusyError extends Error {
  readonly code = 'ROOM_AUTH_BUSY';
  /** Seconds the client should wait before trying again (the Retry-After value). */
  readonly retryAfterSeconds: number;

  constructor(message = 'too many room authorizations waiting', retryAfterSeconds = 1) {
    super(message);
    this.name = 'RoomAuthBusyError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}
