// The synchronous HS256 path (node:crypto) against jose's compact verification:
// for every token of a hand-made corpus and of a seeded mutation fuzz, both give
// the same user or the same refusal (reason and message).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createSecretKey } from 'node:crypto';
import { decodeProtectedHeader } from 'jose';
import { decodeTokenHeader } from '../../../src/auth/hs256.ts';
import {
  algorithmRefused,
  HS256TokenAuthenticator,
  JwtAuthenticator,
  type HS256Options,
  type TokenKeyResolver,
} from '../../../src/auth/token.ts';

const SECRET = 's'.repeat(32);
const NOW_S = 1_700_000_000;
const OPTIONS: HS256Options = { now: () => NOW_S * 1000, cacheSize: 0, issuer: 'iss-a', audience: 'aud-a' };

/** The same secret behind a key function: jose's compactVerify runs (the path before this change). */
function joseResolver(): TokenKeyResolver {
  const key = createSecretKey(Buffer.from(SECRET));
  return {
    cacheable: true,
    resolve(header) {
      if (header.alg !== 'HS256') throw algorithmRefused(header.alg);
      return { key: () => key, algorithms: ['HS256'] };
    },
  };
}

const b64 = (value: string | Buffer): string => Buffer.from(value).toString('base64url');

/** A token from raw parts: the header and payload parts are taken as given, the signature computed. */
function raw(headerPart: string, payloadPart: string, secret = SECRET): string {
  const input = `${headerPart}.${payloadPart}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

const claims = { sub: 'u1', iss: 'iss-a', aud: 'aud-a', exp: NOW_S + 60, roles: ['a', 1], name: 'N' };
const json = (v: unknown): string => b64(JSON.stringify(v));
const HS = json({ alg: 'HS256', typ: 'JWT' });
const GOOD = json(claims);

/** Tokens that reach the key step (their `alg` is HS256), one per rule of the verification. */
function corpus(): Array<[string, string]> {
  const valid = raw(HS, GOOD);
  const [h, p, sig] = valid.split('.') as [string, string, string];
  // 32 bytes take 43 base64url characters; the last one carries 2 unused bits.
  const last = sig.at(-1)!;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sibling = alphabet[alphabet.indexOf(last) ^ 1]!;
  const cases: Array<[string, string]> = [
    ['valid', valid],
    ['typ absent', raw(json({ alg: 'HS256' }), GOOD)],
    ['another typ', raw(json({ alg: 'HS256', typ: 'at+jwt', kid: 'k1', jku: 'x' }), GOOD)],
    [
      'header with a BOM',
      raw(b64(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"alg":"HS256"}')])), GOOD),
    ],
    ['__proto__ in the header', raw(b64('{"alg":"HS256","__proto__":{"crit":["x"]}}'), GOOD)],
    ['wrong secret', raw(HS, GOOD, 'o'.repeat(32))],
    ['signature cut short', `${h}.${p}.${sig.slice(0, 40)}`],
    ['signature empty', `${h}.${p}.`],
    ['signature too long', `${h}.${p}.${sig}AAAA`],
    ['unused signature bits set', `${h}.${p}.${sig.slice(0, -1)}${sibling}`],
    ['payload swapped', `${h}.${json({ ...claims, sub: 'u2' })}.${sig}`],
    ['crit b64 true', raw(json({ alg: 'HS256', b64: true, crit: ['b64'] }), GOOD)],
    ['crit b64 false, JSON-less payload', raw(json({ alg: 'HS256', b64: false, crit: ['b64'] }), 'abc')],
    ['crit b64 false, number payload', raw(json({ alg: 'HS256', b64: false, crit: ['b64'] }), '123')],
    ['b64 false without crit', raw(json({ alg: 'HS256', b64: false }), GOOD)],
    ['crit names an unknown extension', raw(json({ alg: 'HS256', crit: ['exp'], exp: 1 }), GOOD)],
    ['crit b64 then unknown', raw(json({ alg: 'HS256', b64: true, crit: ['b64', 'x'] }), GOOD)],
    ['crit unknown then b64', raw(json({ alg: 'HS256', b64: true, crit: ['x', 'b64'] }), GOOD)],
    ['crit b64 twice', raw(json({ alg: 'HS256', b64: true, crit: ['b64', 'b64'] }), GOOD)],
    ['crit empty', raw(json({ alg: 'HS256', crit: [] }), GOOD)],
    ['crit a string', raw(json({ alg: 'HS256', crit: 'b64', b64: true }), GOOD)],
    ['crit null', raw(json({ alg: 'HS256', crit: null }), GOOD)],
    ['crit with an empty name', raw(json({ alg: 'HS256', crit: [''] }), GOOD)],
    ['crit with a number', raw(json({ alg: 'HS256', crit: [1] }), GOOD)],
    ['crit b64 missing', raw(json({ alg: 'HS256', crit: ['b64'] }), GOOD)],
    ['crit b64 not boolean', raw(json({ alg: 'HS256', crit: ['b64'], b64: 'no' }), GOOD)],
    ['crit b64 null', raw(json({ alg: 'HS256', crit: ['b64'], b64: null }), GOOD)],
    ['payload not JSON', raw(HS, b64('{nope'))],
    ['payload an array', raw(HS, json([1, 2]))],
    ['payload null', raw(HS, json(null))],
    ['payload not UTF-8', raw(HS, b64(Buffer.from([0x7b, 0xff, 0x7d])))],
    [
      'payload with a BOM',
      raw(HS, b64(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(claims))]))),
    ],
    ['expired', raw(HS, json({ ...claims, exp: NOW_S - 1 }))],
    ['exp not an integer', raw(HS, json({ ...claims, exp: NOW_S + 0.5 }))],
    ['not yet valid', raw(HS, json({ ...claims, nbf: NOW_S + 10 }))],
    ['wrong issuer', raw(HS, json({ ...claims, iss: 'other' }))],
    ['wrong audience', raw(HS, json({ ...claims, aud: ['x', 'y'] }))],
    ['audience in a list', raw(HS, json({ ...claims, aud: ['x', 'aud-a'] }))],
    ['four parts', `${valid}.x`],
    ['padding', `${h}.${p}.${sig}=`],
    ['empty payload part', raw(HS, '')],
  ];
  return cases;
}

/** What an authenticator made of a token: the user, or the refusal's class, reason and message. */
async function outcome(auth: JwtAuthenticator, token: string): Promise<string> {
  try {
    return `user ${JSON.stringify(await auth.authenticate(token))}`;
  } catch (error) {
    const e = error as { name?: string; reason?: string; message?: string };
    return `refused ${e.name}/${e.reason}: ${e.message}`;
  }
}

/** Deterministic PRNG so a failure can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('HS256 on node:crypto agrees with jose', () => {
  const fast = new HS256TokenAuthenticator(SECRET, OPTIONS);
  const jose = new JwtAuthenticator(joseResolver(), OPTIONS);

  test('the corpus: every rule gives the same user or the same refusal', async () => {
    const seen = new Set<string>();
    for (const [name, token] of corpus()) {
      const expected = await outcome(jose, token);
      assert.equal(await outcome(fast, token), expected, name);
      seen.add(expected.startsWith('user') ? 'user' : expected.split(':')[0]!);
    }
    // The corpus reaches every outcome the key step can give, so agreement means something.
    for (const kind of ['user', 'refused', 'InvalidTokenError/malformed', 'InvalidTokenError/algorithm'])
      assert.ok(
        [...seen].some((s) => s.includes(kind)),
        `${kind} in ${[...seen].join(', ')}`,
      );
    for (const reason of ['signature', 'claims', 'expired', 'not_before', 'issuer', 'audience'])
      assert.ok(
        [...seen].some((s) => s.endsWith(`/${reason}`)),
        reason,
      );
  });

  test('mutations of valid tokens (seeded): the same verdict, and the fast one is synchronous', async () => {
    const rand = prng(15);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
    const bases = corpus().map(([, token]) => token);
    let accepted = 0;
    for (let i = 0; i < 600; i++) {
      let token = bases[Math.floor(rand() * bases.length)]!;
      const edits = 1 + Math.floor(rand() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rand() * token.length);
        const c = alphabet[Math.floor(rand() * alphabet.length)]!;
        token = token.slice(0, at) + c + token.slice(at + 1);
      }
      const expected = await outcome(jose, token);
      assert.equal(await outcome(fast, token), expected, token);
      if (expected.startsWith('user')) {
        accepted++;
        assert.equal(JSON.stringify(fast.authenticateNow(token)), expected.slice('user '.length));
      }
    }
    assert.ok(accepted > 0 && accepted < 600, `${accepted} accepted`);
  });

  test('authenticateNow answers at once for a secret, and leaves jose keys to authenticate', () => {
    const [, token] = corpus()[0]!;
    assert.equal(fast.authenticateNow(token)?.id, 'u1');
    assert.equal(jose.authenticateNow(token), null);
    assert.throws(
      () => fast.authenticateNow(raw(HS, GOOD, 'o'.repeat(32))),
      (e: unknown) => (e as { reason?: string }).reason === 'signature',
    );
  });

  test('a remembered token gives every connection its own claims', async () => {
    const cached = new HS256TokenAuthenticator(SECRET, { ...OPTIONS, cacheSize: 8 });
    const [, token] = corpus()[0]!;
    const a = await cached.authenticate(token);
    (a.claims.roles as unknown[]).push('changed');
    a.roles.push('changed');
    const b = cached.authenticateNow(token)!;
    assert.deepEqual(b.claims.roles, ['a', 1]);
    assert.deepEqual(b.roles, ['a']);
  });
});

describe('decodeTokenHeader agrees with jose.decodeProtectedHeader', () => {
  test('valid, odd and broken headers', () => {
    const parts = [
      json({ alg: 'HS256' }),
      json({ alg: 'HS256', nested: { a: [1, 2] } }),
      b64(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"alg":"x"}')])),
      b64('{"__proto__":{"alg":"HS256"}}'),
      b64('[1]'),
      b64('null'),
      b64('"text"'),
      b64('{"alg":'),
      b64(Buffer.from([0x7b, 0xc3, 0x7d])),
      b64('  {"alg":"HS256"}  '),
    ];
    for (const part of parts) {
      const token = `${part}.${GOOD}.sig`;
      let expected: unknown;
      try {
        expected = decodeProtectedHeader(token);
      } catch {
        expected = 'refused';
      }
      let got: unknown;
      try {
        got = decodeTokenHeader(token);
      } catch (error) {
        assert.equal((error as { reason?: string }).reason, 'malformed');
        got = 'refused';
      }
      assert.deepEqual(got, expected, Buffer.from(part, 'base64url').toString('latin1'));
    }
  });
});
