import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  SecretReuseError,
  WeakSecretError,
  constantTimeEqual,
  generateSecureSecret,
  validateRoomPassword,
  validateSecurityConfig,
  validateWebSocketKey,
} from '../../../src/auth/index.ts';

const STRONG = 'a'.repeat(32);
const OTHER = 'b'.repeat(32);

function weak(field: string): (err: unknown) => boolean {
  return (err) => err instanceof WeakSecretError && err.code === 'WEAK_SECRET' && err.field === field;
}

describe('generateSecureSecret', () => {
  test('returns random bytes of the requested length (default 32)', () => {
    const a = generateSecureSecret();
    const b = generateSecureSecret();
    assert.equal(a.length, 32);
    assert.notDeepEqual(a, b);
    assert.equal(generateSecureSecret(64).length, 64);
  });

  test('refuses fewer than 32 bytes and non-integers', () => {
    assert.throws(() => generateSecureSecret(31), WeakSecretError);
    assert.throws(() => generateSecureSecret(0), WeakSecretError);
    assert.throws(() => generateSecureSecret(32.5), RangeError);
  });
});

describe('validateSecurityConfig', () => {
  test('accepts a strong secret, and a distinct strong broadcast secret', () => {
    assert.doesNotThrow(() => validateSecurityConfig({ secret: STRONG }));
    assert.doesNotThrow(() =>
      validateSecurityConfig({ secret: STRONG, broadcastEnabled: true, broadcastSecret: OTHER }),
    );
  });

  test('missing or weak secret when tokens are required', () => {
    assert.throws(() => validateSecurityConfig({}), weak('secret'));
    assert.throws(() => validateSecurityConfig({ secret: 'a'.repeat(31) }), weak('secret'));
    assert.throws(() => validateSecurityConfig({ secret: new Uint8Array(16) }), weak('secret'));
  });

  test('no secret needed with a custom authenticator or unauthenticated access', () => {
    assert.doesNotThrow(() => validateSecurityConfig({ hasTokenAuthenticator: true }));
    assert.doesNotThrow(() => validateSecurityConfig({ allowUnauthenticated: true }));
    // ...but one that is given must still be strong.
    assert.throws(
      () => validateSecurityConfig({ allowUnauthenticated: true, secret: 'short' }),
      weak('secret'),
    );
  });

  test('broadcast enabled needs its own strong secret', () => {
    assert.throws(
      () => validateSecurityConfig({ secret: STRONG, broadcastEnabled: true }),
      weak('broadcastSecret'),
    );
    assert.throws(
      () =>
        validateSecurityConfig({ secret: STRONG, broadcastEnabled: true, broadcastSecret: 'x'.repeat(31) }),
      weak('broadcastSecret'),
    );
    assert.doesNotThrow(() =>
      validateSecurityConfig({ secret: STRONG, broadcastEnabled: true, hasBroadcastAuthorizer: true }),
    );
  });

  test('broadcast secret equal to the token secret is refused, whatever its form', () => {
    const check = (err: unknown): boolean => err instanceof SecretReuseError && err.code === 'SECRET_REUSED';
    assert.throws(
      () => validateSecurityConfig({ secret: STRONG, broadcastEnabled: true, broadcastSecret: STRONG }),
      check,
    );
    assert.throws(
      () =>
        validateSecurityConfig({
          secret: STRONG,
          broadcastEnabled: true,
          broadcastSecret: Buffer.from(STRONG),
        }),
      check,
    );
    // A longer secret sharing the prefix is different.
    assert.doesNotThrow(() =>
      validateSecurityConfig({ secret: STRONG, broadcastEnabled: true, broadcastSecret: `${STRONG}a` }),
    );
  });
});

describe('validateWebSocketKey', () => {
  test('accepts base64 of 16 random bytes', () => {
    for (let i = 0; i < 20; i++) {
      assert.equal(validateWebSocketKey(randomBytes(16).toString('base64')), true);
    }
    assert.equal(validateWebSocketKey('dGhlIHNhbXBsZSBub25jZQ=='), true); // RFC 6455 example
  });

  test('rejects everything else', () => {
    const bad = [
      '',
      'dGhlIHNhbXBsZSBub25jZQ',
      'dGhlIHNhbXBsZSBub25jZQ=',
      'dGhlIHNhbXBsZSBub25jZQ===',
      'dGhlIHNhbXBsZSBub25jZ===',
      ' dGhlIHNhbXBsZSBub25jZQ==',
      'dGhlIHNhbXBsZSBub25jZQ== ',
      'dGhlIHNhbXBsZSBub25j_Q==',
      'dGhlIHNhbXBsZSBub25j-Q==',
      'dGhlIHNhbXBsZSBub25j!Q==',
      randomBytes(15).toString('base64'),
      randomBytes(17).toString('base64'),
      randomBytes(18).toString('base64'),
      'dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==',
    ];
    for (const key of bad) assert.equal(validateWebSocketKey(key), false, key);
    assert.equal(validateWebSocketKey(undefined as unknown as string), false);
  });
});

describe('validateRoomPassword', () => {
  test('strong passwords pass', () => {
    assert.deepEqual(validateRoomPassword('Abcdefg1'), { ok: true });
    assert.deepEqual(validateRoomPassword(`Ab1${'x'.repeat(1021)}`), { ok: true });
    assert.deepEqual(validateRoomPassword('Ünïcödé9'), { ok: true });
  });

  test('each rule gives its reason', () => {
    const cases: [string, string][] = [
      ['', 'empty'],
      ['Abcde1', 'too_short'],
      ['Abcdef1', 'too_short'],
      [`Ab1${'x'.repeat(1022)}`, 'too_long'],
      ['abcdefg1', 'missing_uppercase'],
      ['ABCDEFG1', 'missing_lowercase'],
      ['Abcdefgh', 'missing_digit'],
      ['a'.repeat(4097), 'too_long'],
    ];
    for (const [pw, reason] of cases) {
      assert.deepEqual(validateRoomPassword(pw), { ok: false, reason }, pw.slice(0, 20));
    }
  });

  test('length counts characters, not UTF-16 units', () => {
    // Seven letters plus an emoji (two UTF-16 units) is 8 characters.
    assert.deepEqual(validateRoomPassword('Abcdef1😀'), { ok: true });
    assert.deepEqual(validateRoomPassword('Abcde1😀'), { ok: false, reason: 'too_short' });
  });

  test('allowWeak keeps only the emptiness and byte-size limits', () => {
    assert.deepEqual(validateRoomPassword('x', { allowWeak: true }), { ok: true });
    assert.deepEqual(validateRoomPassword('', { allowWeak: true }), { ok: false, reason: 'empty' });
    assert.deepEqual(validateRoomPassword('€'.repeat(1366), { allowWeak: true }), {
      ok: false,
      reason: 'too_long',
    });
  });
});

describe('constantTimeEqual', () => {
  test('equal inputs, in any mix of string and bytes', () => {
    assert.equal(constantTimeEqual('secret', 'secret'), true);
    assert.equal(constantTimeEqual(Buffer.from('secret'), 'secret'), true);
    assert.equal(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])), true);
    assert.equal(constantTimeEqual('', ''), true);
  });

  test('different inputs, including different lengths and prefixes', () => {
    assert.equal(constantTimeEqual('secret', 'secreT'), false);
    assert.equal(constantTimeEqual('secret', 'secret1'), false);
    assert.equal(constantTimeEqual('', 'a'), false);
    assert.equal(constantTimeEqual(new Uint8Array([0]), new Uint8Array([])), false);
    assert.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0])), false);
  });
});
