// Token and room-password auth through the real upgrade pipeline (its token
// and room authorization steps), the browser subprotocol path, and token expiry on a live
// connection.
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign as rsaSign } from 'node:crypto';
import { afterEach, describe, test } from 'node:test';
import type { RoomAuthContext } from '../../../src/auth/room-password.ts';
import { RoomPasswords } from '../../../src/auth/room-password.ts';
import { SecureRoomAuth } from '../../../src/auth/secure-room-auth.ts';
import { HS256TokenAuthenticator } from '../../../src/auth/token.ts';
import { TOKEN_EXPIRED_CLOSE_CODE } from '../../../src/server/server.ts';
import {
  SECRET,
  authHeaders,
  cleanupHubs,
  connectClient,
  expectRefused,
  makeToken,
  rawHttp,
  startHub,
  upgradeHead,
  waitFor,
  type RunningHub,
} from './harness.ts';

afterEach(cleanupHubs);

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A JWT with the given header and claims, HMAC-signed with SECRET using `digest`. */
function hmacToken(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  digest = 'sha256',
): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${createHmac(digest, SECRET).update(input).digest('base64url')}`;
}

/** Dials with `token` as bearer and expects the connection to open; closes it again. */
async function expectAccepted(hub: RunningHub, headers: Record<string, string>, path = '/ws'): Promise<void> {
  const client = await connectClient(hub.url(path), { headers });
  assert.equal(client.conn.readyState, 'open');
  client.conn.close();
  await client.conn.closed();
}

describe('token negatives through the pipeline', () => {
  test('every malformed or forged token is 403 WEBSOCKET_INVALID_TOKEN, never a 101', async () => {
    const hub = await startHub();
    const valid = await makeToken({ sub: 'u' });
    const [h, p, s] = valid.split('.') as [string, string, string];
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsInput = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ sub: 'u' })}`;
    const flipped = (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    const cases: Record<string, string> = {
      'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'u' })}.`,
      'alg none with a signature': `${b64({ alg: 'none' })}.${b64({ sub: 'u' })}.${s}`,
      HS512: hmacToken({ alg: 'HS512', typ: 'JWT' }, { sub: 'u' }, 'sha512'),
      'HS256 header, HS512 signature': hmacToken({ alg: 'HS256' }, { sub: 'u' }, 'sha512'),
      RS256: `${rsInput}.${rsaSign('sha256', Buffer.from(rsInput), privateKey).toString('base64url')}`,
      'RS256 header with an HMAC signature (alg confusion)': hmacToken({ alg: 'RS256' }, { sub: 'u' }),
      'tampered signature': `${h}.${p}.${flipped}`,
      'tampered payload': `${h}.${b64({ sub: 'admin' })}.${s}`,
      'signed with another secret': await makeToken(
        { sub: 'u' },
        { secret: 'another-secret-of-at-least-32-bytes!!' },
      ),
      expired: hmacToken({ alg: 'HS256' }, { sub: 'u', exp: nowSeconds() - 10 }),
      'non-integer exp': hmacToken({ alg: 'HS256' }, { sub: 'u', exp: nowSeconds() + 3600.5 }),
      'string exp': hmacToken({ alg: 'HS256' }, { sub: 'u', exp: String(nowSeconds() + 3600) }),
      'negative exp': hmacToken({ alg: 'HS256' }, { sub: 'u', exp: -1 }),
      'malformed base64': `${h}.${p}$.${s}`,
      'padded base64': `${h}.${p}==.${s}`,
      'two parts': `${h}.${p}`,
      'four parts': `${h}.${p}.${s}.${s}`,
      'one part': 'abc',
      'payload not JSON': (() => {
        const input = `${h}.${Buffer.from('not json').toString('base64url')}`;
        return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
      })(),
    };
    for (const [name, token] of Object.entries(cases)) {
      await expectRefused(
        hub.url(),
        { headers: { Authorization: `Bearer ${token}` } },
        403,
        'WEBSOCKET_INVALID_TOKEN',
      ).catch((error: unknown) => {
        throw new Error(`${name}: ${String(error)}`);
      });
    }
    const m = hub.ws.metrics();
    assert.equal(m.successful_auths, 0);
    assert.equal(m.security_rejections, Object.keys(cases).length);
    assert.equal(hub.ws.hub.getActiveConnectionCount(), 0);
    // The untouched token is fine, so the failures above are the tampering's doing.
    await expectAccepted(hub, { Authorization: `Bearer ${valid}` });
    assert.equal(hub.ws.metrics().successful_auths, 1);
  });

  test('"Authorization: bearer" in lower case (and BEARER) is accepted', async () => {
    const hub = await startHub();
    const token = await makeToken();
    await expectAccepted(hub, { Authorization: `bearer ${token}` });
    await expectAccepted(hub, { Authorization: `BEARER ${token}` });
  });

  test('?token= is ignored (401) unless allowQueryToken', async () => {
    const token = await makeToken();
    const strict = await startHub();
    await expectRefused(strict.url(`/ws?token=${token}`), {}, 401, 'WEBSOCKET_TOKEN_REQUIRED');
    const lenient = await startHub({ allowQueryToken: true });
    await expectAccepted(lenient, {}, `/ws?token=${token}`);
    await expectRefused(lenient.url(`/ws?token=${token}x`), {}, 403, 'WEBSOCKET_INVALID_TOKEN');
  });

  test('an invalid bearer header is not rescued by a valid query token', async () => {
    const hub = await startHub({ allowQueryToken: true });
    const token = await makeToken();
    await expectRefused(
      hub.url(`/ws?token=${token}`),
      { headers: { Authorization: 'Bearer nope' } },
      403,
      'WEBSOCKET_INVALID_TOKEN',
    );
  });

  test('allowUnauthenticated: no token is fine, an invalid one is still 403', async () => {
    const hub = await startHub({ allowUnauthenticated: true });
    await expectAccepted(hub, {});
    await expectRefused(
      hub.url(),
      { headers: { Authorization: 'Bearer x.y.z' } },
      403,
      'WEBSOCKET_INVALID_TOKEN',
    );
  });

  test('the user from the token is attached to the connection', async () => {
    let seen: unknown;
    const hub = await startHub({ onConnect: (conn) => (seen = conn.user) });
    const token = await makeToken({ sub: 'alice', name: 'Alice', roles: ['admin', 7], team: 'blue' });
    await expectAccepted(hub, { Authorization: `Bearer ${token}` });
    const user = seen as { id: string; name: string; roles: string[]; claims: Record<string, unknown> };
    assert.equal(user.id, 'alice');
    assert.equal(user.name, 'Alice');
    assert.deepEqual(user.roles, ['admin']);
    assert.equal(user.claims.team, 'blue');
  });
});

describe('browser subprotocol token', () => {
  test('token in the subprotocol → 101 selecting "wshub", token never echoed', async () => {
    const hub = await startHub();
    const token = await makeToken({ sub: 'browser' });
    const client = await connectClient(hub.url(), { protocols: ['wshub', `wshub.bearer.${token}`] });
    assert.equal(client.conn.protocol, 'wshub');
    client.conn.close();
    await client.conn.closed();

    const response = await rawHttp(
      hub.port,
      upgradeHead(hub.port, { headers: { 'Sec-WebSocket-Protocol': `wshub, wshub.bearer.${token}` } }),
    );
    assert.equal(response.status, 101);
    assert.equal(response.headers['sec-websocket-protocol'], 'wshub');
    const [, , signature] = token.split('.') as [string, string, string];
    assert.ok(!JSON.stringify(response.headers).includes(signature), 'the token is not in the response');
    assert.equal(hub.ws.metrics().successful_auths, 2);
  });

  test('the token entry is never selected, even with a selectProtocol that picks the first offer', async () => {
    const hub = await startHub({ selectProtocol: (offered) => offered[0] });
    const token = await makeToken();
    const response = await rawHttp(
      hub.port,
      upgradeHead(hub.port, { headers: { 'Sec-WebSocket-Protocol': `wshub.bearer.${token}, wshub` } }),
    );
    assert.equal(response.status, 101);
    assert.equal(response.headers['sec-websocket-protocol'], 'wshub');
  });

  test('an invalid token in the subprotocol → 403 and counted', async () => {
    const hub = await startHub();
    const token = await makeToken({ sub: 'x' }, { secret: 'z'.repeat(32) });
    await expectRefused(
      hub.url(),
      { protocols: ['wshub', `wshub.bearer.${token}`] },
      403,
      'WEBSOCKET_INVALID_TOKEN',
    );
    assert.equal(hub.ws.metrics().security_rejections, 1);
    assert.equal(hub.ws.metrics().successful_auths, 0);
  });

  test('"wshub" alone carries no token → 401', async () => {
    const hub = await startHub();
    await expectRefused(hub.url(), { protocols: ['wshub'] }, 401, 'WEBSOCKET_TOKEN_REQUIRED');
  });
});

describe('room passwords', () => {
  test('missing, wrong and right password via X-WebSocket-Room-Password; open rooms stay open', async () => {
    const passwords = new RoomPasswords({ iterations: 1000 });
    await passwords.setRoomPassword('vip', 'Correct-Horse-1');
    const hub = await startHub({ roomAuthorizer: passwords });
    const url = hub.url('/ws?room=vip');
    await expectRefused(url, { headers: await authHeaders() }, 403, 'WEBSOCKET_ROOM_FORBIDDEN');
    await expectRefused(
      url,
      { headers: await authHeaders({ 'X-WebSocket-Room-Password': 'correct-horse-1' }) },
      403,
      'WEBSOCKET_ROOM_FORBIDDEN',
    );
    await expectAccepted(
      hub,
      await authHeaders({ 'X-WebSocket-Room-Password': 'Correct-Horse-1' }),
      '/ws?room=vip',
    );
    await expectAccepted(hub, await authHeaders(), '/ws?room=lobby');
    // A password sent to an open room does not matter.
    await expectAccepted(
      hub,
      await authHeaders({ 'X-WebSocket-Room-Password': 'whatever' }),
      '/ws?room=lobby',
    );
    assert.equal(hub.ws.metrics().security_rejections, 2);
  });

  test('the password is not accepted from a query parameter', async () => {
    const passwords = new RoomPasswords({ iterations: 1000 });
    await passwords.setRoomPassword('vip', 'Pw-123456');
    const hub = await startHub({ roomAuthorizer: passwords });
    for (const name of ['password', 'room_password', 'roomPassword', 'X-WebSocket-Room-Password']) {
      await expectRefused(
        hub.url(`/ws?room=vip&${name}=Pw-123456`),
        { headers: await authHeaders() },
        403,
        'WEBSOCKET_ROOM_FORBIDDEN',
      );
    }
  });

  test('changing and removing a password takes effect for the next upgrade', async () => {
    const passwords = new RoomPasswords({ iterations: 1000 });
    await passwords.setRoomPassword('vip', 'First-pw-1');
    const hub = await startHub({ roomAuthorizer: passwords });
    const url = hub.url('/ws?room=vip');
    await expectAccepted(
      hub,
      await authHeaders({ 'X-WebSocket-Room-Password': 'First-pw-1' }),
      '/ws?room=vip',
    );
    await passwords.setRoomPassword('vip', 'Second-pw-2');
    await expectRefused(
      url,
      { headers: await authHeaders({ 'X-WebSocket-Room-Password': 'First-pw-1' }) },
      403,
      'WEBSOCKET_ROOM_FORBIDDEN',
    );
    await expectAccepted(
      hub,
      await authHeaders({ 'X-WebSocket-Room-Password': 'Second-pw-2' }),
      '/ws?room=vip',
    );
    assert.equal(passwords.removeRoomPassword('vip'), true);
    await expectAccepted(hub, await authHeaders(), '/ws?room=vip');
  });

  test('with the default PBKDF2 cost (210000 iterations) the right password still gets in', async () => {
    const passwords = new RoomPasswords();
    await passwords.setRoomPassword('slow', 'Default-cost-1');
    const hub = await startHub({ roomAuthorizer: passwords });
    await expectAccepted(
      hub,
      await authHeaders({ 'X-WebSocket-Room-Password': 'Default-cost-1' }),
      '/ws?room=slow',
    );
    await expectRefused(
      hub.url('/ws?room=slow'),
      { headers: await authHeaders({ 'X-WebSocket-Room-Password': 'Default-cost-2' }) },
      403,
      'WEBSOCKET_ROOM_FORBIDDEN',
    );
  });

  test('a contextual authorizer sees request, room, password, user and claims', async () => {
    const seen: RoomAuthContext[] = [];
    const hub = await startHub({
      roomAuthorizer: {
        authorize: async (ctx) => {
          seen.push(ctx);
          await new Promise((resolve) => setImmediate(resolve));
          const roles = ctx.user?.roles ?? [];
          return ctx.room !== 'admins' || (roles.includes('admin') && ctx.claims?.tenant === 'acme');
        },
      },
    });
    const admin = await makeToken({ sub: 'root', roles: ['admin'], tenant: 'acme' });
    const plain = await makeToken({ sub: 'bob', roles: ['user'], tenant: 'acme' });
    await expectAccepted(
      hub,
      { Authorization: `Bearer ${admin}`, 'X-WebSocket-Room-Password': 'pw!', 'X-Trace': 't-1' },
      '/ws?room=admins',
    );
    await expectRefused(
      hub.url('/ws?room=admins'),
      { headers: { Authorization: `Bearer ${plain}` } },
      403,
      'WEBSOCKET_ROOM_FORBIDDEN',
    );
    assert.equal(seen.length, 2);
    const first = seen[0]!;
    assert.equal(first.room, 'admins');
    assert.equal(first.password, 'pw!');
    assert.equal(first.request.headers['x-trace'], 't-1');
    assert.equal(first.request.url, '/ws?room=admins');
    assert.equal(first.user?.id, 'root');
    assert.equal(first.claims?.tenant, 'acme');
    assert.equal(seen[1]!.password, undefined);
    assert.equal(seen[1]!.user?.id, 'bob');
  });

  test('SecureRoomAuth serves as token authenticator and room authorizer with its own counters', async () => {
    const auth = new SecureRoomAuth({
      iterations: 1000,
      tokenAuthenticator: new HS256TokenAuthenticator(SECRET),
    });
    await auth.setRoomPassword('vault', 'Vault-pass-9');
    const hub = await startHub({ secret: undefined, tokenAuthenticator: auth, roomAuthorizer: auth });
    await expectAccepted(
      hub,
      await authHeaders({ 'X-WebSocket-Room-Password': 'Vault-pass-9' }),
      '/ws?room=vault',
    );
    await expectRefused(
      hub.url('/ws?room=vault'),
      { headers: await authHeaders() },
      403,
      'WEBSOCKET_ROOM_FORBIDDEN',
    );
    await expectRefused(
      hub.url(),
      { headers: { Authorization: 'Bearer a.b.c' } },
      403,
      'WEBSOCKET_INVALID_TOKEN',
    );
    const m = auth.metrics();
    assert.equal(m.jwtFailures, 1);
    assert.equal(m.roomAuthFailures, 1);
    // Two tokens and one room authorization succeeded.
    assert.equal(m.successfulAuths, 3);
    assert.equal(hub.ws.metrics().successful_auths, 2);
  });
});

describe('token expiry on a live connection', () => {
  test('closes with TOKEN_EXPIRED_CLOSE_CODE (4001) once exp passes; not when disabled', async () => {
    assert.equal(TOKEN_EXPIRED_CLOSE_CODE, 4001);
    const enforcing = await startHub();
    const lenient = await startHub({ closeOnTokenExpiry: false });
    const token = await makeToken({ sub: 'short' }, { expiresInSeconds: 2 });
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number };
    const a = await connectClient(enforcing.url(), { headers: { Authorization: `Bearer ${token}` } });
    const b = await connectClient(lenient.url(), { headers: { Authorization: `Bearer ${token}` } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(a.conn.readyState, 'open', 'still open while the token is valid');
    const closed = await a.conn.closed();
    const at = Date.now();
    assert.equal(closed.code, TOKEN_EXPIRED_CLOSE_CODE);
    assert.ok(at >= exp.exp * 1000 - 50, `closed ${exp.exp * 1000 - at} ms before exp`);
    assert.ok(at <= exp.exp * 1000 + 1500, `closed ${at - exp.exp * 1000} ms after exp`);
    await waitFor(() => enforcing.ws.hub.getActiveConnectionCount() === 0, 2_000, 'removal from the hub');
    assert.equal(b.conn.readyState, 'open', 'closeOnTokenExpiry: false keeps the connection');
    b.conn.close();
    await b.conn.closed();
  });

  test('a token whose exp is 30 days ahead (past the 2^31-1 ms timer limit) keeps the connection open', async () => {
    const hub = await startHub();
    const token = await makeToken({ sub: 'long' }, { expiresInSeconds: 30 * 86_400 });
    const client = await connectClient(hub.url(), { headers: { Authorization: `Bearer ${token}` } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(client.conn.readyState, 'open', 'not closed with 4001 at once');
    assert.equal(hub.ws.hub.getActiveConnectionCount(), 1);
    client.conn.close();
    await client.conn.closed();
  });

  test('shutdown closes a connection holding a long-lived token with 1001', async () => {
    const hub = await startHub();
    const token = await makeToken({ sub: 'x' }, { expiresInSeconds: 600 });
    const client = await connectClient(hub.url(), { headers: { Authorization: `Bearer ${token}` } });
    await hub.close();
    const { code } = await client.conn.closed();
    assert.equal(code, 1001);
  });
});
