/**
 * Token keys beyond the HS256 secret: a public key (PEM SPKI or JWK) for
 * RS256, ES256 or EdDSA, and a JWKS URL. Every key is pinned to one
 * algorithm family: an HS256 token is checked only against the secret,
 * never against a public key used as an HMAC secret (the
 * algorithm-confusion attack), and an asymmetric token never against the
 * secret. A JWKS is fetched through jose's remote key set (cached,
 * refetched once on an unknown `kid` after a cooldown) with a bounded
 * fetch: a timeout, a size cap, and a pause after a failed fetch so a
 * down issuer is not asked again for every token.
 */
import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { CompactSign, createRemoteJWKSet, customFetch, type FetchImplementation } from 'jose';
import { ConfigError } from '../errors.ts';
import { TokenKeysUnavailableError } from './errors.ts';
import {
  algorithmRefused,
  JwtAuthenticator,
  secretKeyResolver,
  type ResolvedTokenKey,
  type TokenAuthenticator,
  type TokenClaimOptions,
  type TokenKeyResolver,
} from './token.ts';

/** The asymmetric algorithms wshub verifies. */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

/** Bounds of a JWKS fetch and its cache. */
export interface JwksOptions {
  /** Abort a fetch (head and body) after this many ms (default 5000). */
  timeoutMs?: number;
  /** Largest key set body accepted, in bytes (default 65536). */
  maxBytes?: number;
  /** After a successful fetch, an unknown `kid` triggers no refetch for this long, in ms (default 30000). */
  cooldownMs?: number;
  /** Keys are refetched when older than this, in ms (default 600000). */
  cacheMaxAgeMs?: number;
  /** After a failed fetch, no new fetch for this long, in ms: tokens meanwhile get the outage answer (default 1000). */
  retryMs?: number;
}

/** Default bounds of a JWKS fetch. */
export const DEFAULT_JWKS_OPTIONS: Required<JwksOptions> = {
  timeoutMs: 5_000,
  maxBytes: 64 * 1024,
  cooldownMs: 30_000,
  cacheMaxAgeMs: 600_000,
  retryMs: 1_000,
};

/** Where a JwtAuthenticator's keys come from; at least one must be given. */
export interface TokenKeyOptions {
  /** HS256 secret (at least 32 bytes). */
  secret?: Uint8Array | string | undefined;
  /** Public key: PEM (SPKI or certificate), a JWK as JSON text or object, or a KeyObject. */
  publicKey?: string | JsonWebKey | KeyObject | undefined;
  /** The public key's algorithm (default: from the key: RSA → RS256, P-256 → ES256, Ed25519 → EdDSA, or the JWK's `alg`). */
  publicKeyAlgorithm?: AsymmetricAlgorithm | undefined;
  /** URL of a JSON Web Key Set. */
  jwksUrl?: string | URL | undefined;
  jwks?: JwksOptions | undefined;
}

/**
 * A JwtAuthenticator over the given keys and claim checks. Throws
 * ConfigError for a key that cannot be used (a private key where a public
 * one belongs, an unsupported key type, a bad URL, no key at all).
 */
export function createJwtAuthenticator(
  keys: TokenKeyOptions,
  claims: TokenClaimOptions = {},
): JwtAuthenticator {
  return new JwtAuthenticator(keyResolver(keys), claims);
}

/**
 * The token authenticator a server's options describe: HS256 from
 * `secret`, RS256/ES256/EdDSA from `tokenPublicKey`, keys from `jwksUrl`,
 * any combination, with the `tokenIssuer`, `tokenAudience` and
 * `tokenLeeway` checks. Undefined when no key is configured.
 */
export function buildTokenAuthenticator(config: {
  secret?: Uint8Array | undefined;
  tokenPublicKey: string;
  jwksUrl: string;
  tokenIssuer: readonly string[];
  tokenAudience: readonly string[];
  tokenLeeway: number;
}): TokenAuthenticator | undefined {
  const keys: TokenKeyOptions = {
    secret: config.secret,
    publicKey: config.tokenPublicKey === '' ? undefined : config.tokenPublicKey,
    jwksUrl: config.jwksUrl === '' ? undefined : config.jwksUrl,
  };
  if (keys.secret === undefined && keys.publicKey === undefined && keys.jwksUrl === undefined)
    return undefined;
  return createJwtAuthenticator(keys, {
    issuer: config.tokenIssuer.length > 0 ? [...config.tokenIssuer] : undefined,
    audience: config.tokenAudience.length > 0 ? [...config.tokenAudience] : undefined,
    leewaySeconds: config.tokenLeeway,
  });
}

/** One resolver over every configured key, each pinned to its algorithms. */
function keyResolver(keys: TokenKeyOptions): TokenKeyResolver {
  const secret = keys.secret !== undefined ? secretKeyResolver(keys.secret) : undefined;
  const publicKey =
    keys.publicKey !== undefined ? readPublicKey(keys.publicKey, keys.publicKeyAlgorithm) : undefined;
  const jwks = keys.jwksUrl !== undefined ? remoteKeySet(keys.jwksUrl, keys.jwks ?? {}) : undefined;
  if (secret === undefined && publicKey === undefined && jwks === undefined)
    throw new ConfigError('tokenPublicKey', 'no token key: give a secret, a public key or a JWKS URL');
  return {
    cacheable: jwks === undefined,
    resolve(header): ResolvedTokenKey {
      const alg = header.alg;
      if (typeof alg === 'string' && alg.startsWith('HS')) {
        if (secret !== undefined) return secret.resolve(header);
        throw algorithmRefused(alg);
      }
      if (publicKey !== undefined && alg === publicKey.algorithm)
        return { key: publicKey.key, algorithms: [publicKey.algorithm] };
      if (jwks !== undefined && (ASYMMETRIC_ALGORITHMS as readonly unknown[]).includes(alg))
        return { key: jwks, algorithms: [...ASYMMETRIC_ALGORITHMS] };
      throw algorithmRefused(alg);
    },
  };
}

/** A public key and the algorithm it is pinned to. */
export interface PinnedPublicKey {
  key: KeyObject;
  algorithm: AsymmetricAlgorithm;
}

/**
 * Reads a public key (PEM SPKI or X.509 certificate, JWK JSON text or
 * object, or a KeyObject) and pins its algorithm. Throws ConfigError
 * (option `tokenPublicKey`) for private keys, secrets and unsupported
 * key types.
 */
export function readPublicKey(
  input: string | JsonWebKey | KeyObject,
  algorithm?: AsymmetricAlgorithm,
): PinnedPublicKey {
  let key: KeyObject;
  let jwkAlg: unknown;
  try {
    if (typeof input === 'string') {
      const text = input.trim();
      if (text.startsWith('{')) {
        const jwk = JSON.parse(text) as JsonWebKey;
        jwkAlg = jwk.alg;
        key = publicFromJwk(jwk);
      } else {
        if (/PRIVATE KEY-----/.test(text))
          throw new ConfigError('tokenPublicKey', 'is a private key: give the public key (SPKI PEM)');
        key = createPublicKey(text);
      }
    } else if (isKeyObject(input)) {
      if (input.type !== 'public') throw new ConfigError('tokenPublicKey', 'must be a public key');
      key = input;
    } else {
      jwkAlg = input.alg;
      key = publicFromJwk(input);
    }
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError('tokenPublicKey', `cannot be read as a PEM or JWK public key (${describe(error)})`);
  }
  const derived = algorithmOf(key, jwkAlg);
  if (algorithm !== undefined && !compatible(algorithm, derived))
    throw new ConfigError('tokenPublicKey', `a ${key.asymmetricKeyType} key cannot verify ${algorithm}`);
  return { key, algorithm: algorithm ?? derived };
}

function publicFromJwk(jwk: JsonWebKey): KeyObject {
  if (typeof jwk !== 'object' || jwk === null) throw new ConfigError('tokenPublicKey', 'is not a JWK object');
  if (jwk.kty === 'oct') throw new ConfigError('tokenPublicKey', 'is a secret (oct) key, not a public key');
  if (jwk.d !== undefined) throw new ConfigError('tokenPublicKey', 'is a private JWK: give the public key');
  return createPublicKey({ key: jwk, format: 'jwk' });
}

function isKeyObject(value: unknown): value is KeyObject {
  return typeof value === 'object' && value !== null && 'asymmetricKeyType' in value && 'type' in value;
}

/** The algorithm a key verifies by default: its JWK `alg` when valid, else by key type and curve. */
function algorithmOf(key: KeyObject, jwkAlg: unknown): AsymmetricAlgorithm {
  const type = key.asymmetricKeyType;
  let derived: AsymmetricAlgorithm;
  if (type === 'rsa') derived = 'RS256';
  else if (type === 'rsa-pss') derived = 'PS256';
  else if (type === 'ed25519') derived = 'EdDSA';
  else if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') derived = 'ES256';
    else if (curve === 'secp384r1') derived = 'ES384';
    else if (curve === 'secp521r1') derived = 'ES512';
    else throw new ConfigError('tokenPublicKey', `EC curve ${String(curve)} is not supported`);
  } else throw new ConfigError('tokenPublicKey', `key type ${String(type)} is not supported`);
  if (typeof jwkAlg === 'string' && jwkAlg !== derived) {
    if (
      !(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(jwkAlg) ||
      !compatible(jwkAlg as AsymmetricAlgorithm, derived)
    )
      throw new ConfigError('tokenPublicKey', `the JWK's alg ${jwkAlg} does not fit its key`);
    return jwkAlg as AsymmetricAlgorithm;
  }
  return derived;
}

/** Whether `wanted` can be verified with a key whose default algorithm is `derived`. */
function compatible(wanted: AsymmetricAlgorithm, derived: AsymmetricAlgorithm): boolean {
  if (derived === 'RS256') return wanted.startsWith('RS') || wanted.startsWith('PS');
  if (derived === 'PS256') return wanted.startsWith('PS');
  return wanted === derived;
}

/** jose's remote key set, fetched through a bounded fetch. */
function remoteKeySet(url: string | URL, options: JwksOptions) {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError('jwksUrl', 'must be an absolute http(s) URL');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')
    throw new ConfigError('jwksUrl', 'must be an absolute http(s) URL');
  const o = { ...DEFAULT_JWKS_OPTIONS, ...options };
  return createRemoteJWKSet(parsed, {
    timeoutDuration: o.timeoutMs,
    cooldownDuration: o.cooldownMs,
    cacheMaxAge: o.cacheMaxAgeMs,
    [customFetch]: boundedFetch(o.maxBytes, o.retryMs),
  });
}

/**
 * A fetch for key sets: the body is read up to `maxBytes` (more fails the
 * fetch), jose's abort signal bounds the whole exchange, and for
 * `retryMs` after a failure no request is made at all.
 */
export function boundedFetch(maxBytes: number, retryMs: number): FetchImplementation {
  let failedAt = -Infinity;
  return async (url, init) => {
    if (performance.now() - failedAt < retryMs)
      throw new TokenKeysUnavailableError(new Error('the key set fetch failed moments ago'));
    try {
      const response = await fetch(url, init);
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new Error(`the key set answered HTTP ${response.status}`);
      }
      const declared = Number(response.headers.get('content-length') ?? 0);
      if (declared > maxBytes) {
        await response.body?.cancel();
        throw new Error(`the key set is ${declared} bytes, over ${maxBytes}`);
      }
      const body = await readCapped(response, maxBytes);
      return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
    } catch (error) {
      failedAt = performance.now();
      throw error instanceof TokenKeysUnavailableError ? error : new TokenKeysUnavailableError(error);
    }
  };
}

async function readCapped(response: Response, maxBytes: number): Promise<Uint8Array> {
  const reader = response.body?.getReader() as ReadableStreamDefaultReader<Uint8Array> | undefined;
  if (reader === undefined) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw new Error(`the key set is over ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/**
 * Signs `claims` as a JWT with a private key (PEM PKCS#8 or JWK text), for
 * tests and demos of public-key verification. The algorithm is the key's
 * default (RS256, ES256, EdDSA, …) unless given; `kid` goes in the header
 * when given. `expiresInSeconds` sets `exp`.
 */
export async function signWithPrivateKey(
  claims: Record<string, unknown>,
  privateKey: string,
  options: { algorithm?: AsymmetricAlgorithm; kid?: string; expiresInSeconds?: number } = {},
): Promise<string> {
  const text = privateKey.trim();
  let key: KeyObject;
  try {
    key = text.startsWith('{')
      ? createPrivateKey({ key: JSON.parse(text) as JsonWebKey, format: 'jwk' })
      : createPrivateKey(text);
  } catch (error) {
    throw new ConfigError('privateKey', `cannot be read as a PEM or JWK private key (${describe(error)})`);
  }
  const algorithm = options.algorithm ?? algorithmOf(createPublicKey(key), undefined);
  const body: Record<string, unknown> = { ...claims };
  if (options.expiresInSeconds !== undefined)
    body.exp = Math.floor(Date.now() / 1000) + Math.floor(options.expiresInSeconds);
  const header: { alg: string; typ: string; kid?: string } = { alg: algorithm, typ: 'JWT' };
  if (options.kid !== undefined) header.kid = options.kid;
  return new CompactSign(new TextEncoder().encode(JSON.stringify(body))).setProtectedHeader(header).sign(key);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0]!.slice(0, 120) : String(error);
}
