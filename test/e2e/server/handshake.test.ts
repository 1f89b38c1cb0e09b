// The upgrade pipeline's status/code table and origin rules,
// exercised through real HTTP against an in-process server.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { acceptKey } from '../../../src/upgrade/handshake.ts';
import {
  authHeaders,
  cleanupHubs,
  connectClient,
  expectRawRefusal,
  expectRefused,
  parseErrorBody,
  rawHttp,
  startHub,
  upgradeHead,
  waitFor,
} from './harness.ts';

afterEach(cleanupHubs);

describe('handshake status/code table', () => {
  test('a valid upgrade gets 101 with the RFC accept value', async () => {
    const hub = await startHub();
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    const head = upgradeHead(hub.port, {
      headers: { 'Sec-WebSocket-Key': key, Authorization: (await authHeaders()).Authorization! },
    });
    const response = await rawHttp(hub.port, head);
    assert.equal(response.status, 101);
    assert.equal(response.headers['sec-websocket-accept'], acceptKey(key));
    assert.equal(response.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    await waitFor(() => hub.ws.hub.getActiveConnectionCount() === 0, 3_000, 'the raw peer to be removed');
  });

  test('403 WEBSOCKET_FORBIDDEN_ORIGIN', async () => {
    const hub = await startHub({ allowedOrigins: ['https://app.example'] });
    const r = await expectRawRefusal(
      hub.port,
      { headers: { Origin: 'https://evil.example' } },
      403,
      'WEBSOCKET_FORBIDDEN_ORIGIN',
    );
    assert.equal(parseErrorBody(r.body).error.category, 'forbidden');
    assert.equal(hub.ws.metrics().security_rejections, 1);
  });

  test('405 METHOD_NOT_ALLOWED for a POST with upgrade headers', async () => {
    const hub = await startHub();
    await expectRawRefusal(hub.port, { method: 'POST' }, 405, 'METHOD_NOT_ALLOWED');
  });

  test('400 WEBSOCKET_BAD_UPGRADE for missing or wrong Upgrade/Connection tokens', async () => {
    const hub = await startHub();
    // Node routes a request to 'upgrade' only with Connection: upgrade, so
    // the wrong Upgrade value is the case that reaches the upgrade path.
    await expectRawRefusal(hub.port, { headers: { Upgrade: 'h2c' } }, 400, 'WEBSOCKET_BAD_UPGRADE');
    await expectRawRefusal(hub.port, { headers: { Upgrade: null } }, 400, 'WEBSOCKET_BAD_UPGRADE');
    await expectRawRefusal(hub.port, { headers: { Connection: 'keep-alive' } }, 400, 'WEBSOCKET_BAD_UPGRADE');
  });

  test('comma lists and mixed case in Connection/Upgrade are accepted', async () => {
    const hub = await startHub();
    const head = upgradeHead(hub.port, {
      headers: {
        Connection: 'keep-alive, UPGRADE',
        Upgrade: 'foo, WebSocket',
        Authorization: (await authHeaders()).Authorization!,
      },
    });
    const response = await rawHttp(hub.port, head);
    assert.equal(response.status, 101);
  });

  test('400 WEBSOCKET_BAD_VERSION with Sec-WebSocket-Version: 13 in the response', async () => {
    const hub = await startHub();
    for (const version of ['8', '14', '13, 8', null]) {
      const r = await expectRawRefusal(
        hub.port,
        { headers: { 'Sec-WebSocket-Version': version } },
        400,
        'WEBSOCKET_BAD_VERSION',
      );
      assert.equal(r.headers['sec-websocket-version'], '13', `version ${String(version)}`);
    }
  });

  test('400 WEBSOCKET_KEY_MISSING and WEBSOCKET_KEY_INVALID', async () => {
    const hub = await startHub();
    await expectRawRefusal(
      hub.port,
      { headers: { 'Sec-WebSocket-Key': null } },
      400,
      'WEBSOCKET_KEY_MISSING',
    );
    const bad = [
      'not-base64!!',
      Buffer.alloc(15).toString('base64'),
      Buffer.alloc(17).toString('base64'),
      'AAAAAAAAAAAAAAAAAAAAAA', // 16 bytes without padding
    ];
    for (const key of bad) {
      await expectRawRefusal(
        hub.port,
        { headers: { 'Sec-WebSocket-Key': key } },
        400,
        'WEBSOCKET_KEY_INVALID',
      );
    }
    assert.equal(hub.ws.metrics().invalid_ws_keys, 1 + bad.length);
  });

  test('400 WEBSOCKET_INVALID_ROOM: bad characters and 129 bytes; 128 bytes is fine', async () => {
    const hub = await startHub();
    const headers = await authHeaders();
    for (const room of ['a b', 'a/b', 'über', 'x'.repeat(129), 'a%00b']) {
      await expectRefused(
        hub.url(`/ws?room=${encodeURIComponent(room)}`),
        { headers },
        400,
        'WEBSOCKET_INVALID_ROOM',
      );
    }
    const longest = 'r'.repeat(128);
    const client = await connectClient(hub.url(`/ws?room=${longest}`), { headers });
    assert.equal(hub.ws.hub.getRoomCount(longest), 1);
    client.conn.close();
    await client.conn.closed();
  });

  test('without ?room= the client joins "default"', async () => {
    const hub = await startHub();
    const client = await connectClient(hub.url('/ws'), { headers: await authHeaders() });
    assert.deepEqual(hub.ws.hub.getRooms(), ['default']);
    assert.equal(hub.ws.hub.getRoomCount('default'), 1);
    client.conn.close();
    await client.conn.closed();
    await waitFor(() => hub.ws.hub.getRooms().length === 0, 2_000, 'the room to empty');
  });

  test('a custom roomValidator replaces the default policy', async () => {
    const hub = await startHub({ roomValidator: (room) => /^team-[a-z]+$/.test(room) });
    const headers = await authHeaders();
    // Valid for the default policy, refused by the custom one.
    await expectRefused(hub.url('/ws?room=lobby'), { headers }, 400, 'WEBSOCKET_INVALID_ROOM');
    // Even the default room is subject to the custom policy.
    await expectRefused(hub.url('/ws'), { headers }, 400, 'WEBSOCKET_INVALID_ROOM');
    const client = await connectClient(hub.url('/ws?room=team-blue'), { headers });
    assert.equal(hub.ws.hub.getRoomCount('team-blue'), 1);
    client.conn.close();
    await client.conn.closed();
  });

  test('401 WEBSOCKET_TOKEN_REQUIRED and 403 WEBSOCKET_INVALID_TOKEN', async () => {
    const hub = await startHub();
    const r1 = await expectRefused(hub.url(), {}, 401, 'WEBSOCKET_TOKEN_REQUIRED');
    assert.equal(r1.body.error.category, 'auth');
    await expectRefused(
      hub.url(),
      { headers: { Authorization: 'Bearer abc' } },
      403,
      'WEBSOCKET_INVALID_TOKEN',
    );
    // A malformed Authorization header counts as a present, invalid token.
    await expectRefused(
      hub.url(),
      { headers: { Authorization: 'Basic dXNlcjpwdw==' } },
      403,
      'WEBSOCKET_INVALID_TOKEN',
    );
  });

  test('403 WEBSOCKET_ROOM_FORBIDDEN', async () => {
    const hub = await startHub({ roomAuthorizer: { authorize: ({ room }) => room !== 'secret' } });
    const headers = await authHeaders();
    const r = await expectRefused(hub.url('/ws?room=secret'), { headers }, 403, 'WEBSOCKET_ROOM_FORBIDDEN');
    assert.equal(r.body.error.category, 'forbidden');
    const client = await connectClient(hub.url('/ws?room=public'), { headers });
    client.conn.close();
    await client.conn.closed();
  });

  test('a room authorizer that throws answers 503 (an outage), it does not crash the upgrade', async () => {
    const hub = await startHub({
      roomAuthorizer: {
        authorize: () => {
          throw new Error('backend down');
        },
      },
    });
    await expectRefused(hub.url(), { headers: await authHeaders() }, 503, 'WEBSOCKET_AUTH_UNAVAILABLE');
  });

  test('429 WEBSOCKET_JOIN_DENIED when the room is full', async () => {
    const hub = await startHub({ maxRoomConnections: 1 });
    const headers = await authHeaders();
    const first = await connectClient(hub.url('/ws?room=a'), { headers });
    const r = await expectRefused(hub.url('/ws?room=a'), { headers }, 429, 'WEBSOCKET_JOIN_DENIED');
    assert.equal(r.body.error.category, 'capacity');
    // Another room still has space.
    const other = await connectClient(hub.url('/ws?room=b'), { headers });
    first.conn.close();
    other.conn.close();
    await Promise.all([first.conn.closed(), other.conn.closed()]);
  });

  test('503 WEBSOCKET_JOIN_DENIED when the hub is full (maxRoomRegistrations)', async () => {
    const hub = await startHub({ maxRoomRegistrations: 2 });
    const headers = await authHeaders();
    const a = await connectClient(hub.url('/ws?room=a'), { headers });
    const b = await connectClient(hub.url('/ws?room=b'), { headers });
    await expectRefused(hub.url('/ws?room=c'), { headers }, 503, 'WEBSOCKET_JOIN_DENIED');
    a.conn.close();
    await a.conn.closed();
    await waitFor(() => hub.ws.hub.getRoomRegistrationCount() === 1, 2_000, 'a registration to free');
    const c = await connectClient(hub.url('/ws?room=c'), { headers });
    b.conn.close();
    c.conn.close();
    await Promise.all([b.conn.closed(), c.conn.closed()]);
  });

  test('503 WEBSOCKET_JOIN_DENIED when the hub is stopped', async () => {
    const hub = await startHub();
    await hub.ws.stop();
    await expectRefused(hub.url(), { headers: await authHeaders() }, 503, 'WEBSOCKET_JOIN_DENIED');
  });

  test('503 WEBSOCKET_JOIN_DENIED when rate limited (burst of 2 × maxConnectionRate)', async () => {
    const hub = await startHub({ maxConnectionRate: 1 });
    const headers = await authHeaders();
    const a = await connectClient(hub.url(), { headers });
    const b = await connectClient(hub.url(), { headers });
    const r = await expectRefused(hub.url(), { headers }, 503, 'WEBSOCKET_JOIN_DENIED');
    assert.equal(r.error.headers?.['retry-after'], '1');
    a.conn.close();
    b.conn.close();
    await Promise.all([a.conn.closed(), b.conn.closed()]);
  });

  test('400 WEBSOCKET_BAD_PROTOCOL for more than 64 subprotocols; 64 are fine', async () => {
    const hub = await startHub({ allowUnauthenticated: true, selectProtocol: (offered) => offered.at(-1) });
    const list = (n: number) => Array.from({ length: n }, (_, i) => `p${i}`).join(', ');
    const accepted = await rawHttp(
      hub.port,
      upgradeHead(hub.port, { headers: { 'Sec-WebSocket-Protocol': list(64) } }),
    );
    assert.equal(accepted.status, 101);
    assert.equal(accepted.headers['sec-websocket-protocol'], 'p63');
    await expectRawRefusal(
      hub.port,
      { headers: { 'Sec-WebSocket-Protocol': list(65) } },
      400,
      'WEBSOCKET_BAD_PROTOCOL',
    );
    // Repeated fields count as one list; so does the browser token entry.
    await expectRawRefusal(
      hub.port,
      { headers: { 'Sec-WebSocket-Protocol': `wshub, wshub.bearer.x, ${list(63)}` } },
      400,
      'WEBSOCKET_BAD_PROTOCOL',
    );
    await waitFor(() => hub.ws.hub.getActiveConnectionCount() === 0, 3_000, 'the raw peer to be removed');
  });

  test('a 5,000-entry subprotocol list is refused with 400 at once', async () => {
    const hub = await startHub({ allowUnauthenticated: true, maxHeaderSize: 64 * 1024 });
    const list = Array.from({ length: 5_000 }, (_, i) => `p${i}`).join(',');
    const response = await expectRawRefusal(
      hub.port,
      { headers: { 'Sec-WebSocket-Protocol': list } },
      400,
      'WEBSOCKET_BAD_PROTOCOL',
    );
    assert.ok(response.elapsedMs < 1_000, `answered after ${response.elapsedMs} ms`);
    assert.equal(hub.ws.hub.getActiveConnectionCount(), 0);
  });

  test('a refusal never opens a connection and never joins a room', async () => {
    const hub = await startHub({ maxRoomConnections: 1 });
    await expectRefused(hub.url(), {}, 401, 'WEBSOCKET_TOKEN_REQUIRED');
    assert.equal(hub.ws.hub.getActiveConnectionCount(), 0);
    assert.equal(hub.ws.hub.getRoomRegistrationCount(), 0);
  });
});

describe('order of checks', () => {
  test('bad origin + bad method → 403 origin', async () => {
    const hub = await startHub({ allowedOrigins: ['https://ok.example'] });
    await expectRawRefusal(
      hub.port,
      { method: 'POST', headers: { Origin: 'https://bad.example' } },
      403,
      'WEBSOCKET_FORBIDDEN_ORIGIN',
    );
  });

  test('bad method + bad upgrade headers → 405', async () => {
    const hub = await startHub();
    await expectRawRefusal(
      hub.port,
      { method: 'PUT', headers: { Upgrade: 'h2c' } },
      405,
      'METHOD_NOT_ALLOWED',
    );
  });

  test('bad upgrade + bad version → bad upgrade', async () => {
    const hub = await startHub();
    await expectRawRefusal(
      hub.port,
      { headers: { Upgrade: 'h2c', 'Sec-WebSocket-Version': '8' } },
      400,
      'WEBSOCKET_BAD_UPGRADE',
    );
  });

  test('bad version + bad key → version', async () => {
    const hub = await startHub();
    await expectRawRefusal(
      hub.port,
      { headers: { 'Sec-WebSocket-Version': '8', 'Sec-WebSocket-Key': 'nope' } },
      400,
      'WEBSOCKET_BAD_VERSION',
    );
  });

  test('bad key + invalid room → key', async () => {
    const hub = await startHub();
    await expectRawRefusal(
      hub.port,
      { path: '/ws?room=bad%20room', headers: { 'Sec-WebSocket-Key': null } },
      400,
      'WEBSOCKET_KEY_MISSING',
    );
  });

  test('bad key + too many subprotocols → key; too many subprotocols + invalid room → subprotocols', async () => {
    const hub = await startHub();
    const many = Array.from({ length: 65 }, (_, i) => `p${i}`).join(',');
    await expectRawRefusal(
      hub.port,
      { headers: { 'Sec-WebSocket-Key': 'nope', 'Sec-WebSocket-Protocol': many } },
      400,
      'WEBSOCKET_KEY_INVALID',
    );
    await expectRawRefusal(
      hub.port,
      { path: '/ws?room=bad%20room', headers: { 'Sec-WebSocket-Protocol': many } },
      400,
      'WEBSOCKET_BAD_PROTOCOL',
    );
  });

  test('invalid room + no token → 400 room', async () => {
    const hub = await startHub();
    await expectRefused(hub.url('/ws?room=no%20good'), {}, 400, 'WEBSOCKET_INVALID_ROOM');
  });

  test('no token + forbidden room → 401 (the room authorizer is not consulted)', async () => {
    let consulted = 0;
    const hub = await startHub({
      roomAuthorizer: {
        authorize: () => {
          consulted++;
          return false;
        },
      },
    });
    await expectRefused(hub.url(), {}, 401, 'WEBSOCKET_TOKEN_REQUIRED');
    assert.equal(consulted, 0);
  });

  test('forbidden room + full room → 403 room authorization first', async () => {
    const hub = await startHub({
      maxRoomConnections: 1,
      roomAuthorizer: { authorize: ({ password }) => password === 'pw' },
    });
    const headers = await authHeaders({ 'X-WebSocket-Room-Password': 'pw' });
    const first = await connectClient(hub.url(), { headers });
    await expectRefused(hub.url(), { headers: await authHeaders() }, 403, 'WEBSOCKET_ROOM_FORBIDDEN');
    await expectRefused(hub.url(), { headers }, 429, 'WEBSOCKET_JOIN_DENIED');
    first.conn.close();
    await first.conn.closed();
  });
});

describe('other requests to the server', () => {
  test('a plain GET to wsRoutePath gets an error response, not a hang', async () => {
    const hub = await startHub();
    const response = await rawHttp(
      hub.port,
      `GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    );
    assert.ok(response.status >= 400 && response.status < 500, `status ${response.status}`);
    assert.equal(parseErrorBody(response.body).error.code, 'WEBSOCKET_BAD_UPGRADE');
  });

  test('a plain GET with a bad Origin gets 403 there too', async () => {
    const hub = await startHub({ allowedOrigins: ['https://ok.example'] });
    const response = await rawHttp(
      hub.port,
      `GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://bad.example\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(response.status, 403);
    assert.equal(parseErrorBody(response.body).error.code, 'WEBSOCKET_FORBIDDEN_ORIGIN');
  });

  test('an upgrade to another path gets 404', async () => {
    const hub = await startHub();
    const response = await rawHttp(hub.port, upgradeHead(hub.port, { path: '/elsewhere' }));
    assert.equal(response.status, 404);
    parseErrorBody(response.body);
  });

  test('a plain request to another path gets 404', async () => {
    const hub = await startHub();
    const response = await rawHttp(hub.port, `GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.equal(response.status, 404);
  });
});

describe('origin rules', () => {
  test('no Origin header is allowed even with an allow list', async () => {
    const hub = await startHub({ allowedOrigins: ['https://app.example'] });
    const client = await connectClient(hub.url(), { headers: await authHeaders() });
    client.conn.close();
    await client.conn.closed();
  });

  test('exact match only: scheme, host, port and case all count', async () => {
    const hub = await startHub({ allowedOrigins: ['https://app.example'] });
    const headers = await authHeaders();
    const client = await connectClient(hub.url(), { headers: { ...headers, Origin: 'https://app.example' } });
    for (const origin of [
      'http://app.example',
      'https://app.example:8443',
      'https://APP.example',
      'https://app.example/',
      'https://sub.app.example',
      'https://app.example.evil',
      'null',
    ]) {
      await expectRefused(
        hub.url(),
        { headers: { ...headers, Origin: origin } },
        403,
        'WEBSOCKET_FORBIDDEN_ORIGIN',
      );
    }
    client.conn.close();
    await client.conn.closed();
  });

  test('"*" in allowedOrigins is not a wildcard', async () => {
    const hub = await startHub({ allowedOrigins: ['*'] });
    await expectRefused(
      hub.url(),
      { headers: await authHeaders({ Origin: 'https://any.example' }) },
      403,
      'WEBSOCKET_FORBIDDEN_ORIGIN',
    );
  });

  test('allowAllOrigins must be explicit, and then allows any origin', async () => {
    const closed = await startHub();
    await expectRefused(
      closed.url(),
      { headers: await authHeaders({ Origin: 'https://any.example' }) },
      403,
      'WEBSOCKET_FORBIDDEN_ORIGIN',
    );
    const open = await startHub({ allowAllOrigins: true });
    const client = await connectClient(open.url(), {
      headers: await authHeaders({ Origin: 'https://any.example' }),
    });
    client.conn.close();
    await client.conn.closed();
  });
});
