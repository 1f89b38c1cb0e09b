import { isValidKey } from '../upgrade/handshake.ts';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SecretReuseError, WeakSecretError } from './errors.ts';
import { MAX_ROOM_PASSWORD_BYTES } from './room-password.ts';
import { MIN_SECRET_BYTES, secretBytes, strongSecret } from './secret.ts';

/** Security-relevant parts of a server configuration, as seen by validateSecurityConfig. */
export interface SecurityConfig {
  secret?: Uint8Array | string;
  broadcastSecret?: Uint8Array | string;
  broadcastEnabled?: boolean;
  allowUnauthenticated?: boolean;
  hasTokenAuthenticator?: boolean;
  hasBroadcastAuthorizer?: boolean;
}

/** Result of validateRoomPassword. */
export type RoomPasswordCheck = { ok: true } | { ok: false; reason: string };

/** Strength rules for room passwords (unless weak passwords are allowed). */
export const ROOM_PASSWORD_MIN_CHARS = 8;
export const ROOM_PASSWORD_MAX_CHARS = 1024;

/**
 * Returns `bytes` cryptographically random bytes for use as a token or broadcast
 * secret. Throws WeakSecretError below 32 bytes and RangeError for a non-integer.
 */
export function generateSecureSecret(bytes = MIN_SECRET_BYTES): Buffer {
  if (!Number.isSafeInteger(bytes)) throw new RangeError('bytes must be an integer');
  if (bytes < MIN_SECRET_BYTES) {
    throw new WeakSecretError(`a secret must be at least ${MIN_SECRET_BYTES} bytes, asked for ${bytes}`);
  }
  return randomBytes(bytes);
}

/**
 * Checks the secrets of a server configuration; returns nothing or throws.
 * - without a custom token authenticator and with authentication required, `secret`
 *   must be at least 32 bytes (WeakSecretError, field 'secret');
 * - with broadcast enabled and no broadcast authorizer, `broadcastSecret` must be at
 *   least 32 bytes (WeakSecretError, field 'broadcastSecret') and differ from
 *   `secret` (SecretReuseError), compared in constant time;
 * - a secret that is given (non-empty) is always held to the 32-byte minimum.
 */
export function validateSecurityConfig(cfg: SecurityConfig): void {
  const secretGiven = isGiven(cfg.secret);
  if ((!cfg.hasTokenAuthenticator && !cfg.allowUnauthenticated) || secretGiven) {
    strongSecret(cfg.secret, 'secret');
  }
  const broadcastSecretInUse = cfg.broadcastEnabled === true && !cfg.hasBroadcastAuthorizer;
  if (broadcastSecretInUse || isGiven(cfg.broadcastSecret)) {
    strongSecret(cfg.broadcastSecret, 'broadcastSecret');
  }
  if (
    broadcastSecretInUse &&
    secretGiven &&
    cfg.secret !== undefined &&
    cfg.broadcastSecret !== undefined &&
    constantTimeEqual(cfg.secret, cfg.broadcastSecret)
  ) {
    throw new SecretReuseError();
  }
}

/**
 * Returns whether `key` is a valid Sec-WebSocket-Key: the base64 encoding of
 * exactly 16 bytes, i.e. 24 characters of the standard alphabet ending in `==`.
 * Like common servers, it does not insist that the unused low bits are zero.
 */
export function validateWebSocketKey(key: string): boolean {
  return isValidKey(key);
}

/**
 * Checks a room password. Always: non-empty and at most 4096 UTF-8 bytes. Unless
 * `allowWeak`: 8 to 1024 characters with an upper-case letter, a lower-case letter
 * and a digit. Returns `{ ok: true }` or `{ ok: false, reason }` where reason is
 * 'empty', 'too_long', 'too_short', 'missing_uppercase', 'missing_lowercase' or 'missing_digit'.
 */
export function validateRoomPassword(pw: string, opts: { allowWeak?: boolean } = {}): RoomPasswordCheck {
  if (typeof pw !== 'string' || pw.length === 0) return { ok: false, reason: 'empty' };
  if (pw.length > MAX_ROOM_PASSWORD_BYTES || Buffer.byteLength(pw, 'utf8') > MAX_ROOM_PASSWORD_BYTES) {
    return { ok: false, reason: 'too_long' };
  }
  if (opts.allowWeak) return { ok: true };
  // Characters are counted as code points, so an emoji counts once.
  const chars = [...pw].length;
  if (chars < ROOM_PASSWORD_MIN_CHARS) return { ok: false, reason: 'too_short' };
  if (chars > ROOM_PASSWORD_MAX_CHARS) return { ok: false, reason: 'too_long' };
  if (!/\p{Lu}/u.test(pw)) return { ok: false, reason: 'missing_uppercase' };
  if (!/\p{Ll}/u.test(pw)) return { ok: false, reason: 'missing_lowercase' };
  if (!/\p{Nd}/u.test(pw)) return { ok: false, reason: 'missing_digit' };
  return { ok: true };
}

// A per-process random key: the HMACs are equal-length whatever the inputs, so
// timingSafeEqual can always run and the lengths leak nothing.
const COMPARE_KEY = randomBytes(32);

/**
 * Compares two secrets (bytes, or strings as UTF-8) in constant time, without an
 * early exit when the lengths differ. Returns true when they are byte-for-byte equal.
 */
export function constantTimeEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  const bytesA = secretBytes(a);
  const bytesB = secretBytes(b);
  const macA = createHmac('sha256', COMPARE_KEY).update(bytesA).digest();
  const macB = createHmac('sha256', COMPARE_KEY).update(bytesB).digest();
  const sameMac = timingSafeEqual(macA, macB);
  return sameMac && bytesA.length === bytesB.length;
}

function isGiven(secret: Uint8Array | string | undefined): boolean {
  return secret !== undefined && secret.length > 0;
}
