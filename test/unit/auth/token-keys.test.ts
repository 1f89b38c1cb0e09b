// Tokens beyond HS256: RS256, ES256 and EdDSA from a public key (PEM or
// JWK), algorithms pinned per key (the algorithm-confusion attack), claim
// reasons that tell an expired token from a forged one, and a JWKS served
// by the test: caching, rotation, unknown kids, a server that is down,
// slow or too large.
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidTokenError, TokenKeysUnavailableError } from '../../../src/auth/errors.ts';
import { signHS256 } from '../../../src/auth/token.ts';
import {
  createJwtAuthenticator,
  readPublicKey,
  signWithPrivateKey,
  type JwksOptions,
} from '../../../src/auth/token-keys.ts';
import { ConfigError } from '../../../src/errors.ts';

interface Pair {
  publicPem: string;
  privatePem: string;
  publicKey: KeyObject;
}

function pair(type: 'rsa' | 'ec' | 'ed25519'): Pair {
  const { publicKey, privateKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : type === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  return {
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey,
  };
}

const rsa = pair('rsa');
const ec = pair('ec');
const ed = pair('ed25519');

async function rejectsWith(promise: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof InvalidTokenError, `expected InvalidTokenError, got ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    return true;
  });
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('public key tokens', () => {
  for (const [name, keys, alg] of [
    ['RS256', rsa, 'RS256'],
    ['ES256', ec, 'ES256'],
    ['EdDSA', ed, 'EdDSA'],
  ] as const) {
    test(`${name}: a token signed with the private key verifies against the PEM and the JWK`, async () => {
      const token = await signWithPrivateKey({ sub: 'u1' }, keys.privatePem, { expiresInSeconds: 60 });
      assert.equal(
        (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { alg: string }).alg,
        alg,
      );
      const fromPem = createJwtAuthenticator({ publicKey: keys.publicPem });
      assert.equal((await fromPem.authenticate(token)).id, 'u1');
      const jwk = JSON.stringify(keys.publicKey.export({ format: 'jwk' }));
      const fromJwk = createJwtAuthenticator({ publicKey: jwk });
      assert.equal((await fromJwk.authenticate(token)).id, 'u1');
    });
  }

  test('a token signed by another key of the same type: reason signature', async () => {
    const other = pair('ec');
    const token = await signWithPrivateKey({ sub: 'x' }, other.privatePem);
    await rejectsWith(createJwtAuthenticator({ publicKey: ec.publicPem }).authenticate(token), 'signature');
  });

  test('algorithm confusion: HS256 keyed with the public key text is refused (algorithm), also with a secret configured (signature)', async () => {
    const header = b64({ alg: 'HS256', typ: 'JWT' });
    const payload = b64({ sub: 'attacker' });
    for (const keyText of [rsa.publicPem, rsa.publicPem.trim()]) {
      const sig = createHmac('sha256', keyText).update(`${header}.${payload}`).digest('base64url');
      const forged = `${header}.${payload}.${sig}`;
      await rejectsWith(
        createJwtAuthenticator({ publicKey: rsa.publicPem }).authenticate(forged),
        'algorithm',
      );
      const both = createJwtAuthenticator({ publicKey: rsa.publicPem, secret: randomBytes(32) });
      await rejectsWith(both.authenticate(forged), 'signature');
    }
    // And a real HS256 token is still fine when the secret is configured next to the public key.
    const secret = randomBytes(32);
    const both = createJwtAuthenticator({ publicKey: rsa.publicPem, secret });
    assert.equal((await both.authenticate(await signHS256({ sub: 'h' }, secret))).id, 'h');
  });

  test('an algorithm the key is not pinned to is refused: RS384 on an RS256 key, ES256 on an RSA key, none', async () => {
    const auth = createJwtAuthenticator({ publicKey: rsa.publicPem });
    const rs384 = await signWithPrivateKey({ sub: 'x' }, rsa.privatePem, { algorithm: 'RS384' });
    await rejectsWith(auth.authenticate(rs384), 'algorithm');
    await rejectsWith(auth.authenticate(await signWithPrivateKey({ sub: 'x' }, ec.privatePem)), 'algorithm');
    await rejectsWith(auth.authenticate(`${b64({ alg: 'none' })}.${b64({ sub: 'x' })}.`), 'algorithm');
  });

  test('expired and forged tokens have different reasons; leeway and iss/aud checks', async () => {
    const exp = Math.floor(Date.now() / 1000) - 5;
    const expired = await signWithPrivateKey({ sub: 'x', exp }, ed.privatePem);
    await rejectsWith(createJwtAuthenticator({ publicKey: ed.publicPem }).authenticate(expired), 'expired');
    const lenient = createJwtAuthenticator({ publicKey: ed.publicPem }, { leewaySeconds: 30 });
    assert.equal((await lenient.authenticate(expired)).id, 'x');
    const [h, p] = expired.split('.');
    const forged = `${h}.${p}.${Buffer.alloc(64, 1).toString('base64url')}`;
    await rejectsWith(createJwtAuthenticator({ publicKey: ed.publicPem }).authenticate(forged), 'signature');
    const checked = createJwtAuthenticator(
      { publicKey: ed.publicPem },
      { issuer: 'https://id.example', audience: 'wshub' },
    );
    const good = await signWithPrivateKey(
      { sub: 'y', iss: 'https://id.example', aud: ['wshub'] },
      ed.privatePem,
    );
    assert.equal((await checked.authenticate(good)).id, 'y');
    const wrongIss = await signWithPrivateKey(
      { sub: 'y', iss: 'https://evil.example', aud: 'wshub' },
      ed.privatePem,
    );
    await rejectsWith(checked.authenticate(wrongIss), 'issuer');
    const wrongAud = await signWithPrivateKey(
      { sub: 'y', iss: 'https://id.example', aud: 'other' },
      ed.privatePem,
    );
    await rejectsWith(checked.authenticate(wrongAud), 'audience');
  });

  test('keys that must not be used as a public key are ConfigErrors', () => {
    const bad: unknown[] = [
      rsa.privatePem,
      JSON.stringify(rsa.publicKey.export({ format: 'jwk' })).replace('{', '{"d":"AAAA",'),
      JSON.stringify({ kty: 'oct', k: 'c2VjcmV0' }),
      'not a key',
      '{"kty":',
    ];
    for (const input of bad) {
      assert.throws(
        () => readPublicKey(input as string),
        (e: unknown) => e instanceof ConfigError && e.option === 'tokenPublicKey',
        String(input).slice(0, 30),
      );
    }
    assert.throws(() => readPublicKey(ec.publicPem, 'RS256'), ConfigError);
    assert.equal(readPublicKey(rsa.publicPem, 'PS256').algorithm, 'PS256');
  });
});

/** A JWKS endpoint the test controls: its keys, its behaviour, and a request count. */
class JwksServer {
  requests = 0;
  keys: object[] = [];
  mode: 'ok' | 'error' | 'slow' | 'huge' = 'ok';
  private readonly server: Server;

  constructor() {
    this.server = createServer((request, response) => {
      this.requests++;
      if (this.mode === 'error') {
        response.writeHead(500).end('down');
        return;
      }
      if (this.mode === 'slow') {
        const timer = setTimeout(() => response.end(JSON.stringify({ keys: this.keys })), 3_000);
        response.on('close', () => clearTimeout(timer));
        return;
      }
      const body =
        this.mode === 'huge'
          ? JSON.stringify({ keys: this.keys, padding: 'x'.repeat(200_000) })
          : JSON.stringify({ keys: this.keys });
      // No Content-Length on the huge answer: the cap must hold while streaming.
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.end(body);
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/jwks.json`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function jwkOf(keys: Pair, kid: string, alg: string): object {
  return { ...keys.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

describe('JWKS', () => {
  const servers: JwksServer[] = [];
  after(async () => {
    for (const s of servers) await s.stop();
  });
  async function jwks(options: JwksOptions = {}) {
    const server = new JwksServer();
    servers.push(server);
    const url = await server.start();
    return { server, auth: createJwtAuthenticator({ jwksUrl: url, jwks: { timeoutMs: 500, ...options } }) };
  }

  test('keys are fetched once and cached; a rotated key is found by one refetch after the cooldown', async () => {
    const { server, auth } = await jwks({ cooldownMs: 300 });
    server.keys = [jwkOf(rsa, 'k1', 'RS256')];
    const t1 = await signWithPrivateKey({ sub: 'a' }, rsa.privatePem, { kid: 'k1' });
    assert.equal((await auth.authenticate(t1)).id, 'a');
    assert.equal((await auth.authenticate(t1)).id, 'a');
    assert.equal(server.requests, 1);
    // Rotation: the issuer now signs with k2 (ES256) and has withdrawn k1.
    server.keys = [jwkOf(ec, 'k2', 'ES256')];
    await sleep(350);
    const t2 = await signWithPrivateKey({ sub: 'b' }, ec.privatePem, { kid: 'k2' });
    assert.equal((await auth.authenticate(t2)).id, 'b');
    assert.equal(server.requests, 2);
    // Key sets are not remembered per token: the withdrawn key no longer verifies.
    await rejectsWith(auth.authenticate(t1), 'key');
  });

  test('a flood of unknown kids within the cooldown makes no requests (reason key)', async () => {
    const { server, auth } = await jwks({ cooldownMs: 60_000 });
    server.keys = [jwkOf(ed, 'k1', 'EdDSA')];
    assert.equal(
      (await auth.authenticate(await signWithPrivateKey({ sub: 'a' }, ed.privatePem, { kid: 'k1' }))).id,
      'a',
    );
    const forged = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        signWithPrivateKey({ sub: 'x' }, ed.privatePem, { kid: `nope-${i}` }),
      ),
    );
    for (const token of forged) await rejectsWith(auth.authenticate(token), 'key');
    assert.equal(server.requests, 1);
  });

  test('HS256 tokens are never checked against a key set (no secret configured)', async () => {
    const { server, auth } = await jwks();
    server.keys = [{ kty: 'oct', k: Buffer.alloc(32, 7).toString('base64url'), kid: 'sym', alg: 'HS256' }];
    const token = await signHS256({ sub: 'x' }, Buffer.alloc(32, 7));
    await rejectsWith(auth.authenticate(token), 'algorithm');
    assert.equal(server.requests, 0);
  });

  test('server down: the outage error (not a verdict), and no new request for retryMs', async () => {
    const { server, auth } = await jwks({ retryMs: 400 });
    server.mode = 'error';
    const token = await signWithPrivateKey({ sub: 'a' }, rsa.privatePem, { kid: 'k1' });
    await assert.rejects(auth.authenticate(token), TokenKeysUnavailableError);
    await assert.rejects(auth.authenticate(token), TokenKeysUnavailableError);
    assert.equal(server.requests, 1);
    await sleep(450);
    server.mode = 'ok';
    server.keys = [jwkOf(rsa, 'k1', 'RS256')];
    assert.equal((await auth.authenticate(token)).id, 'a');
    assert.equal(server.requests, 2);
  });

  test('a slow server is cut off at the timeout', async () => {
    const { server, auth } = await jwks({ timeoutMs: 300 });
    server.mode = 'slow';
    const token = await signWithPrivateKey({ sub: 'a' }, rsa.privatePem, { kid: 'k1' });
    const started = performance.now();
    await assert.rejects(auth.authenticate(token), TokenKeysUnavailableError);
    const took = performance.now() - started;
    assert.ok(took < 2_000, `gave up after ${took.toFixed(0)} ms`);
  });

  test('a key set over maxBytes is refused while it streams', async () => {
    const { server, auth } = await jwks({ maxBytes: 16 * 1024 });
    server.mode = 'huge';
    server.keys = [jwkOf(rsa, 'k1', 'RS256')];
    const token = await signWithPrivateKey({ sub: 'a' }, rsa.privatePem, { kid: 'k1' });
    await assert.rejects(auth.authenticate(token), (e: unknown) => {
      assert.ok(e instanceof TokenKeysUnavailableError);
      assert.match(e.message, /over 16384 bytes/);
      return true;
    });
  });

  test('a JWKS URL must be http(s)', () => {
    assert.throws(() => createJwtAuthenticator({ jwksUrl: 'file:///etc/passwd' }), ConfigError);
    assert.throws(() => createJwtAuthenticator({ jwksUrl: 'not a url' }), ConfigError);
  });
});
