/**
 * The connect command end to end with the official SDK: a valid token, each
 * refusal of a token (with the code the SDK sees and whether it reconnects),
 * anonymous connects, `Authorization: Bearer` from a Node client, the
 * upgrade's origin and capacity checks, a stopped hub, and the connect
 * timeout of a client that never sends connect.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Centrifuge } from 'centrifuge';
import type { LogEntry } from '../../../src/server/server.ts';
import { cleanupHubs, expectRefused, makeToken, type RunningHub } from '../server/harness.ts';
import {
  CHANNEL_PATH,
  channelLimits,
  closeClients,
  closeRawClients,
  connected,
  connectionToken,
  nextEvent,
  rawChannelClient,
  recordEvents,
  sdkClient,
  startChannelHub,
  subscribed,
  websocketWithHeaders,
  within,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  closeRawClients();
  await cleanupHubs();
});

/** A hub whose `whoami` RPC answers the connection's user and client id. */
function whoamiHub(config: Parameters<typeof startChannelHub>[0] = {}): Promise<RunningHub> {
  return startChannelHub({
    channelHooks: { onRpc: ({ client }) => ({ user: client.user, client: client.id }) },
    ...config,
  });
}

async function whoami(client: Centrifuge): Promise<{ user: string; client: string }> {
  const result = await client.rpc('whoami', {});
  return result.data as { user: string; client: string };
}

/** Connects and expects a final disconnect with `code`; then checks that no reconnect follows. */
async function expectFinalDisconnect(client: Centrifuge, code: number): Promise<void> {
  const events = recordEvents(client, ['connecting', 'connected', 'disconnected']);
  const disconnected = nextEvent<{ code: number; reason: string }>(client, 'disconnected');
  client.connect();
  assert.equal((await disconnected).code, code);
  await sleep(300); // several reconnect delays (50–200 ms): none may start
  assert.deepEqual(events, ['connecting:0', `disconnected:${code}`]);
  assert.equal(client.state, 'disconnected');
}

describe('channel connect with the official SDK', () => {
  it('connects with a valid token and is that user under the announced client id', async () => {
    const hub = await whoamiHub();
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    const ctx = await connected(client);
    assert.match(ctx.client, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.deepEqual(await whoami(client), { user: 'alice', client: ctx.client });
  });

  it('refuses a token with a wrong signature with 3500 and the SDK does not reconnect', async () => {
    const hub = await whoamiHub();
    const token = await makeToken({ sub: 'alice' }, { secret: randomBytes(32) });
    await expectFinalDisconnect(sdkClient(hub, { token }), 3500);
  });

  it('refuses a malformed token with 3500', async () => {
    const hub = await whoamiHub();
    await expectFinalDisconnect(sdkClient(hub, { token: 'not-a-jwt' }), 3500);
  });

  it('answers an expired token with 109, and the SDK connects with the one getToken gives', async () => {
    const hub = await whoamiHub();
    const expired = await makeToken({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 60 });
    let calls = 0;
    const client = sdkClient(hub, {
      token: expired,
      getToken: async () => {
        calls++;
        return connectionToken('alice');
      },
    });
    const errors: { type: string; error: { code: number } }[] = [];
    client.on('error', (ctx) => errors.push(ctx as never));
    await connected(client);
    assert.deepEqual(
      errors.map((e) => [e.type, e.error.code]),
      [['connect', 109]],
    );
    assert.equal(calls, 1);
    assert.equal((await whoami(client)).user, 'alice');
  });

  it('answers a connect whose token check hangs with 100 after hookTimeout, and one that fails with 100 (logged)', async () => {
    let calls = 0;
    const hub = await whoamiHub({
      channelLimits: channelLimits({ hookTimeout: 300 }),
      tokenAuthenticator: {
        authenticate: (token) => {
          calls++;
          if (token === 'hang') return new Promise(() => {});
          return Promise.reject(new Error('identity provider down'));
        },
      },
    });
    const logged: LogEntry[] = [];
    hub.ws.log = (entry) => logged.push(entry);
    for (const token of ['hang', 'outage']) {
      const client = sdkClient(hub, { token });
      const started = performance.now();
      const error = nextEvent<{ type: string; error: unknown }>(client, 'error');
      client.connect();
      assert.deepEqual(await error, {
        type: 'connect',
        error: { code: 100, message: 'internal server error', temporary: true },
      });
      const ms = performance.now() - started;
      if (token === 'hang') assert.ok(ms >= 280 && ms < 1500, `100 after ${ms} ms`);
      client.disconnect();
    }
    assert.ok(calls >= 2);
    assert.ok(
      logged.some((e) => e.event === 'channel_error' && /identity provider down/.test(String(e.error))),
    );
  });

  it('refuses a connect without a token with 3501 when anonymous connects are not allowed', async () => {
    const hub = await whoamiHub();
    await expectFinalDisconnect(sdkClient(hub), 3501);
  });

  it('connects anonymously as user "" when allowAnonymousConnect is on', async () => {
    const hub = await whoamiHub({ channelLimits: channelLimits({ allowAnonymousConnect: true }) });
    const client = sdkClient(hub);
    const ctx = await connected(client);
    assert.deepEqual(await whoami(client), { user: '', client: ctx.client });
  });

  it('takes the user from an Authorization: Bearer header when the connect carries no token', async () => {
    const hub = await whoamiHub();
    const headers = { Authorization: `Bearer ${await connectionToken('bob')}` };
    const client = sdkClient(hub, { websocket: websocketWithHeaders(headers) });
    await connected(client);
    assert.equal((await whoami(client)).user, 'bob');
  });

  it('answers an expired Authorization header token with 109; without getToken the SDK stops (unauthorized)', async () => {
    const hub = await whoamiHub();
    const expired = await makeToken({ sub: 'bob', exp: Math.floor(Date.now() / 1000) - 60 });
    const client = sdkClient(hub, {
      websocket: websocketWithHeaders({ Authorization: `Bearer ${expired}` }),
    });
    const errors: unknown[] = [];
    client.on('error', (ctx) => errors.push([ctx.type, ctx.error.code]));
    const disconnected = nextEvent(client, 'disconnected');
    client.connect();
    assert.deepEqual(await disconnected, { code: 1, reason: 'unauthorized' });
    assert.deepEqual(errors, [
      ['connect', 109],
      ['configuration', 12], // the SDK's badConfiguration: no getToken
    ]);
  });

  it('prefers the connect token over the Authorization header', async () => {
    const hub = await whoamiHub();
    const headers = { Authorization: `Bearer ${await connectionToken('bob')}` };
    const client = sdkClient(hub, {
      websocket: websocketWithHeaders(headers),
      token: await connectionToken('carol'),
    });
    await connected(client);
    assert.equal((await whoami(client)).user, 'carol');
  });

  it('refuses the upgrade from an origin that is not allowed, with 403 JSON like /ws', async () => {
    const hub = await whoamiHub({ allowedOrigins: ['https://good.example'] });
    await expectRefused(
      hub.url(CHANNEL_PATH),
      { headers: { Origin: 'https://evil.example' } },
      403,
      'WEBSOCKET_FORBIDDEN_ORIGIN',
    );
    const client = sdkClient(hub, {
      token: await connectionToken('alice'),
      websocket: websocketWithHeaders({ Origin: 'https://good.example' }),
    });
    await connected(client);
  });

  it('refuses upgrades with 503 once subscriptions fill maxRoomRegistrations, and a subscribe beyond with 106', async () => {
    const hub = await whoamiHub({
      maxRoomRegistrations: 1,
      channels: { allowSubscribeForClient: true },
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    await subscribed(client, 'first');
    const { body } = await expectRefused(hub.url(CHANNEL_PATH), {}, 503, 'WEBSOCKET_JOIN_DENIED');
    assert.equal(body.error.category, 'capacity');
    const second = client.newSubscription('second');
    const unsubscribed = nextEvent<unknown>(second, 'unsubscribed');
    second.subscribe();
    assert.deepEqual(await unsubscribed, { channel: 'second', code: 106, reason: 'limit exceeded' });
    assert.equal(client.state, 'connected');
  });

  it('refuses upgrades with 503 when the hub is stopped, and closes a subscribe then with 3001', async () => {
    const hub = await whoamiHub({ channels: { allowSubscribeForClient: true } });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    await hub.ws.stop();
    const { body } = await expectRefused(hub.url(CHANNEL_PATH), {}, 503, 'WEBSOCKET_JOIN_DENIED');
    assert.equal(body.error.category, 'unavailable');
    const connecting = nextEvent<{ code: number }>(client, 'connecting');
    client.newSubscription('late').subscribe();
    assert.equal((await connecting).code, 3001);
  });
});

describe('channel connect timeout', () => {
  it('closes a client that never sends connect with 3502 within connectTimeout', async () => {
    const hub = await startChannelHub({ channelLimits: channelLimits({ connectTimeout: 300 }) });
    const raw = await rawChannelClient(hub);
    const close = await within(raw.closed, 3000, 'close');
    assert.equal(close.code, 3502);
    assert.equal(close.reason, 'stale');
    assert.ok(close.afterMs >= 250 && close.afterMs < 1500, `closed after ${close.afterMs} ms`);
  });

  it('closes a client whose first command is not connect with 3501', async () => {
    const hub = await startChannelHub();
    const raw = await rawChannelClient(hub);
    raw.send({ id: 1, subscribe: { channel: 'news' } });
    const close = await within(raw.closed, 3000, 'close');
    assert.deepEqual([close.code, close.reason], [3501, 'bad request']);
    assert.deepEqual(raw.messages, []);
  });

  it('closes a second connect on the same connection with 3501', async () => {
    const hub = await startChannelHub();
    const raw = await rawChannelClient(hub);
    const reply = await raw.connect(await connectionToken('alice'));
    assert.equal(typeof (reply.connect as { client: string }).client, 'string');
    raw.send({ id: 2, connect: { token: await connectionToken('alice') } });
    const close = await within(raw.closed, 3000, 'close');
    assert.equal(close.code, 3501);
  });
});
