/**
 * Connection token refresh end to end: the official SDK refreshes an
 * expiring token through `getToken` without reconnecting; a token that
 * lapses is closed with 3005 after `exp + expiredCloseDelay`; a refresh
 * token of another user is 3500, an expired one 110 (final for the SDK).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanupHubs, makeToken } from '../server/harness.ts';
import {
  channelLimits,
  closeClients,
  closeRawClients,
  connected,
  connectionToken,
  nextEvent,
  publications,
  rawChannelClient,
  recordEvents,
  sdkClient,
  startChannelHub,
  subscribed,
  within,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  closeRawClients();
  await cleanupHubs();
});

/** A token for `sub` whose `exp` is `seconds` whole seconds from now; returns it with that exp. */
async function expiringToken(sub: string, seconds: number): Promise<{ token: string; exp: number }> {
  const exp = Math.floor(Date.now() / 1000) + seconds;
  return { token: await makeToken({ sub, exp }), exp };
}

/**
 * A token whose `exp` is the current second, made just after the second
 * began: valid for about a second more, with an announced ttl of 0.
 */
async function tokenExpiringNow(sub: string): Promise<{ token: string; exp: number }> {
  await sleep(1000 - (Date.now() % 1000) + 20);
  return expiringToken(sub, 0);
}

const CLOSE_DELAY = 300;

describe('channel token refresh', () => {
  it('refreshes through getToken before the grace ends: no reconnect, publications keep coming', async () => {
    const hub = await startChannelHub({
      channels: { allowSubscribeForClient: true },
      channelLimits: channelLimits({ expiredCloseDelay: 1200 }),
    });
    const { token, exp } = await expiringToken('alice', 1);
    let calls = 0;
    const client = sdkClient(hub, {
      token,
      getToken: async () => {
        calls++;
        return connectionToken('alice');
      },
    });
    const ctx = await connected(client);
    const events = recordEvents(client, ['connecting', 'disconnected', 'error']);
    const { sub } = await subscribed(client, 'news');
    // Past the first token's exp and its grace: a connection that did not refresh is gone by now.
    await sleep(exp * 1000 + 1200 + 300 - Date.now());
    assert.equal(calls, 1);
    assert.deepEqual(events, []);
    assert.equal(client.state, 'connected');
    const got = publications(sub, 1);
    await hub.ws.channels!.publish('news', { after: 'exp' });
    assert.deepEqual(await got, [{ after: 'exp' }]);
    const info = await hub.ws.channels!.info();
    assert.equal(info.nodes[0]!.num_clients, 1);
    assert.match(ctx.client, /^[0-9a-f-]{36}$/);
  });

  it('answers refresh with the client id, the version and the new ttl', async () => {
    const hub = await startChannelHub();
    const raw = await rawChannelClient(hub);
    const connect = (await raw.connect((await expiringToken('alice', 30)).token)).connect as Record<
      string,
      unknown
    >;
    assert.equal(connect.expires, true);
    assert.ok((connect.ttl as number) >= 29 && (connect.ttl as number) <= 31, `ttl ${String(connect.ttl)}`);
    raw.send({ id: 2, refresh: { token: (await expiringToken('alice', 100)).token } });
    const reply = (await raw.reply(2)).refresh as Record<string, unknown>;
    assert.deepEqual(Object.keys(reply).sort(), ['client', 'expires', 'ttl', 'version']);
    assert.equal(reply.client, connect.client);
    assert.equal(reply.expires, true);
    assert.ok((reply.ttl as number) >= 99 && (reply.ttl as number) <= 101, `ttl ${String(reply.ttl)}`);
  });

  it('closes a connection whose token lapsed without refresh with 3005 at exp + expiredCloseDelay', async () => {
    const hub = await startChannelHub({ channelLimits: channelLimits({ expiredCloseDelay: CLOSE_DELAY }) });
    const raw = await rawChannelClient(hub);
    const { token, exp } = await tokenExpiringNow('alice');
    await raw.connect(token);
    const close = await within(raw.closed, 3000, 'close');
    const at = Date.now();
    assert.deepEqual([close.code, close.reason], [3005, 'connection expired']);
    // A token is valid through its exp second, as the verifier counts it.
    const deadline = (exp + 1) * 1000 + CLOSE_DELAY;
    assert.ok(at >= deadline - 20 && at < deadline + 600, `closed ${at - deadline} ms after the deadline`);
  });

  it('closes an SDK client whose getToken fails with 3005, and the SDK reconnects', async () => {
    // With ttl 0 the SDK asks getToken at once, before exp + the grace.
    const hub = await startChannelHub({ channelLimits: channelLimits({ expiredCloseDelay: CLOSE_DELAY }) });
    const { token } = await tokenExpiringNow('alice');
    const client = sdkClient(hub, {
      token,
      getToken: () => Promise.reject(new Error('token service down')),
    });
    await connected(client);
    const errors: string[] = [];
    client.on('error', (ctx) => errors.push(ctx.type));
    const connecting = await nextEvent<{ code: number; reason: string }>(client, 'connecting', 3000);
    assert.deepEqual(connecting, { code: 3005, reason: 'connection expired' });
    assert.deepEqual(errors, ['refreshToken']);
  });

  it('ends an SDK client whose refresh cannot succeed: its own unauthorized without getToken, 3500 for another user’s token, 110 for an expired one; none reconnects', async () => {
    const hub = await startChannelHub({ channelLimits: channelLimits({ expiredCloseDelay: 2000 }) });
    const cases: [string, (() => Promise<string>) | undefined, unknown][] = [
      // Without getToken the SDK gives up when the ttl ends, before the server closes.
      ['no getToken', undefined, { code: 1, reason: 'unauthorized' }],
      ['another user', () => connectionToken('mallory'), { code: 3500, reason: 'invalid token' }],
      [
        'expired',
        () => makeToken({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 60 }),
        { code: 110, reason: 'expired' },
      ],
    ];
    const { token } = await expiringToken('alice', 1);
    await Promise.all(
      cases.map(async ([name, getToken, expected]) => {
        const client = sdkClient(hub, getToken === undefined ? { token } : { token, getToken });
        await connected(client);
        const events = recordEvents(client, ['connecting', 'disconnected']);
        const disconnected = await nextEvent(client, 'disconnected', 3000);
        assert.deepEqual(disconnected, expected, name);
        await sleep(300); // several reconnect delays
        assert.deepEqual(events, [`disconnected:${(expected as { code: number }).code}`], name);
      }),
    );
  });

  it('answers the same 110 to a raw client and keeps its connection', async () => {
    const hub = await startChannelHub({ channelHooks: { onRpc: () => 'still here' } });
    const raw = await rawChannelClient(hub);
    await raw.connect(await connectionToken('alice'));
    raw.send({ id: 2, refresh: { token: await makeToken({ sub: 'alice', exp: 1 }) } });
    assert.deepEqual(await raw.reply(2), { id: 2, error: { code: 110, message: 'expired' } });
    raw.send({ id: 3, rpc: { method: 'x' } });
    assert.deepEqual(await raw.reply(3), { id: 3, rpc: { data: 'still here' } });
  });
});
