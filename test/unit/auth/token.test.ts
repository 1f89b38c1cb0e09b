import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { CompactSign, SignJWT, generateKeyPair } from 'jose';
import {
  HS256TokenAuthenticator,
  InvalidTokenError,
  WeakSecretError,
  signHS256,
  tokenExpiry,
  type HS256Options,
} from '../../../src/auth/index.ts';

const SECRET = 'k'.repeat(40);
const NOW_S = 1_700_000_000;
const NOW_MS = NOW_S * 1000;

function authenticator(options: HS256Options = {}): HS256TokenAuthenticator {
  return new HS256TokenAuthenticator(SECRET, { now: () => NOW_MS, ...options });
}

function b64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** Builds a token by hand so header and claims can be anything at all. */
function handmade(header: Record<string, unknown>, claims: unknown, secret = SECRET): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = createHmac('sha256', secret).update(input).digest('base64url');
  return `${input}.${sig}`;
}

async function rejectsWith(promise: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof InvalidTokenError, `expected InvalidTokenError, got ${String(err)}`);
    assert.equal(err.code, 'WEBSOCKET_INVALID_TOKEN');
    assert.equal(err.reason, reason);
    return true;
  });
}

describe('HS256TokenAuthenticator: valid tokens', () => {
  test('a valid token yields the user from its claims', async () => {
    const token = await signHS256(
      { sub: 'u1', name: 'Ada', email: 'ada@example.com', roles: ['admin', 7, 'ops'], team: 'x' },
      SECRET,
    );
    const user = await authenticator().authenticate(token);
    assert.equal(user.id, 'u1');
    assert.equal(user.name, 'Ada');
    assert.equal(user.email, 'ada@example.com');
    assert.deepEqual(user.roles, ['admin', 'ops']);
    assert.equal(user.claims.team, 'x');
  });

  test('a token made by a standard JWT library (jose SignJWT) is accepted', async () => {
    const token = await new SignJWT({ sub: 'u2' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(NOW_S + 60)
      .sign(Buffer.from(SECRET));
    const user = await authenticator().authenticate(token);
    assert.equal(user.id, 'u2');
    assert.equal(tokenExpiry(user), (NOW_S + 60) * 1000);
  });

  test('signHS256 expiresInSeconds sets exp relative to the real clock', async () => {
    const before = Math.floor(Date.now() / 1000);
    const token = await signHS256({ sub: 'u' }, SECRET, { expiresInSeconds: 90 });
    const user = await new HS256TokenAuthenticator(SECRET).authenticate(token);
    const exp = user.claims.exp as number;
    assert.ok(exp >= before + 90 && exp <= Math.floor(Date.now() / 1000) + 90);
    assert.equal(tokenExpiry(user), exp * 1000);
  });

  test('tokenExpiry is undefined without exp', async () => {
    const user = await authenticator().authenticate(await signHS256({ sub: 'u' }, SECRET));
    assert.equal(tokenExpiry(user), undefined);
  });

  test('a Uint8Array secret works the same as its string form', async () => {
    const auth = new HS256TokenAuthenticator(new TextEncoder().encode(SECRET), { now: () => NOW_MS });
    const user = await auth.authenticate(await signHS256({ sub: 'bytes' }, SECRET));
    assert.equal(user.id, 'bytes');
  });
});

describe('HS256TokenAuthenticator: algorithm pinning', () => {
  test('alg none (unsigned) is rejected', async () => {
    const input = `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify({ sub: 'x' }))}`;
    await rejectsWith(authenticator().authenticate(`${input}.`), 'algorithm');
  });

  test('alg none with a real HMAC signature attached is still rejected', async () => {
    await rejectsWith(authenticator().authenticate(handmade({ alg: 'none' }, { sub: 'x' })), 'algorithm');
  });

  test('HS384 and HS512 signed with the same secret are rejected', async () => {
    for (const alg of ['HS384', 'HS512']) {
      const token = await new CompactSign(new TextEncoder().encode('{"sub":"x"}'))
        .setProtectedHeader({ alg })
        .sign(Buffer.from(SECRET));
      await rejectsWith(authenticator().authenticate(token), 'algorithm');
    }
  });

  test('a real RS256 token is rejected', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const token = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
    assert.equal(token.split('.').length, 3);
    await rejectsWith(authenticator().authenticate(token), 'algorithm');
  });

  test('a header claiming HS256 cannot be swapped onto an HS512 signature', async () => {
    const good = await signHS256({ sub: 'x' }, SECRET);
    const [, payload, sig] = good.split('.');
    const header = b64url(JSON.stringify({ alg: 'HS512', typ: 'JWT' }));
    await rejectsWith(authenticator().authenticate(`${header}.${payload}.${sig}`), 'algorithm');
  });
});

describe('HS256TokenAuthenticator: signatures and secrets', () => {
  test('a tampered signature is rejected', async () => {
    const token = await signHS256({ sub: 'x' }, SECRET);
    const [h, p, s] = token.split('.') as [string, string, string];
    const flipped = s.slice(0, 5) + (s[5] === 'A' ? 'B' : 'A') + s.slice(6);
    await rejectsWith(authenticator().authenticate(`${h}.${p}.${flipped}`), 'signature');
  });

  test('a tampered payload is rejected', async () => {
    const token = await signHS256({ sub: 'user' }, SECRET);
    const [h, , s] = token.split('.');
    await rejectsWith(authenticator().authenticate(`${h}.${b64url('{"sub":"admin"}')}.${s}`), 'signature');
  });

  test('a token signed with another secret is rejected', async () => {
    const token = await signHS256({ sub: 'x' }, 'z'.repeat(40));
    await rejectsWith(authenticator().authenticate(token), 'signature');
  });

  test('an empty signature on an HS256 header is rejected', async () => {
    const token = await signHS256({ sub: 'x' }, SECRET);
    const [h, p] = token.split('.');
    await rejectsWith(authenticator().authenticate(`${h}.${p}.`), 'signature');
  });

  test('secrets under 32 bytes throw WeakSecretError', () => {
    assert.throws(() => new HS256TokenAuthenticator('x'.repeat(31)), WeakSecretError);
    assert.throws(
      () => new HS256TokenAuthenticator(new Uint8Array(0)),
      (err: unknown) => {
        return err instanceof WeakSecretError && err.code === 'WEAK_SECRET';
      },
    );
    assert.doesNotThrow(() => new HS256TokenAuthenticator('x'.repeat(32)));
    // 11 three-byte characters are 33 bytes even though the string has 11 characters.
    assert.doesNotThrow(() => new HS256TokenAuthenticator('€'.repeat(11)));
  });

  test('signHS256 refuses a weak secret too', async () => {
    await assert.rejects(signHS256({ sub: 'x' }, 'short'), WeakSecretError);
  });

  test('the secret is copied: changing the caller buffer later has no effect', async () => {
    const buf = Buffer.from(SECRET);
    const auth = new HS256TokenAuthenticator(buf, { now: () => NOW_MS });
    const token = await signHS256({ sub: 'copy' }, SECRET);
    buf.fill(0);
    assert.equal((await auth.authenticate(token)).id, 'copy');
    // A token made with the wiped buffer contents must not pass.
    const zeros = await signHS256({ sub: 'copy' }, buf);
    await rejectsWith(auth.authenticate(zeros), 'signature');
  });
});

describe('HS256TokenAuthenticator: time claims', () => {
  test('expired when now is past exp; still valid during the exp second', async () => {
    await rejectsWith(
      authenticator().authenticate(handmade({ alg: 'HS256' }, { exp: NOW_S - 1 })),
      'expired',
    );
    const atExp = await authenticator().authenticate(handmade({ alg: 'HS256' }, { sub: 'a', exp: NOW_S }));
    assert.equal(atExp.id, 'a');
    const late = new HS256TokenAuthenticator(SECRET, { now: () => NOW_MS + 999 });
    assert.equal((await late.authenticate(handmade({ alg: 'HS256' }, { sub: 'b', exp: NOW_S }))).id, 'b');
  });

  test('leeway accepts slightly expired tokens, but not beyond it', async () => {
    const token = handmade({ alg: 'HS256' }, { sub: 'l', exp: NOW_S - 30 });
    assert.equal((await authenticator({ leewaySeconds: 30 }).authenticate(token)).id, 'l');
    await rejectsWith(authenticator({ leewaySeconds: 29 }).authenticate(token), 'expired');
  });

  test('nbf in the future is rejected; leeway covers small skew', async () => {
    const token = handmade({ alg: 'HS256' }, { sub: 'n', nbf: NOW_S + 10 });
    await rejectsWith(authenticator().authenticate(token), 'not_before');
    assert.equal((await authenticator({ leewaySeconds: 10 }).authenticate(token)).id, 'n');
    const past = handmade({ alg: 'HS256' }, { sub: 'p', nbf: NOW_S });
    assert.equal((await authenticator().authenticate(past)).id, 'p');
  });

  test('exp must be a non-negative integer', async () => {
    for (const exp of [NOW_S + 0.5, -1, String(NOW_S + 100), null, true, [NOW_S + 100], {}]) {
      await rejectsWith(authenticator().authenticate(handmade({ alg: 'HS256' }, { exp })), 'claims');
    }
  });

  test('non-integer exp is rejected even though it would otherwise be in the future', async () => {
    const token = await signHS256({ sub: 'f', exp: NOW_S + 1000.5 }, SECRET);
    await rejectsWith(authenticator().authenticate(token), 'claims');
  });

  test('nbf must be a non-negative integer', async () => {
    await rejectsWith(authenticator().authenticate(handmade({ alg: 'HS256' }, { nbf: 'soon' })), 'claims');
  });

  test('requireExp rejects tokens without exp', async () => {
    const token = handmade({ alg: 'HS256' }, { sub: 'r' });
    await rejectsWith(authenticator({ requireExp: true }).authenticate(token), 'claims');
    assert.equal((await authenticator().authenticate(token)).id, 'r');
  });

  test('negative leeway is refused at construction', () => {
    assert.throws(() => authenticator({ leewaySeconds: -1 }), RangeError);
    assert.throws(() => authenticator({ leewaySeconds: Number.NaN }), RangeError);
  });
});

describe('HS256TokenAuthenticator: issuer and audience', () => {
  test('iss must match one of the configured issuers', async () => {
    const auth = authenticator({ issuer: ['https://a.example', 'https://b.example'] });
    assert.equal(
      (await auth.authenticate(handmade({ alg: 'HS256' }, { sub: 'i', iss: 'https://b.example' }))).id,
      'i',
    );
    await rejectsWith(
      auth.authenticate(handmade({ alg: 'HS256' }, { iss: 'https://evil.example' })),
      'issuer',
    );
    await rejectsWith(auth.authenticate(handmade({ alg: 'HS256' }, { sub: 'no-iss' })), 'issuer');
  });

  test('aud (string or array) must contain a configured audience', async () => {
    const auth = authenticator({ audience: 'chat' });
    assert.equal((await auth.authenticate(handmade({ alg: 'HS256' }, { sub: 'a', aud: 'chat' }))).id, 'a');
    assert.equal(
      (await auth.authenticate(handmade({ alg: 'HS256' }, { sub: 'b', aud: ['x', 'chat'] }))).id,
      'b',
    );
    await rejectsWith(auth.authenticate(handmade({ alg: 'HS256' }, { aud: 'billing' })), 'audience');
    await rejectsWith(auth.authenticate(handmade({ alg: 'HS256' }, { aud: ['billing'] })), 'audience');
    await rejectsWith(auth.authenticate(handmade({ alg: 'HS256' }, { sub: 'none' })), 'audience');
  });

  test('without issuer/audience options, iss and aud are not checked', async () => {
    const user = await authenticator().authenticate(
      handmade({ alg: 'HS256' }, { sub: 'z', iss: 'any', aud: 'any' }),
    );
    assert.equal(user.id, 'z');
  });
});

describe('HS256TokenAuthenticator: malformed input never crashes', () => {
  test('empty string, garbage and wrong part counts are malformed', async () => {
    const good = await signHS256({ sub: 'x' }, SECRET);
    const [h, p, s] = good.split('.');
    const inputs = [
      '',
      'garbage',
      '!!!.@@@.###',
      `${h}.${p}`,
      `${h}.${p}.${s}.${s}`,
      `${h}..${s}`,
      `.${p}.${s}`,
      `${h}=.${p}.${s}`,
      `${h}.${p}.${s}==`,
      `${h}.${p} .${s}`,
      `${h}+.${p}.${s}`,
      'a.b.c',
      `${h}.${p}.${'A'.repeat(20000)}`,
    ];
    for (const input of inputs) {
      await rejectsWith(authenticator().authenticate(input), 'malformed');
    }
  });

  test('non-string input from untyped callers is malformed, not a crash', async () => {
    const auth = authenticator();
    const inputs: unknown[] = [undefined, null, 42, {}];
    for (const input of inputs) {
      await rejectsWith(auth.authenticate(input as string), 'malformed');
    }
  });

  test('a header that is not JSON is malformed', async () => {
    const input = `${b64url('not json')}.${b64url('{"sub":"x"}')}`;
    const sig = createHmac('sha256', SECRET).update(input).digest('base64url');
    await rejectsWith(authenticator().authenticate(`${input}.${sig}`), 'malformed');
  });

  test('a signed payload that is not a JSON object is rejected', async () => {
    await rejectsWith(authenticator().authenticate(handmade({ alg: 'HS256' }, [1, 2])), 'claims');
    await rejectsWith(authenticator().authenticate(handmade({ alg: 'HS256' }, 'text')), 'claims');
    const input = `${b64url(JSON.stringify({ alg: 'HS256' }))}.${b64url('{oops')}`;
    const sig = createHmac('sha256', SECRET).update(input).digest('base64url');
    await rejectsWith(authenticator().authenticate(`${input}.${sig}`), 'malformed');
  });

  test('no jose error class leaks out', async () => {
    const token = await signHS256({ sub: 'x' }, SECRET);
    const [h, p] = token.split('.');
    for (const input of [`${h}.${p}.AAAA`, `${b64url('{"alg":"HS256","crit":["zzz"],"zzz":1}')}.${p}.AAAA`]) {
      await assert.rejects(authenticator().authenticate(input), (err: unknown) => {
        assert.ok(err instanceof InvalidTokenError);
        assert.equal(Object.getPrototypeOf(err), InvalidTokenError.prototype);
        assert.equal(err.cause, undefined);
        return true;
      });
    }
  });
});

describe('verified-token cache', () => {
  const secret = 'c'.repeat(32);

  test('a repeated token is accepted again, and its expiry is still enforced', async () => {
    let now = Date.now();
    const auth = new HS256TokenAuthenticator(secret, { now: () => now });
    const token = await signHS256({ sub: 'u1', exp: Math.floor(now / 1000) + 10 }, secret);
    assert.equal((await auth.authenticate(token)).id, 'u1');
    assert.equal((await auth.authenticate(token)).id, 'u1');
    now += 20_000;
    await assert.rejects(
      auth.authenticate(token),
      (e: unknown) => e instanceof InvalidTokenError && e.reason === 'expired',
    );
  });

  test('a rejected token is never remembered as valid', async () => {
    const auth = new HS256TokenAuthenticator(secret);
    const token = await signHS256({ sub: 'u2' }, 'd'.repeat(32));
    await assert.rejects(auth.authenticate(token), InvalidTokenError);
    await assert.rejects(auth.authenticate(token), InvalidTokenError);
  });

  test('the cache is bounded: the oldest token is evicted and verified again', async () => {
    const auth = new HS256TokenAuthenticator(secret, { cacheSize: 2 });
    const tokens = await Promise.all([1, 2, 3].map((n) => signHS256({ sub: `u${n}` }, secret)));
    for (const t of tokens) await auth.authenticate(t);
    for (const t of tokens) assert.equal((await auth.authenticate(t)).id.startsWith('u'), true);
  });
});
