import { createSecretKey, type KeyObject } from 'node:crypto';
import {
  CompactSign,
  compactVerify,
  decodeProtectedHeader,
  errors as joseErrors,
  type JWTVerifyGetKey,
} from 'jose';
import { InvalidTokenError, TokenKeysUnavailableError, type InvalidTokenReason } from './errors.ts';
import { strongSecret } from './secret.ts';
import { verificationKey } from './web-crypto-key.ts';
import { userInfoFromClaims, type UserInfo } from './user.ts';

/** Turns a bearer token into a user, or rejects with InvalidTokenError. */
export interface TokenAuthenticator {
  authenticate(token: string): Promise<UserInfo>;
}

/** Optional claim checks of the token authenticators. */
export interface HS256Options {
  /** Clock skew tolerated for `exp` and `nbf`, in seconds (default 0). */
  leewaySeconds?: number;
  /** When set, the `iss` claim must equal this value or one of these values. */
  issuer?: string | string[];
  /** When set, the `aud` claim (string or array) must contain one of these values. */
  audience?: string | string[];
  /** When true, tokens without `exp` are rejected (default false, as in the seed). */
  requireExp?: boolean;
  /** Current time in milliseconds; only tests need to replace it. */
  now?: () => number;
  /** Verified tokens remembered so a repeated token skips the signature check (default 1024; 0 = off). */
  cacheSize?: number;
}

/** Claim checks of any JWT authenticator (the same as HS256's). */
export type TokenClaimOptions = HS256Options;

/** Tokens longer than this are rejected before any parsing (Node's header limit is 16 KiB anyway). */
export const MAX_TOKEN_LENGTH = 16 * 1024;

const BASE64URL_PART = /^[A-Za-z0-9_-]*$/;
const ALGORITHM = 'HS256';

/**
 * Where a token's verification key comes from, given its protected header:
 * the key and the one algorithm it may be used with, or a JWKS resolver.
 * Throws InvalidTokenError ('algorithm') for an algorithm no key takes.
 */
export interface TokenKeyResolver {
  /** Whether verified tokens may be remembered (keys that never change). */
  readonly cacheable: boolean;
  resolve(header: { alg?: string; kid?: string }): ResolvedTokenKey;
}

/** A key for one algorithm, or a resolver of a key set (JWKS) restricted to `algorithms`. */
export type ResolvedTokenKey =
  { key: KeyObject; algorithms: [string] } | { key: JWTVerifyGetKey; algorithms: string[] };

/**
 * JWT authenticator over a key resolver: format, algorithm (pinned per
 * key), signature, then the seed's claim rules. `authenticate` resolves to
 * the token's UserInfo or rejects with InvalidTokenError, whose `reason`
 * tells an expired token from a bad signature; a key set that cannot be
 * fetched rejects with TokenKeysUnavailableError (an outage, not a verdict).
 */
export class JwtAuthenticator implements TokenAuthenticator {
  readonly #keys: TokenKeyResolver;
  readonly #leeway: number;
  readonly #issuers: readonly string[] | undefined;
  readonly #audiences: readonly string[] | undefined;
  readonly #requireExp: boolean;
  readonly #now: () => number;
  /**
   * Tokens whose signature was verified, with their claims. The same token
   * string always verifies the same way under a fixed key, so a reconnect
   * (or a reconnect storm) skips the signature check; the time-based claims
   * are checked again on every use. Bounded; the oldest entries are evicted
   * first. Off for key sets, whose keys may be withdrawn.
   */
  readonly #verified = new Map<string, Record<string, unknown>>();
  readonly #cacheSize: number;

  constructor(keys: TokenKeyResolver, options: TokenClaimOptions = {}) {
    this.#keys = keys;
    const leeway = options.leewaySeconds ?? 0;
    if (!Number.isFinite(leeway) || leeway < 0) {
      throw new RangeError('leewaySeconds must be a finite number >= 0');
    }
    this.#leeway = leeway;
    this.#issuers = optionList(options.issuer, 'issuer');
    this.#audiences = optionList(options.audience, 'audience');
    this.#requireExp = options.requireExp ?? false;
    this.#now = options.now ?? Date.now;
    this.#cacheSize = keys.cacheable ? (options.cacheSize ?? 1024) : 0;
  }

  /** Verifies `token` (format, algorithm, signature, then claims) and returns its user. */
  async authenticate(token: string): Promise<UserInfo> {
    const cached = this.#verified.get(token);
    if (cached !== undefined) {
      this.#checkClaims(cached);
      return userInfoFromClaims(cached);
    }
    checkFormat(token);
    let header: { alg?: string; kid?: string };
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new InvalidTokenError('token header is malformed', 'malformed');
    }
    const resolved = this.#keys.resolve(header);
    let payload: Uint8Array;
    try {
      ({ payload } = await (resolved.key instanceof Function
        ? compactVerify(token, resolved.key, { algorithms: resolved.algorithms })
        : compactVerify(token, await verificationKey(resolved.key, resolved.algorithms[0]), {
            algorithms: resolved.algorithms,
          })));
    } catch (err) {
      throw fromJoseError(err, resolved.algorithms);
    }
    const claims = parseClaims(payload);
    this.#checkClaims(claims);
    this.#remember(token, claims);
    return userInfoFromClaims(claims);
  }

  #remember(token: string, claims: Record<string, unknown>): void {
    if (this.#cacheSize === 0) return;
    if (this.#verified.size >= this.#cacheSize) {
      const oldest = this.#verified.keys().next().value;
      if (oldest !== undefined) this.#verified.delete(oldest);
    }
    this.#verified.set(token, claims);
  }

  #checkClaims(claims: Record<string, unknown>): void {
    const nowSeconds = Math.floor(this.#now() / 1000);
    const exp = numericDateClaim(claims, 'exp');
    if (exp === undefined && this.#requireExp) {
      throw new InvalidTokenError('token has no "exp" claim', 'claims');
    }
    // The seed's rule: expired only once now is past exp (a token is valid during its exp second).
    if (exp !== undefined && nowSeconds > exp + this.#leeway) {
      throw new InvalidTokenError('token has expired', 'expired');
    }
    const nbf = numericDateClaim(claims, 'nbf');
    if (nbf !== undefined && nowSeconds + this.#leeway < nbf) {
      throw new InvalidTokenError('token is not valid yet', 'not_before');
    }
    if (this.#issuers !== undefined) {
      if (typeof claims.iss !== 'string' || !this.#issuers.includes(claims.iss)) {
        throw new InvalidTokenError('unexpected "iss" claim', 'issuer');
      }
    }
    const audiences = this.#audiences;
    if (audiences !== undefined) {
      const aud = claims.aud;
      const values = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? (aud as unknown[]) : [];
      if (!values.some((v) => typeof v === 'string' && audiences.includes(v))) {
        throw new InvalidTokenError('unexpected "aud" claim', 'audience');
      }
    }
  }
}

/** A secret key, for HS256 only. */
export function secretKeyResolver(secret: Uint8Array | string): TokenKeyResolver {
  // A KeyObject holds its own copy of the bytes, so the caller's buffer is not referenced.
  const key = createSecretKey(strongSecret(secret));
  return {
    cacheable: true,
    resolve(header) {
      if (header.alg !== ALGORITHM) throw algorithmRefused(header.alg);
      return { key, algorithms: [ALGORITHM] };
    },
  };
}

/** The InvalidTokenError for a token whose algorithm no configured key takes. */
export function algorithmRefused(alg: unknown): InvalidTokenError {
  const name = typeof alg === 'string' ? JSON.stringify(alg.slice(0, 16)) : 'missing';
  return new InvalidTokenError(`token algorithm ${name} is not accepted`, 'algorithm');
}

/**
 * HS256 (HMAC-SHA256) JWT authenticator. Takes a secret of at least 32 bytes
 * (copied; throws WeakSecretError otherwise) and optional claim checks.
 * `authenticate` resolves to the token's UserInfo or rejects with InvalidTokenError.
 */
export class HS256TokenAuthenticator extends JwtAuthenticator {
  constructor(secret: Uint8Array | string, options: HS256Options = {}) {
    super(secretKeyResolver(secret), options);
  }
}

/**
 * Signs `claims` as an HS256 JWT. Takes the claims, a secret of at least 32 bytes
 * and optionally a lifetime that sets `exp` (now + seconds, whole seconds);
 * returns the compact token. Claims are written as given, without validation,
 * so tests can also produce tokens with unusual claims.
 */
export async function signHS256(
  claims: Record<string, unknown>,
  secret: Uint8Array | string,
  options: { expiresInSeconds?: number } = {},
): Promise<string> {
  const key = createSecretKey(strongSecret(secret));
  const body: Record<string, unknown> = { ...claims };
  if (options.expiresInSeconds !== undefined) {
    if (!Number.isFinite(options.expiresInSeconds)) {
      throw new RangeError('expiresInSeconds must be a finite number');
    }
    body.exp = Math.floor(Date.now() / 1000) + Math.floor(options.expiresInSeconds);
  }
  const payload = new TextEncoder().encode(JSON.stringify(body));
  return new CompactSign(payload).setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' }).sign(key);
}

/**
 * Returns when the user's token expires, in milliseconds since the epoch, or
 * undefined when its claims carry no valid `exp`. Used to close live connections
 * whose token runs out.
 */
export function tokenExpiry(user: UserInfo): number | undefined {
  const exp = user.claims.exp;
  return isNumericDate(exp) ? exp * 1000 : undefined;
}

function optionList(value: string | string[] | undefined, name: string): string[] | undefined {
  if (value === undefined) return undefined;
  const list = typeof value === 'string' ? [value] : [...value];
  if (list.length === 0 || list.some((v) => typeof v !== 'string')) {
    throw new TypeError(`${name} must be a string or a non-empty array of strings`);
  }
  return list;
}

// jose tolerates some inputs we want to refuse outright (padding, stray
// characters), and a clear 'malformed' beats whatever the decoder would say.
function checkFormat(token: unknown): asserts token is string {
  if (typeof token !== 'string' || token.length === 0) {
    throw new InvalidTokenError('token is empty', 'malformed');
  }
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new InvalidTokenError('token is too long', 'malformed');
  }
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw new InvalidTokenError('token must have exactly three parts', 'malformed');
  }
  for (const [i, part] of parts.entries()) {
    // The signature may be empty here so that alg "none" is reported as an algorithm problem.
    if ((i < 2 && part.length === 0) || !BASE64URL_PART.test(part) || part.length % 4 === 1) {
      throw new InvalidTokenError('token part is not base64url', 'malformed');
    }
  }
}

/**
 * A verification failure as InvalidTokenError; a key set that could not be
 * fetched as TokenKeysUnavailableError (rethrown as is).
 */
function fromJoseError(err: unknown, algorithms: readonly string[]): Error {
  if (err instanceof TokenKeysUnavailableError) return err;
  let reason: InvalidTokenReason = 'malformed';
  let message = 'token is malformed';
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
    reason = 'algorithm';
    message = `token algorithm is not ${algorithms.join(' or ')}`;
  } else if (err instanceof joseErrors.JWKSNoMatchingKey) {
    reason = 'key';
    message = 'no key of the key set matches the token';
  } else if (
    err instanceof joseErrors.JWKSTimeout ||
    err instanceof joseErrors.JWKSInvalid ||
    !(err instanceof joseErrors.JOSEError) ||
    err.code === 'ERR_JOSE_GENERIC'
  ) {
    // The key set could not be fetched or read: nothing is known about the token.
    return new TokenKeysUnavailableError(err);
  } else if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    reason = 'signature';
    message = 'token signature is invalid';
  }
  return new InvalidTokenError(message, reason);
}

function parseClaims(payload: Uint8Array): Record<string, unknown> {
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    throw new InvalidTokenError('token payload is not JSON', 'malformed');
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    throw new InvalidTokenError('token payload is not a JSON object', 'claims');
  }
  return claims as Record<string, unknown>;
}

function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

// jose accepts any number; the seed (and wshub) require whole, non-negative seconds.
function numericDateClaim(claims: Record<string, unknown>, name: 'exp' | 'nbf'): number | undefined {
  const value = claims[name];
  if (value === undefined) return undefined;
  if (!isNumericDate(value)) {
    throw new InvalidTokenError(`"${name}" claim must be a non-negative integer`, 'claims');
  }
  return value;
}
