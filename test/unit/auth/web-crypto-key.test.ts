// Verification keys handed to jose: every algorithm wshub accepts gets a
// WebCrypto CryptoKey imported once (jose would otherwise import the
// KeyObject again for every token), and the imported key verifies what the
// KeyObject verifies.
import assert from 'node:assert/strict';
import { KeyObject, createSecretKey, generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { CompactSign, compactVerify } from 'jose';
import { verificationKey } from '../../../src/auth/web-crypto-key.ts';

const secret = createSecretKey(Buffer.alloc(32, 9));
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const ed = generateKeyPairSync('ed25519');

const cases: Array<{ alg: string; verify: KeyObject; sign: KeyObject }> = [
  { alg: 'HS256', verify: secret, sign: secret },
  { alg: 'HS512', verify: secret, sign: secret },
  { alg: 'RS256', verify: rsa.publicKey, sign: rsa.privateKey },
  { alg: 'PS384', verify: rsa.publicKey, sign: rsa.privateKey },
  { alg: 'ES256', verify: p256.publicKey, sign: p256.privateKey },
  { alg: 'ES384', verify: p384.publicKey, sign: p384.privateKey },
  { alg: 'EdDSA', verify: ed.publicKey, sign: ed.privateKey },
];

describe('verification keys', () => {
  for (const { alg, verify, sign } of cases) {
    test(`${alg}: one CryptoKey per key, and it verifies`, async () => {
      const first = await verificationKey(verify, alg);
      assert.ok(!(first instanceof KeyObject), `${alg} should be imported into WebCrypto`);
      assert.equal(first.type, verify.type);
      assert.deepEqual(first.usages, ['verify']);
      assert.equal(first.extractable, false);
      assert.equal(await verificationKey(verify, alg), first, 'the import is reused');
      const token = await new CompactSign(new TextEncoder().encode('{"sub":"a"}'))
        .setProtectedHeader({ alg })
        .sign(sign);
      const { payload } = await compactVerify(token, first, { algorithms: [alg] });
      assert.equal(new TextDecoder().decode(payload), '{"sub":"a"}');
      const forged = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
      await assert.rejects(compactVerify(forged, first, { algorithms: [alg] }));
    });
  }

  test('a key WebCrypto will not take for the algorithm stays a KeyObject', async () => {
    // An Ed25519 key cannot be imported as ECDSA P-256: jose gets the KeyObject and refuses it itself.
    assert.equal(await verificationKey(ed.publicKey, 'ES256'), ed.publicKey);
    assert.equal(await verificationKey(secret, 'none'), secret);
  });
});
