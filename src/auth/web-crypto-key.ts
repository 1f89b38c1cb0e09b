/**
 * Verification keys as WebCrypto `CryptoKey`s, imported once per key and
 * algorithm. jose verifies through WebCrypto: handed a node:crypto
 * `KeyObject` it imports the key again for every token, which costs about
 * twice the verification itself; handed a `CryptoKey` it verifies directly.
 */
import { webcrypto, type KeyObject } from 'node:crypto';

type ImportParams = Parameters<typeof webcrypto.subtle.importKey>[2];

const SHA: Readonly<Record<string, string>> = { '256': 'SHA-256', '384': 'SHA-384', '512': 'SHA-512' };
const CURVES: Readonly<Record<string, string>> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

const imported = new WeakMap<KeyObject, Map<string, Promise<KeyObject | webcrypto.CryptoKey>>>();

/** WebCrypto's import parameters for a JWS algorithm, or undefined for one it is not given here. */
function importParams(alg: string): ImportParams | undefined {
  const hash = SHA[alg.slice(2)];
  if (alg.startsWith('HS') && hash !== undefined) return { name: 'HMAC', hash };
  if (alg.startsWith('RS') && hash !== undefined) return { name: 'RSASSA-PKCS1-v1_5', hash };
  if (alg.startsWith('PS') && hash !== undefined) return { name: 'RSA-PSS', hash };
  const namedCurve = CURVES[alg];
  if (namedCurve !== undefined) return { name: 'ECDSA', namedCurve };
  if (alg === 'EdDSA') return { name: 'Ed25519' };
  return undefined;
}

async function importOnce(key: KeyObject, alg: string): Promise<KeyObject | webcrypto.CryptoKey> {
  const params = importParams(alg);
  if (params === undefined) return key;
  try {
    return key.type === 'secret'
      ? await webcrypto.subtle.importKey('raw', key.export(), params, false, ['verify'])
      : await webcrypto.subtle.importKey('spki', key.export({ format: 'der', type: 'spki' }), params, false, [
          'verify',
        ]);
  } catch {
    // A key WebCrypto will not take for this algorithm: jose gets the KeyObject and decides.
    return key;
  }
}

/**
 * The key to hand jose for verifying `alg` with `key`: a `CryptoKey`
 * imported on first use and reused after, or the `KeyObject` itself when
 * WebCrypto does not take it. Keys are remembered only as long as the
 * `KeyObject` lives.
 */
export function verificationKey(key: KeyObject, alg: string): Promise<KeyObject | webcrypto.CryptoKey> {
  let byAlg = imported.get(key);
  if (byAlg === undefined) {
    byAlg = new Map();
    imported.set(key, byAlg);
  }
  let pending = byAlg.get(alg);
  if (pending === undefined) {
    pending = importOnce(key, alg);
    byAlg.set(alg, pending);
  }
  return pending;
}
