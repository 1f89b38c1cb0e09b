/**
 * HS256 verification of a compact JWS with node:crypto, synchronously.
 *
 * jose verifies HMAC through WebCrypto: every token costs a key import and
 * an asynchronous job on the thread pool, several times the HMAC itself.
 * This module runs the same checks, in the same order and with the same
 * outcome for every input, with one `createHmac` and a constant-time
 * compare on the calling thread. What it reproduces of jose's compact
 * verification (RFC 7515), for a token already past `checkFormat`:
 *
 * - the protected header: base64url, strict UTF-8 (a leading BOM dropped,
 *   as TextDecoder does), JSON, a plain object;
 * - `crit`: absent, or a non-empty array of non-empty strings naming only
 *   `b64`, which must then be present; an unknown name is jose's
 *   "not supported" (reported as an algorithm problem, as for jose);
 * - `b64`: a boolean when `crit` names it; `false` means the payload part
 *   is the payload's bytes as sent rather than base64url of them;
 * - the signature: base64url of exactly the 32 bytes of HMAC-SHA256 over
 *   the ASCII of `header.payload`.
 *
 * `alg` is the caller's to check before (the key resolver pins it to
 * HS256), as in the jose path. Claims are the caller's too.
 */
import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';
import { InvalidTokenError } from './errors.ts';

/** Bytes of an HMAC-SHA256 signature. */
const SIGNATURE_BYTES = 32;

/** jose's protected-header decoder: fatal on bad UTF-8, and a BOM is dropped. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The refusal for anything wrong with the token's structure. */
function malformed(message = 'token is malformed'): InvalidTokenError {
  return new InvalidTokenError(message, 'malformed');
}

/**
 * Whether `value` is a plain object as jose's `isObject` reads it (what
 * JSON.parse gives for `{…}`; not an array, not null).
 */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  if (Object.prototype.toString.call(value) !== '[object Object]') return false;
  const prototype = Object.getPrototypeOf(value) as object | null;
  return prototype === null || Object.getPrototypeOf(prototype) === null;
}

/**
 * The protected header of a compact token (its first part), as jose's
 * decodeProtectedHeader reads it; InvalidTokenError ('malformed') when it
 * is not base64url of a JSON object. The token must have passed the
 * format check (three base64url parts).
 */
export function decodeTokenHeader(token: string): Record<string, unknown> {
  const dot = token.indexOf('.');
  let header: unknown;
  try {
    header = JSON.parse(strictUtf8.decode(Buffer.from(token.slice(0, dot), 'base64url')));
  } catch {
    throw malformed('token header is malformed');
  }
  if (!isPlainObject(header)) throw malformed('token header is malformed');
  return header;
}

/**
 * Verifies an HS256 compact token whose header was decoded by
 * decodeTokenHeader, with `key` (a secret KeyObject). Returns the payload's
 * bytes; throws InvalidTokenError with reason 'malformed' (crit, b64),
 * 'algorithm' (an extension it does not support) or 'signature'.
 */
export function verifyHs256(token: string, header: Record<string, unknown>, key: KeyObject): Buffer {
  const b64 = payloadEncoded(header);
  const firstDot = token.indexOf('.');
  const secondDot = token.indexOf('.', firstDot + 1);
  const signature = Buffer.from(token.slice(secondDot + 1), 'base64url');
  const mac = createHmac('sha256', key).update(token.slice(0, secondDot), 'latin1').digest();
  if (signature.length !== SIGNATURE_BYTES || !timingSafeEqual(mac, signature)) {
    throw new InvalidTokenError('token signature is invalid', 'signature');
  }
  const payload = token.slice(firstDot + 1, secondDot);
  return b64 ? Buffer.from(payload, 'base64url') : Buffer.from(payload, 'latin1');
}

/**
 * The `crit` and `b64` rules (RFC 7515 §4.1.11, RFC 7797): whether the
 * payload part is base64url-encoded (true unless `b64: false` is declared
 * critical).
 */
function payloadEncoded(header: Record<string, unknown>): boolean {
  const crit = header.crit;
  if (crit === undefined) return true;
  if (
    !Array.isArray(crit) ||
    crit.length === 0 ||
    crit.some((name) => typeof name !== 'string' || name.length === 0)
  ) {
    throw malformed();
  }
  for (const name of crit as string[]) {
    if (name !== 'b64') throw new InvalidTokenError('token algorithm is not HS256', 'algorithm');
    if (!Object.hasOwn(header, name) || header[name] === undefined) throw malformed();
  }
  const b64 = header.b64;
  if (typeof b64 !== 'boolean') throw malformed();
  return b64;
}
