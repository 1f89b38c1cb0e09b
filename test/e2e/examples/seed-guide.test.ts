import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
// The example runs on the built package, so the error classes it throws are
// compared with the package's own, not with those of src/.
import { Opcode, SecretReuseError, WeakSecretError, generateSecureSecret, signHS256 } from 'wshub';
import { GENERAL_ROOM, VIP_ROOM, startSeedGuide, type SeedGuideApp } from '../../../examples/seed-guide.ts';
import { assertNoLeaks, closeServer, trackSockets } from '../../helpers/leaks.ts';
import { assertSilent, connect, httpCall, nextText, refusal, wsUrl, type TestClient } from './clients.ts';

// Printable secrets, so the broadcast secret can travel in an Authorization header.
const secret = generateSecureSecret().toString('base64url');
const broadcastSecret = generateSecureSecret().toString('base64url');
const vipPassword = 's3cr3t';
const appOrigin = 'https://app.example.com';

describe('seed guide example, steps 1–6', () => {
  let app: SeedGuideApp;
  const clients: TestClient[] = [];
  let alice: TestClient;
  let bob: TestClient;
  let carol: TestClient;
  let vip: TestClient;

  const token = (sub: string) => signHS256({ sub, name: sub }, secret, { expiresInSeconds: 600 });

  before(async () => {
    app = await startSeedGuide({ secret, broadcastSecret, vipPassword, port: 0 });
    trackSockets(app.server);
  });

  after(async () => {
    for (const { conn } of clients) conn.terminate();
    if (app !== undefined) await closeServer(app.server);
  });

  test('step 1 refuses missing, short or reused secrets', async () => {
    await assert.rejects(
      startSeedGuide({ secret: 'too short', broadcastSecret, vipPassword }),
      (error: unknown) => error instanceof WeakSecretError && error.field === 'secret',
    );
    await assert.rejects(
      startSeedGuide({ secret, broadcastSecret: secret, vipPassword }),
      (error: unknown) => error instanceof SecretReuseError,
    );
    assert.equal(app.ws.config.maxRoomRegistrations, 1000);
    assert.equal(app.ws.hub.options.maxRoomConnections, 100);
  });

  test('step 2: /ws needs a valid token', async () => {
    const url = wsUrl(app.url, `/ws?room=${GENERAL_ROOM}`);
    assert.deepEqual(await refusal(url), { status: 401, code: 'WEBSOCKET_TOKEN_REQUIRED' });
    const forged = await signHS256({ sub: 'mallory' }, generateSecureSecret());
    assert.deepEqual(await refusal(url, { token: forged }), { status: 403, code: 'WEBSOCKET_INVALID_TOKEN' });

    alice = await connect(url, { token: await token('alice') });
    bob = await connect(url, { token: await token('bob') });
    carol = await connect(wsUrl(app.url, '/ws?room=lobby'), { token: await token('carol') });
    clients.push(alice, bob, carol);
    assert.equal(alice.conn.readyState, 'open');
  });

  test('step 3: broadcastRoom reaches the room only, broadcastAll reaches everyone', async () => {
    app.announce();
    const roomMessage = JSON.stringify({ type: 'message', text: 'Hello' });
    const ping = JSON.stringify({ type: 'ping' });
    for (const member of [alice, bob]) {
      assert.equal(await nextText(member), roomMessage);
      assert.equal(await nextText(member), ping);
    }
    assert.equal(await nextText(carol), ping);
    await assertSilent(carol);
  });

  test('step 3: a client message fans out to its room, sender included', async () => {
    await alice.conn.sendText('hi from alice');
    assert.equal(await nextText(alice), 'hi from alice');
    assert.equal(await nextText(bob), 'hi from alice');
    await assertSilent(carol);
  });

  test('step 1: the admin broadcast endpoint takes only its own secret', async () => {
    const path = `/_admin/broadcast?room=${GENERAL_ROOM}`;
    const wrong = await httpCall(app.url, 'POST', path, {
      body: 'x',
      headers: { Authorization: `Bearer ${secret}` },
    });
    assert.equal(wrong.status, 401);
    const ok = await httpCall(app.url, 'POST', path, {
      body: 'from admin',
      headers: { Authorization: `Bearer ${broadcastSecret}` },
    });
    assert.equal(ok.status, 204, ok.body);
    assert.equal(await nextText(alice), 'from admin');
    assert.equal(await nextText(bob), 'from admin');
    await assertSilent(carol);
  });

  test('step 4: vip-room needs its password, other rooms are open', async () => {
    const vipUrl = wsUrl(app.url, `/ws/chat?room=${VIP_ROOM}`);
    const tok = await token('dave');
    assert.deepEqual(await refusal(vipUrl, { token: tok }), {
      status: 403,
      code: 'WEBSOCKET_ROOM_FORBIDDEN',
    });
    assert.deepEqual(
      await refusal(vipUrl, { token: tok, headers: { 'X-WebSocket-Room-Password': 'wrong' } }),
      { status: 403, code: 'WEBSOCKET_ROOM_FORBIDDEN' },
    );
    // A password in the query string is never read.
    assert.deepEqual(await refusal(`${vipUrl}&password=${vipPassword}`, { token: tok }), {
      status: 403,
      code: 'WEBSOCKET_ROOM_FORBIDDEN',
    });
    vip = await connect(vipUrl, {
      token: tok,
      headers: { 'X-WebSocket-Room-Password': vipPassword, Origin: appOrigin },
    });
    clients.push(vip);
    const open = await connect(wsUrl(app.url, '/ws/chat?room=random'), { token: await token('erin') });
    clients.push(open);
    assert.equal(vip.conn.readyState, 'open');
    assert.equal(open.conn.readyState, 'open');
  });

  test('step 4: the chat handler has its own auth, origins and hub', async () => {
    const chatUrl = wsUrl(app.url, '/ws/chat?room=random');
    assert.deepEqual(await refusal(chatUrl), { status: 401, code: 'WEBSOCKET_TOKEN_REQUIRED' });
    assert.deepEqual(
      await refusal(chatUrl, { token: await token('eve'), headers: { Origin: 'https://evil.example' } }),
      { status: 403, code: 'WEBSOCKET_FORBIDDEN_ORIGIN' },
    );
    assert.equal(app.chat.config.sendBehavior, 'drop');
    assert.equal(app.chat.config.sendQueueSize, 256);
    assert.equal(app.chat.config.sendTimeout, 5_000);
    assert.equal(app.chat.hub.options.workerCount, 4);
    assert.equal(app.chat.hub.options.jobQueueSize, 512);
    assert.notEqual(app.chat.hub, app.ws.hub);
    // A broadcast on the main hub does not reach chat connections.
    app.ws.hub.broadcastAll(Opcode.TEXT, 'main only');
    assert.equal(await nextText(alice), 'main only');
    await assertSilent(vip);
    await vip.conn.sendText('vip hello');
    assert.equal(await nextText(vip), 'vip hello');
  });

  test('step 5: hub state counts the connections', () => {
    assert.deepEqual(app.inspect(), { roomCount: 2, registrations: 3, rooms: [GENERAL_ROOM, 'lobby'] });
    assert.equal(app.ws.hub.getActiveConnectionCount(), 3);
    assert.deepEqual(app.inspect(app.chat.hub), {
      roomCount: 0,
      registrations: 2,
      rooms: ['random', VIP_ROOM],
    });
    assert.equal(app.chat.hub.getRoomCount(VIP_ROOM), 1);
  });

  test('step 5: counts drop when a client leaves', async () => {
    bob.conn.close(1000, 'bye');
    assert.deepEqual(await bob.conn.closed(), { code: 1000, reason: 'bye' });
    clients.splice(clients.indexOf(bob), 1);
    // The server sees the close a moment after the client does.
    for (let i = 0; i < 100 && app.ws.hub.getRoomCount(GENERAL_ROOM) !== 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(app.inspect(), { roomCount: 1, registrations: 2, rooms: [GENERAL_ROOM, 'lobby'] });
  });

  test('step 6: shutdown closes every client with 1001 and leaves nothing open', async () => {
    const started = performance.now();
    await app.shutdown();
    assert.ok(performance.now() - started < 10_000, 'shutdown took longer than its 10 s bound');
    for (const client of clients) {
      const closed = await client.conn.closed();
      assert.equal(closed.code, 1001, `client ${client.conn.id} closed with ${closed.code}`);
    }
    assert.equal(app.server.listening, false);
    assert.equal(app.ws.health().status, 'unhealthy');
    assert.equal(app.ws.hub.getActiveConnectionCount(), 0);
    assert.equal(app.chat.hub.getActiveConnectionCount(), 0);
    await assertNoLeaks(app.server);
    // Shutdown is safe to call twice.
    await app.ws.shutdown();
  });
});

describe('seed guide example, unknown paths', () => {
  let app: SeedGuideApp | undefined;

  after(async () => {
    // closeServer also destroys an upgrade socket nobody answered.
    if (app !== undefined) await closeServer(app.server);
  });

  test('an upgrade to a path neither hub serves gets 404', async () => {
    app = await startSeedGuide({ secret, broadcastSecret, vipPassword, port: 0 });
    trackSockets(app.server);
    const token = await signHS256({ sub: 'zed' }, secret);
    assert.deepEqual(await refusal(wsUrl(app.url, '/nowhere'), { token }), {
      status: 404,
      code: 'NOT_FOUND',
    });
    await app.shutdown();
    await assertNoLeaks(app.server);
  });
});
