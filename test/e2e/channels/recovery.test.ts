// Recovery with the official SDK: a subscriber whose connection drops
// (its TCP socket destroyed by the server, or a 3011 force reconnect)
// misses publications made through the API and by a raw /ws room member,
// and gets each of them once, in order, when the SDK reconnects; an
// unrecoverable position (more missed than kept, history removed, wrong
// epoch) is reported as recovered: false with no partial list.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { Centrifuge, Subscription, SubscribedContext } from 'centrifuge';
import type { ChannelsConfig } from '../../../src/channels/options.ts';
import { authHeaders, cleanupHubs, connectClient, type RunningHub } from '../server/harness.ts';
import {
  RawProtocolClient,
  atLeast,
  closeRawProtocolClients,
  closeClients,
  connected,
  connectionToken,
  captureSockets,
  channelLimits,
  nextEvent,
  pause,
  record,
  sdkClient,
  startChannelHub,
  subscribed,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  closeRawProtocolClients();
  await cleanupHubs();
});

const CHANNEL = 'chat:general';

function config(extra: Partial<ChannelsConfig> = {}): ChannelsConfig {
  return {
    namespaces: [
      {
        name: 'chat',
        allowSubscribeForClient: true,
        historySize: 5,
        historyTtl: 60_000,
        forceRecovery: true,
        ...extra,
      },
    ],
  };
}

interface Subscriber {
  hub: RunningHub;
  client: Centrifuge;
  sub: Subscription;
  pubs: Array<{ data: unknown; offset?: number }>;
  subscribedEvents: SubscribedContext[];
  /** Destroys the subscriber's TCP socket from the server side. */
  drop(): number;
}

/** A hub, an SDK subscriber to CHANNEL (reconnecting after ≥ 400 ms), with its publications and 'subscribed' events. */
async function subscriber(
  channels: ChannelsConfig,
  options: { since?: { offset: number; epoch: string } } = {},
): Promise<Subscriber> {
  const hub = await startChannelHub({ channels });
  const sockets = captureSockets(hub);
  // The reconnect waits at least 400 ms: time for the test to publish while the client is away.
  const client = sdkClient(hub, {
    token: await connectionToken('alice'),
    minReconnectDelay: 400,
    maxReconnectDelay: 500,
  });
  await connected(client);
  sockets.stop();
  const sub = client.newSubscription(CHANNEL, options.since === undefined ? {} : { since: options.since });
  const pubs = record<{ data: unknown; offset?: number }>(sub, 'publication');
  const subscribedEvents = record<SubscribedContext>(sub, 'subscribed');
  sub.subscribe();
  await atLeast(subscribedEvents, 1);
  return { hub, client, sub, pubs, subscribedEvents, drop: () => sockets.drop() };
}

const dataOf = (pubs: Array<{ data: unknown }>): unknown[] => pubs.map((p) => p.data);

describe('recovery', () => {
  for (const how of ['dropped socket', 'force reconnect 3011'] as const) {
    it(`after a ${how}: every missed publication (API and raw member) once, in order`, async () => {
      const s = await subscriber(config());
      const channels = s.hub.ws.channels!;
      assert.equal(s.subscribedEvents[0]!.recoverable, true);
      assert.equal(s.subscribedEvents[0]!.wasRecovering, false);
      const raw = await connectClient(s.hub.url(`/ws?room=${CHANNEL}`), { headers: await authHeaders() });
      await channels.publish(CHANNEL, { n: 1 });
      await raw.conn.sendText('{"n":2}');
      await atLeast(s.pubs, 2);

      const connecting = nextEvent<{ code: number; reason: string }>(s.client, 'connecting');
      if (how === 'dropped socket') assert.equal(s.drop(), 1);
      else await channels.disconnect('alice', { disconnect: { code: 3011, reason: 'force reconnect' } });
      const why = await connecting;
      if (how === 'force reconnect 3011') assert.deepEqual(why, { code: 3011, reason: 'force reconnect' });
      // While the client is away (its reconnect waits ≥ 400 ms):
      await channels.publish(CHANNEL, { n: 3 });
      await raw.conn.sendText('{"n":4}');
      await raw.conn.sendText('not json');
      for (let i = 0; i < 100 && (await channels.history(CHANNEL)).offset < 5; i++) await pause(5);
      assert.equal((await channels.history(CHANNEL)).offset, 5);
      assert.equal(s.subscribedEvents.length, 1, 'all three were published before the client came back');

      await atLeast(s.subscribedEvents, 2, 3000);
      await atLeast(s.pubs, 5);
      await pause(100);
      const again = s.subscribedEvents[1]!;
      assert.deepEqual(
        [again.wasRecovering, again.recovered, again.hasRecoveredPublications],
        [true, true, true],
      );
      assert.deepEqual(dataOf(s.pubs), [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, 'not json']);
      assert.deepEqual(
        s.pubs.map((p) => p.offset),
        [1, 2, 3, 4, 5],
      );
      // live again after the recovery
      await channels.publish(CHANNEL, { n: 6 });
      await atLeast(s.pubs, 6);
      assert.deepEqual(s.pubs[5]!.data, { n: 6 });
      raw.conn.close();
      await raw.conn.closed();
    });
  }

  it('more missed than historySize: recovered false, no partial list', async () => {
    const s = await subscriber(config());
    const channels = s.hub.ws.channels!;
    await channels.publish(CHANNEL, { n: 1 });
    await atLeast(s.pubs, 1);
    const connecting = nextEvent(s.client, 'connecting');
    s.drop();
    await connecting;
    for (let n = 2; n <= 8; n++) await channels.publish(CHANNEL, { n });
    await atLeast(s.subscribedEvents, 2, 3000);
    await pause(100);
    const again = s.subscribedEvents[1]!;
    assert.deepEqual([again.wasRecovering, again.recovered], [true, false]);
    assert.deepEqual(dataOf(s.pubs), [{ n: 1 }]);
  });

  it('after historyRemove: recovered false', async () => {
    const s = await subscriber(config());
    const channels = s.hub.ws.channels!;
    await channels.publish(CHANNEL, { n: 1 });
    await atLeast(s.pubs, 1);
    const connecting = nextEvent(s.client, 'connecting');
    s.drop();
    await connecting;
    await channels.publish(CHANNEL, { n: 2 });
    await channels.historyRemove(CHANNEL);
    await atLeast(s.subscribedEvents, 2, 3000);
    await pause(100);
    assert.deepEqual([s.subscribedEvents[1]!.wasRecovering, s.subscribedEvents[1]!.recovered], [true, false]);
    assert.deepEqual(dataOf(s.pubs), [{ n: 1 }]);
  });

  it('publications expired (historyTtl) while away: recovered false', async () => {
    const s = await subscriber(config({ historyTtl: 100 }));
    const channels = s.hub.ws.channels!;
    await channels.publish(CHANNEL, { n: 1 });
    await atLeast(s.pubs, 1);
    const connecting = nextEvent(s.client, 'connecting');
    s.drop();
    await connecting;
    await channels.publish(CHANNEL, { n: 2 });
    // the reconnect waits ≥ 400 ms: n 2 has expired by then
    await atLeast(s.subscribedEvents, 2, 3000);
    await pause(100);
    assert.deepEqual([s.subscribedEvents[1]!.wasRecovering, s.subscribedEvents[1]!.recovered], [true, false]);
    assert.deepEqual(dataOf(s.pubs), [{ n: 1 }]);
  });

  it('the since option: the right epoch recovers, a wrong epoch is recovered false', async () => {
    const hub = await startChannelHub({ channels: config() });
    const first = await hub.ws.channels!.publish(CHANNEL, { n: 1 });
    await hub.ws.channels!.publish(CHANNEL, { n: 2 });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const good = client.newSubscription(CHANNEL, { since: { offset: first.offset!, epoch: first.epoch! } });
    const goodPubs = record<{ data: unknown }>(good, 'publication');
    const goodCtx = nextEvent<SubscribedContext>(good, 'subscribed');
    good.subscribe();
    const ctx = await goodCtx;
    await pause(50);
    assert.deepEqual([ctx.wasRecovering, ctx.recovered], [true, true]);
    assert.deepEqual(dataOf(goodPubs), [{ n: 2 }]);

    const other = sdkClient(hub, { token: await connectionToken('bob') });
    await connected(other);
    const bad = other.newSubscription(CHANNEL, { since: { offset: 0, epoch: 'not-the-epoch' } });
    const badPubs = record(bad, 'publication');
    const badCtx = nextEvent<SubscribedContext>(bad, 'subscribed');
    bad.subscribe();
    const ctx2 = await badCtx;
    await pause(50);
    assert.deepEqual([ctx2.wasRecovering, ctx2.recovered], [true, false]);
    assert.equal(badPubs.length, 0);
  });

  it('a publication made while a recovering subscribe is admitted arrives once', async () => {
    const hub: RunningHub = await startChannelHub({
      channels: { namespaces: [{ name: 'chat', historySize: 5, historyTtl: 60_000, forceRecovery: true }] },
      channelHooks: {
        // Publishes in the same turn as the subscribe it allows: the push is
        // then waiting for the channel's current subscribers.
        authorizeSubscribe: async (client) => {
          if (client.user === 'late') await hub.ws.channels!.publish(CHANNEL, { n: 2 });
          return true;
        },
      },
    });
    const early = sdkClient(hub, { token: await connectionToken('early') });
    await connected(early);
    const { sub: earlySub } = await subscribed(early, CHANNEL);
    const earlyPubs = record<{ data: unknown }>(earlySub, 'publication');
    const first = await hub.ws.channels!.publish(CHANNEL, { n: 1 });
    // A raw client: the SDK would ignore a push that came before its subscribe reply.
    const late = await RawProtocolClient.open(hub);
    await late.call('connect', { token: await connectionToken('late') });
    const reply = await late.call('subscribe', {
      channel: CHANNEL,
      recover: true,
      offset: first.offset,
      epoch: first.epoch,
    });
    const result = reply.subscribe as { recovered: boolean; publications: Array<{ data: unknown }> };
    assert.deepEqual([result.recovered, dataOf(result.publications)], [true, [{ n: 2 }]]);
    await pause(100);
    assert.deepEqual(late.pushes, [], 'no push of what the recovery returned');
    assert.deepEqual(dataOf(earlyPubs), [{ n: 1 }, { n: 2 }]);
  });

  it('a server-side subscription (token channels claim) recovers through connect after a dropped socket', async () => {
    const hub = await startChannelHub({ channels: config() });
    const sockets = captureSockets(hub);
    const client = sdkClient(hub, {
      token: await connectionToken('alice', { channels: [CHANNEL] }),
      minReconnectDelay: 400,
      maxReconnectDelay: 500,
    });
    const pubs = record<{ channel: string; data: unknown; offset?: number }>(client, 'publication');
    const subscribedEvents = record<SubscribedContext>(client, 'subscribed');
    await connected(client);
    sockets.stop();
    await atLeast(subscribedEvents, 1);
    assert.equal(subscribedEvents[0]!.recoverable, true);
    const api = hub.ws.channels!;
    await api.publish(CHANNEL, { n: 1 });
    await atLeast(pubs, 1);
    const connecting = nextEvent(client, 'connecting');
    assert.equal(sockets.drop(), 1);
    await connecting;
    await api.publish(CHANNEL, { n: 2 });
    await api.publish(CHANNEL, { n: 3 });
    await atLeast(subscribedEvents, 2, 3000);
    await atLeast(pubs, 3);
    await pause(100);
    const again = subscribedEvents[1]!;
    assert.deepEqual([again.channel, again.wasRecovering, again.recovered], [CHANNEL, true, true]);
    assert.deepEqual(
      pubs.map((p) => [p.channel, p.data, p.offset]),
      [1, 2, 3].map((n) => [CHANNEL, { n }, n]),
    );
  });

  it('more missed than maxRecoveredPublications: recovered false; within it: recovered', async () => {
    const hub = await startChannelHub({
      channels: config(),
      channelLimits: channelLimits({ maxRecoveredPublications: 2 }),
    });
    const first = await hub.ws.channels!.publish(CHANNEL, { n: 1 });
    for (let n = 2; n <= 4; n++) await hub.ws.channels!.publish(CHANNEL, { n });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const results: Array<[boolean, unknown[]]> = [];
    for (const offset of [first.offset!, first.offset! + 1]) {
      const sub = client.newSubscription(CHANNEL, { since: { offset, epoch: first.epoch! } });
      const pubs = record<{ data: unknown }>(sub, 'publication');
      const ctx = nextEvent<SubscribedContext>(sub, 'subscribed');
      sub.subscribe();
      const { recovered } = await ctx;
      await pause(50);
      results.push([recovered, dataOf(pubs)]);
      sub.unsubscribe();
      client.removeSubscription(sub);
    }
    assert.deepEqual(results, [
      [false, []],
      [true, [{ n: 3 }, { n: 4 }]],
    ]);
  });

  it('recoverable: true is honoured only where allowed', async () => {
    const hub = await startChannelHub({
      channels: {
        namespaces: [
          {
            name: 'open',
            allowSubscribeForClient: true,
            historySize: 5,
            historyTtl: 60_000,
            allowRecovery: true,
          },
          { name: 'shut', allowSubscribeForClient: true, historySize: 5, historyTtl: 60_000 },
        ],
      },
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const { ctx: openCtx } = await subscribed(client, 'open:x', { recoverable: true });
    const { ctx: shutCtx } = await subscribed(client, 'shut:x', { recoverable: true });
    assert.equal(openCtx.recoverable, true);
    assert.equal(shutCtx.recoverable, false);
  });
});
