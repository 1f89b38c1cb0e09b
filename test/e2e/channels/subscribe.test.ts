// Subscriptions with the official SDK: several channels on one connection,
// namespaces, who may subscribe (options, hook, anonymous), a second
// subscribe of a raw client, unsubscribe, and server-side subscriptions
// from the connection token's `channels` claim.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { cleanupHubs } from '../server/harness.ts';
import {
  RawProtocolClient,
  channelLimits,
  closeClients,
  closeRawProtocolClients,
  connected,
  connectionToken,
  pause,
  publications,
  record,
  refusedSubscribe,
  sdkClient,
  startChannelHub,
  subscribed,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  closeRawProtocolClients();
  await cleanupHubs();
});

describe('subscriptions', () => {
  it('many channels on one connection each receive only their own publications', async () => {
    const hub = await startChannelHub({ channels: { allowSubscribeForClient: true } });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const names = ['a', 'b', 'c', 'd'];
    const subs = [];
    for (const name of names) subs.push((await subscribed(client, name)).sub);
    const got = subs.map((sub) => record<{ data: unknown; channel: string }>(sub, 'publication'));
    for (let round = 0; round < 3; round++) {
      for (const name of names) await hub.ws.channels!.publish(name, { name, round });
    }
    await hub.ws.channels!.publish('elsewhere', { name: 'elsewhere' });
    await pause(100);
    names.forEach((name, i) => {
      assert.deepEqual(
        got[i]!.map((p) => [p.channel, p.data]),
        [0, 1, 2].map((round) => [name, { name, round }]),
      );
    });
  });

  it('a namespace gives its options; an unknown namespace is 102; a name without ":" takes the top level', async () => {
    const hub = await startChannelHub({
      channels: {
        allowSubscribeForClient: false,
        namespaces: [{ name: 'chat', allowSubscribeForClient: true, presence: true }],
      },
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    await subscribed(client, 'chat:general');
    // chat's own option (presence) applies to its channels
    assert.deepEqual(Object.keys(await hub.ws.channels!.presence('chat:general')).length, 1);
    assert.deepEqual(await refusedSubscribe(client, 'nope:general'), {
      code: 102,
      reason: 'unknown channel',
    });
    // the top level does not allow subscribing without a token
    assert.deepEqual(await refusedSubscribe(client, 'general'), { code: 103, reason: 'permission denied' });
    // and the namespace's options do not leak to the top level
    await assert.rejects(hub.ws.channels!.presence('general'), {
      error: { code: 108, message: 'not available' },
    });
  });

  it('no token and no allowSubscribeForClient: 103', async () => {
    const hub = await startChannelHub({ channels: {} });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    assert.deepEqual(await refusedSubscribe(client, 'news'), { code: 103, reason: 'permission denied' });
    assert.equal(client.state, 'connected', 'a refused subscribe keeps the connection');
  });

  it('authorizeSubscribe allows and denies, and sees the client', async () => {
    const asked: Array<[string, string]> = [];
    const hub = await startChannelHub({
      channels: {},
      channelHooks: {
        authorizeSubscribe: async (client, channel) => {
          asked.push([client.user, channel]);
          await pause(5);
          return channel.startsWith('ok');
        },
      },
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const { sub } = await subscribed(client, 'ok-1');
    assert.deepEqual(await refusedSubscribe(client, 'no-1'), { code: 103, reason: 'permission denied' });
    assert.deepEqual(asked, [
      ['alice', 'ok-1'],
      ['alice', 'no-1'],
    ]);
    const got = publications(sub, 1);
    await hub.ws.channels!.publish('ok-1', 'hi');
    assert.deepEqual(await got, ['hi']);
  });

  it('an anonymous client needs allowSubscribeForAnonymous', async () => {
    const limits = channelLimits({ allowAnonymousConnect: true });
    const closed = await startChannelHub({
      channels: { allowSubscribeForClient: true },
      channelLimits: limits,
    });
    const anon = sdkClient(closed);
    await connected(anon);
    assert.deepEqual(await refusedSubscribe(anon, 'news'), { code: 103, reason: 'permission denied' });

    const open = await startChannelHub({
      channels: { allowSubscribeForClient: true, allowSubscribeForAnonymous: true },
      channelLimits: limits,
    });
    const anon2 = sdkClient(open);
    await connected(anon2);
    const { sub } = await subscribed(anon2, 'news');
    const got = publications(sub, 1);
    await open.ws.channels!.publish('news', 1);
    assert.deepEqual(await got, [1]);
  });

  it('a second subscribe to the same channel is 105 (raw client) and the first stays', async () => {
    const hub = await startChannelHub({ channels: { allowSubscribeForClient: true } });
    const raw = await RawProtocolClient.open(hub);
    const connect = await raw.call('connect', { token: await connectionToken('alice') });
    assert.equal(typeof (connect.connect as { client: string }).client, 'string');
    assert.deepEqual(await raw.call('subscribe', { channel: 'news' }), { id: 2, subscribe: {} });
    assert.deepEqual(await raw.call('subscribe', { channel: 'news' }), {
      id: 3,
      error: { code: 105, message: 'already subscribed' },
    });
    await hub.ws.channels!.publish('news', { n: 1 });
    await pause(50);
    assert.deepEqual(raw.pushes, [{ push: { channel: 'news', pub: { data: { n: 1 } } } }]);
  });

  it('after unsubscribe, no more publications', async () => {
    const hub = await startChannelHub({ channels: { allowSubscribeForClient: true } });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const { sub } = await subscribed(client, 'news');
    const got = record<{ data: unknown }>(sub, 'publication');
    await hub.ws.channels!.publish('news', 1);
    await pause(50);
    sub.unsubscribe();
    // wait for the server to see it: the channel has no subscriber left
    for (let i = 0; i < 100 && Object.keys(await hub.ws.channels!.channels()).length > 0; i++)
      await pause(10);
    assert.deepEqual(await hub.ws.channels!.channels(), {});
    await hub.ws.channels!.publish('news', 2);
    await pause(100);
    assert.deepEqual(
      got.map((p) => p.data),
      [1],
    );
    assert.equal(hub.ws.hub.getRoomCount('news'), 0);
  });

  it("server-side subscriptions from the token's channels claim reach the client's publication event", async () => {
    const hub = await startChannelHub({ channels: { namespaces: [{ name: 'personal' }] } });
    const client = sdkClient(hub, {
      token: await connectionToken('alice', { channels: ['personal:alice', 'alerts'] }),
    });
    const subscribedEvents = record<{ channel: string }>(client, 'subscribed');
    const pubs = record<{ channel: string; data: unknown }>(client, 'publication');
    await connected(client);
    await pause(20);
    assert.deepEqual(subscribedEvents.map((e) => e.channel).sort(), ['alerts', 'personal:alice']);
    await hub.ws.channels!.publish('personal:alice', { to: 'alice' });
    await hub.ws.channels!.publish('alerts', { level: 1 });
    await hub.ws.channels!.publish('personal:bob', { to: 'bob' });
    await pause(100);
    assert.deepEqual(
      pubs.map((p) => [p.channel, p.data]),
      [
        ['personal:alice', { to: 'alice' }],
        ['alerts', { level: 1 }],
      ],
    );
    assert.equal(hub.ws.hub.getRoomCount('alerts'), 1);
  });

  it('maxSubscriptions per connection: the next subscribe is 106', async () => {
    const hub = await startChannelHub({
      channels: { allowSubscribeForClient: true },
      channelLimits: channelLimits({ maxSubscriptions: 2 }),
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    await subscribed(client, 'one');
    const { sub } = await subscribed(client, 'two');
    assert.deepEqual(await refusedSubscribe(client, 'three'), { code: 106, reason: 'limit exceeded' });
    sub.unsubscribe();
    for (let i = 0; i < 100 && hub.ws.hub.getRoomCount('two') > 0; i++) await pause(10);
    await subscribed(client, 'three');
  });

  it('more server-side channels in the token than maxSubscriptions: disconnected 3505, no reconnect', async () => {
    const hub = await startChannelHub({
      channels: {},
      channelLimits: channelLimits({ maxSubscriptions: 2 }),
    });
    const client = sdkClient(hub, { token: await connectionToken('alice', { channels: ['a', 'b', 'c'] }) });
    const disconnected = new Promise<{ code: number; reason: string }>((resolve) =>
      client.once('disconnected', resolve),
    );
    client.connect();
    assert.deepEqual(await disconnected, { code: 3505, reason: 'channel limit' });
    await pause(50);
    assert.deepEqual(await hub.ws.channels!.channels(), {});
  });
});
