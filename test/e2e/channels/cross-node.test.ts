// Channels across nodes: two WshubServers in one cluster (the in-memory
// bus, a real redis-server as broker only, and Redis as broker and channel
// engine). An SDK subscriber on node B gets what is published on node A,
// by the API and by an SDK publisher. A client that moves from A to B with
// a recovery position: with per-node state (the in-memory engine) it is
// told recovered: false (epochs are per node), never a wrong recovered:
// true; with the Redis engine the stream is shared, so it recovers.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { SubscribedContext } from 'centrifuge';
import { Cluster } from '../../../src/broker/cluster.ts';
import { MemoryBus, MemoryTransport } from '../../../src/broker/memory.ts';
import { RedisTransport } from '../../../src/broker/redis.ts';
import { RedisEngine } from '../../../src/channels/engine-redis.ts';
import type { Transport } from '../../../src/broker/transport.ts';
import { redisRequirement, startRedis, type RedisServer } from '../../helpers/redis.ts';
import { cleanupHubs, type RunningHub } from '../server/harness.ts';
import {
  closeClients,
  connected,
  connectionToken,
  nextEvent,
  pause,
  record,
  sdkClient,
  startChannelHub,
  subscribed,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

const channels = {
  allowSubscribeForClient: true,
  allowPublishForSubscriber: true,
  historySize: 10,
  historyTtl: 60_000,
  forceRecovery: true,
};

/** Per-node state (undefined: the in-memory engine) or a Redis engine per node. */
type Engines = (() => RedisEngine) | undefined;

async function node(transport: Transport, engine: Engines): Promise<RunningHub> {
  const cluster = new Cluster({ transport, presenceInterval: 100 });
  const hub = await startChannelHub({ channels, cluster, channelEngine: engine?.() });
  await hub.ws.start();
  return hub;
}

/** Waits until a publication on `from` reaches a subscriber of `channel` on the other node (the broker subscription is in place). */
async function linked(from: RunningHub, to: RunningHub, channel: string): Promise<void> {
  const probe = sdkClient(to, { token: await connectionToken('probe') });
  await connected(probe);
  const { sub } = await subscribed(probe, channel);
  let seen = false;
  sub.on('publication', () => (seen = true));
  for (let i = 0; i < 200 && !seen; i++) {
    await from.ws.channels!.publish(channel, 'probe', { skipHistory: true });
    await pause(10);
  }
  assert.ok(seen, 'the nodes are linked');
  probe.disconnect();
}

function crossNodeTests(makeTransports: () => Promise<[Transport, Transport]>, engine?: Engines): void {
  const shared = engine !== undefined;
  it('an SDK subscriber on B receives publications made on A by the API and by an SDK publisher', async () => {
    const [ta, tb] = await makeTransports();
    const a = await node(ta, engine);
    const b = await node(tb, engine);
    const reader = sdkClient(b, { token: await connectionToken('reader') });
    await connected(reader);
    const { sub } = await subscribed(reader, 'news');
    const writer = sdkClient(a, { token: await connectionToken('writer') });
    await connected(writer);
    const { sub: writerSub } = await subscribed(writer, 'news');
    await linked(a, b, 'news');
    const got = record<{ data: unknown; offset?: number }>(sub, 'publication');
    const local = record<{ data: unknown }>(writerSub, 'publication');
    for (let n = 1; n <= 20; n++) {
      if (n % 2 === 0) await writerSub.publish({ n });
      else await a.ws.channels!.publish('news', { n });
    }
    for (let i = 0; i < 300 && got.length < 20; i++) await pause(10);
    assert.deepEqual(
      got.map((p) => p.data),
      Array.from({ length: 20 }, (_, i) => ({ n: i + 1 })),
    );
    // the subscriber on A gets each once too (no echo back from the broker)
    for (let i = 0; i < 300 && local.length < 20; i++) await pause(10);
    await pause(100);
    assert.deepEqual(
      local.map((p) => p.data),
      Array.from({ length: 20 }, (_, i) => ({ n: i + 1 })),
    );
    // node B numbers them in its own history (per-node state) or both share one stream
    const offsets = got.map((p) => p.offset!);
    assert.deepEqual(
      offsets,
      [...offsets].sort((x, y) => x - y),
    );
    assert.equal(new Set(offsets).size, 20);
    if (shared)
      assert.deepEqual(
        local.map((p) => (p as { offset?: number }).offset),
        offsets,
      );
  });

  it(`a client moving from A to B with a recovery position gets recovered: ${shared}`, async () => {
    const [ta, tb] = await makeTransports();
    const a = await node(ta, engine);
    const b = await node(tb, engine);
    await linked(a, b, 'news');
    const onA = sdkClient(a, { token: await connectionToken('alice') });
    await connected(onA);
    const { sub } = await subscribed(onA, 'news');
    const pubs = record<{ data: unknown; offset?: number }>(sub, 'publication');
    await a.ws.channels!.publish('news', { n: 1 });
    for (let i = 0; i < 100 && pubs.length < 1; i++) await pause(10);
    const position = { offset: pubs[0]!.offset!, epoch: (await a.ws.channels!.history('news')).epoch };
    onA.disconnect();
    await a.ws.channels!.publish('news', { n: 2 });
    await pause(50);

    const onB = sdkClient(b, { token: await connectionToken('alice') });
    await connected(onB);
    const moved = onB.newSubscription('news', { since: position });
    const movedPubs = record(moved, 'publication');
    const ctx = nextEvent<SubscribedContext>(moved, 'subscribed');
    moved.subscribe();
    const result = await ctx;
    await pause(50);
    if (shared) {
      assert.equal((await b.ws.channels!.history('news')).epoch, position.epoch);
      assert.deepEqual([result.wasRecovering, result.recovered], [true, true]);
      assert.deepEqual(
        movedPubs.map((p) => (p as { data: unknown }).data),
        [{ n: 2 }],
      );
      return;
    }
    assert.notEqual((await b.ws.channels!.history('news')).epoch, position.epoch);
    assert.deepEqual([result.wasRecovering, result.recovered], [true, false]);
    assert.equal(movedPubs.length, 0);
  });
}

describe('channels across nodes (memory bus)', () => {
  crossNodeTests(() => {
    const bus = new MemoryBus();
    return Promise.resolve([new MemoryTransport(bus), new MemoryTransport(bus)]);
  });
});

describe('channels across nodes (redis)', redisRequirement(), () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });
  crossNodeTests(() =>
    Promise.resolve([new RedisTransport({ url: redis.url }), new RedisTransport({ url: redis.url })]),
  );
});

describe('channels across nodes (redis broker and redis channel engine)', redisRequirement(), () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });
  crossNodeTests(
    () => Promise.resolve([new RedisTransport({ url: redis.url }), new RedisTransport({ url: redis.url })]),
    () => new RedisEngine({ url: redis.url }),
  );
});
