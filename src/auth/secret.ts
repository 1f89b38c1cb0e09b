import { WeakSecretError } from './errors.ts';

/** The smallest secret wshub accepts for HMAC signing (256 bits, as HS256 needs). */
export const MIN_SECRET_BYTES = 32;

/**
 * Returns a fresh copy of a secret as bytes (strings are UTF-8 encoded), so the
 * caller can later wipe or reuse its own buffer without affecting us.
 */
export function secretBytes(secret: Uint8Array | string): Buffer {
  return typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
}

/**
 * Copies a secret and checks that it is at least MIN_SECRET_BYTES long.
 * Takes the secret and the configuration field it came from (for the error);
 * returns the copy or throws WeakSecretError.
 */
export function strongSecret(secret: Uint8Array | string | undefined, field = 'secret'): Buffer {
  if (secret === undefined || (typeof secret !== 'string' && !(secret instanceof Uint8Array))) {
    throw new WeakSecretError(`${field} is required (at least ${MIN_SECRET_BYTES} bytes)`, field);
  }
  const bytes = secretBytes(secret);
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new WeakSecretError(
      `${field} must be at least ${MIN_SECRET_BYTES} bytes, got ${bytes.length}`,
      field,
    );
  }
  return bytes;
}
