// Public-key tokens end to end: a JWKS served by the test verifies /ws
// tokens, channel connection tokens and subscription tokens alike; an
// unreachable JWKS is an outage (503 / reply error 100), never a verdict.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { signWithPrivateKey } from '../../../src/auth/token-keys.ts';
import { closeRawProtocolClients, RawProtocolClient } from '../channels/sdk.ts';
import { cleanupHubs, connectClient, expectRefused, startHub, type RunningHub } from './harness.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPrivate = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const ed = generateKeyPairSync('ed25519');
const edPrivate = ed.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

const servers: Server[] = [];

afterEach(async () => {
  closeRawProtocolClients();
  // The key set servers first: fetch keeps its connection to them alive until they close it.
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
  await cleanupHubs();
});

/** Serves `{keys}` (or 503 when `down`) and counts requests. */
async function jwksServer(down = false): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  const keys = [
    { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
    { ...ed.publicKey.export({ format: 'jwk' }), kid: 'ed-1', alg: 'EdDSA', use: 'sig' },
  ];
  const server = createServer((_request, response) => {
    requests++;
    if (down) response.writeHead(503).end();
    else response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    requests: () => requests,
  };
}

function jwksHub(url: string): Promise<RunningHub> {
  return startHub({
    secret: undefined,
    jwksUrl: url,
    tokenIssuer: ['https://id.test'],
    channelsEnabled: true,
    channels: { namespaces: [{ name: 'private' }] },
  });
}

const rsaToken = (claims: Record<string, unknown>) =>
  signWithPrivateKey({ iss: 'https://id.test', ...claims }, rsaPrivate, {
    kid: 'rsa-1',
    expiresInSeconds: 60,
  });
const edToken = (claims: Record<string, unknown>) =>
  signWithPrivateKey({ iss: 'https://id.test', ...claims }, edPrivate, { kid: 'ed-1', expiresInSeconds: 60 });

describe('tokens verified with a JWKS', () => {
  test('/ws: RS256 and EdDSA tokens join; wrong issuer and unknown kid are 403; keys fetched once', async () => {
    const jwks = await jwksServer();
    const hub = await jwksHub(jwks.url);
    for (const token of [await rsaToken({ sub: 'a' }), await edToken({ sub: 'b' })]) {
      const client = await connectClient(hub.url(), { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(client.conn.readyState, 'open');
    }
    const wrongIss = await rsaToken({ sub: 'c', iss: 'https://other.test' });
    await expectRefused(
      hub.url(),
      { headers: { Authorization: `Bearer ${wrongIss}` } },
      403,
      'WEBSOCKET_INVALID_TOKEN',
    );
    const unknownKid = await signWithPrivateKey({ sub: 'd', iss: 'https://id.test' }, rsaPrivate, {
      kid: 'gone',
    });
    await expectRefused(
      hub.url(),
      { headers: { Authorization: `Bearer ${unknownKid}` } },
      403,
      'WEBSOCKET_INVALID_TOKEN',
    );
    assert.equal(jwks.requests(), 1, 'one fetch; the unknown kid falls within the cooldown');
  });

  test('an expired token and a forged one get the same 403 body but different log reasons', async () => {
    const jwks = await jwksServer();
    const hub = await jwksHub(jwks.url);
    const reasons: unknown[] = [];
    hub.ws.log = (entry) => {
      if (entry.event === 'upgrade_rejected') reasons.push(entry.reason);
    };
    const expired = await signWithPrivateKey(
      { sub: 'a', iss: 'https://id.test', exp: Math.floor(Date.now() / 1000) - 60 },
      rsaPrivate,
      { kid: 'rsa-1' },
    );
    const [h, p] = (await rsaToken({ sub: 'a' })).split('.');
    const forged = `${h}.${p}.${Buffer.alloc(256, 1).toString('base64url')}`;
    for (const token of [expired, forged]) {
      await expectRefused(
        hub.url(),
        { headers: { Authorization: `Bearer ${token}` } },
        403,
        'WEBSOCKET_INVALID_TOKEN',
      );
    }
    assert.deepEqual(reasons, ['expired', 'signature']);
  });

  test('channels: the connect token and a subscription token verify through the same key set', async () => {
    const jwks = await jwksServer();
    const hub = await jwksHub(jwks.url);
    const raw = await RawProtocolClient.open(hub);
    const connect = await raw.call('connect', { token: await edToken({ sub: 'carol' }) });
    assert.equal(typeof (connect.connect as { client?: unknown }).client, 'string');
    const denied = await raw.call('subscribe', { channel: 'private:x' });
    assert.deepEqual(denied.error, { code: 103, message: 'permission denied' });
    const subToken = await rsaToken({ sub: 'carol', channel: 'private:x' });
    const subscribed = await raw.call('subscribe', { channel: 'private:x', token: subToken });
    assert.equal(subscribed.error, undefined, JSON.stringify(subscribed));
  });

  test('an unreachable JWKS is an outage: 503 WEBSOCKET_AUTH_UNAVAILABLE on /ws, reply error 100 on connect', async () => {
    const jwks = await jwksServer(true);
    const hub = await jwksHub(jwks.url);
    const token = await rsaToken({ sub: 'a' });
    await expectRefused(
      hub.url(),
      { headers: { Authorization: `Bearer ${token}` } },
      503,
      'WEBSOCKET_AUTH_UNAVAILABLE',
    );
    assert.equal(hub.ws.metrics().auth_errors, 1);
    const raw = await RawProtocolClient.open(hub);
    const reply = await raw.call('connect', { token });
    assert.deepEqual(reply.error, { code: 100, message: 'internal server error', temporary: true });
  });
});
