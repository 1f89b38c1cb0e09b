// Channel state in Redis shared by several wshub nodes (WshubServers in this
// process, each with its own Redis connections), with the official SDK:
// the same offsets and order on every node, recovery on another node with
// exactly the missed publications, recovery racing live publications (no
// gap, no duplicate), a sync marker that comes back too late (2500, then
// recovery), bytes without a JSON form refused (108), the admin broadcast
// answered only once stored (204, else 503), Redis restarted
// without persistence → recovered: false, presence and join/leave across
// nodes, and a raw /ws member and a
// channel subscriber on different nodes each getting every message once.
// Everything runs on one redis-server and again on a 3-master Redis Cluster
// (keys and shard channels of a channel in one slot; the restart, outage and
// lagging-proxy tests need the single server).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Cluster } from '../../../src/broker/cluster.ts';
import { RedisClusterTransport } from '../../../src/broker/redis-cluster.ts';
import { RedisTransport } from '../../../src/broker/redis.ts';
import type { Transport } from '../../../src/broker/transport.ts';
import { RedisEngine } from '../../../src/channels/engine-redis.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import { createMetricsRegistry } from '../../../src/metrics/prometheus.ts';
import {
  redisClusterRequirement,
  startRedisCluster,
  type RedisCluster,
} from '../../helpers/redis-cluster.ts';
import { startLaggingProxy } from '../../helpers/lagging-proxy.ts';
import { redisRequirement, startRedis, type RedisServer } from '../../helpers/redis.ts';
import {
  BROADCAST_SECRET,
  authHeaders,
  cleanupHubs,
  connectClient,
  type Client,
  type RunningHub,
} from '../server/harness.ts';
import type { WshubConfig } from '../../../src/config.ts';
import {
  callError,
  closeClients,
  connected,
  connectionToken,
  nextEvent,
  pause,
  record,
  sdkClient,
  sdkProtobufClient,
  startChannelHub,
  subscribed,
} from './sdk.ts';

const channels = {
  allowSubscribeForClient: true,
  allowPublishForSubscriber: true,
  allowPresenceForSubscriber: true,
  allowHistoryForSubscriber: true,
  historySize: 100,
  historyTtl: 60_000,
  forceRecovery: true,
  presence: true,
  joinLeave: true,
  forcePushJoinLeave: true,
  namespaces: [{ name: 'plain', allowSubscribeForClient: true, allowPublishForSubscriber: true }],
};

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await pause(10);
}

interface Pub {
  data: unknown;
  offset?: number;
}

/** Where the nodes keep their state: one server (restartable) or a cluster. */
interface Backend {
  url: string;
  cluster: boolean;
  transport(): Transport;
  /** The single server, for restart and outage tests; null on a cluster. */
  server: RedisServer | null;
}

describe('channel state in redis, across nodes', redisRequirement(), () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });
  stateTests(() => ({
    url: redis.url,
    cluster: false,
    transport: () => new RedisTransport({ url: redis.url }),
    server: redis,
  }));
});

describe('channel state in a 3-master redis cluster, across nodes', redisClusterRequirement(), () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster.stop();
  });
  stateTests(() => ({
    url: cluster.rootUrls.join(','),
    cluster: true,
    transport: () => new RedisClusterTransport({ rootNodes: cluster.rootUrls }),
    server: null,
  }));
});

function stateTests(backend: () => Backend): void {
  afterEach(async () => {
    closeClients();
    await cleanupHubs();
  });

  async function node(
    presenceTtl = 60_000,
    engineUrl?: string,
    extra: Partial<WshubConfig> = {},
  ): Promise<RunningHub> {
    const b = backend();
    const cluster = new Cluster({ transport: b.transport(), presenceInterval: 100 });
    const engine = new RedisEngine({
      url: engineUrl ?? b.url,
      cluster: b.cluster,
      presenceTtl,
      commandTimeout: 1000,
    });
    const hub = await startChannelHub({ channels, cluster, channelEngine: engine, ...extra });
    await hub.ws.start();
    return hub;
  }

  async function subscriber(hub: RunningHub, user: string, channel: string) {
    const client = sdkClient(hub, { token: await connectionToken(user) });
    await connected(client);
    const { sub, ctx } = await subscribed(client, channel);
    return { client, sub, ctx, pubs: record<Pub>(sub, 'publication') };
  }

  it('three nodes: SDK and API publications reach every node once, with the same offsets in the same order', async () => {
    const [a, b, c] = [await node(), await node(), await node()];
    const onA = await subscriber(a, 'ann', 'news');
    const onB = await subscriber(b, 'bob', 'news');
    const onC = await subscriber(c, 'cat', 'news');
    for (let n = 1; n <= 30; n++) {
      if (n % 3 === 0) await onB.sub.publish({ n });
      else if (n % 3 === 1) await a.ws.channels!.publish('news', { n });
      else await c.ws.channels!.publish('news', { n });
    }
    await until(() => [onA, onB, onC].every((s) => s.pubs.length >= 30));
    await pause(100);
    const expected = Array.from({ length: 30 }, (_, i) => i + 1);
    for (const s of [onA, onB, onC]) {
      assert.deepEqual(
        s.pubs.map((p) => p.offset),
        expected,
      );
      assert.deepEqual(
        s.pubs.map((p) => (p.data as { n: number }).n),
        expected,
      );
    }
    const history = await b.ws.channels!.history('news', { limit: -1 });
    assert.equal(history.offset, 30);
    assert.equal(history.epoch, (await c.ws.channels!.history('news')).epoch);
    const m = a.ws.metrics();
    assert.ok((m.redis_state_history_appends ?? 0) >= 10);
    assert.equal(m.redis_state_gaps, 0);
    assert.equal(m.history_streams, undefined, 'the in-memory engine serves nothing here');
  });

  it('a client moving from node A to node B recovers exactly the publications it missed', async () => {
    const a = await node();
    const b = await node();
    const onA = await subscriber(a, 'alice', 'moving');
    await a.ws.channels!.publish('moving', { n: 1 });
    await until(() => onA.pubs.length === 1);
    const position = { offset: onA.pubs[0]!.offset!, epoch: (await a.ws.channels!.history('moving')).epoch };
    onA.client.disconnect();
    for (let n = 2; n <= 4; n++) await b.ws.channels!.publish('moving', { n });

    const client = sdkClient(b, { token: await connectionToken('alice') });
    await connected(client);
    const moved = client.newSubscription('moving', { since: position });
    const pubs = record<Pub>(moved, 'publication');
    const ctx = nextEvent<{ wasRecovering: boolean; recovered: boolean }>(moved, 'subscribed');
    moved.subscribe();
    const result = await ctx;
    await until(() => pubs.length >= 3);
    await pause(100);
    assert.deepEqual([result.wasRecovering, result.recovered], [true, true]);
    assert.deepEqual(
      pubs.map((p) => [p.offset, p.data]),
      [
        [2, { n: 2 }],
        [3, { n: 3 }],
        [4, { n: 4 }],
      ],
    );
  });

  it('a protobuf client publishing bytes without a JSON form to a channel with history gets 108, never a publication that recovery would miss', async () => {
    const a = await node();
    const client = sdkProtobufClient(a, { token: await connectionToken('pia') });
    await connected(client);
    const { sub } = await subscribed(client, 'bytes');
    const pubs = record<{ data: Uint8Array; offset?: number }>(sub, 'publication');
    assert.deepEqual(await callError(sub.publish(new Uint8Array([0, 1, 2, 255]))), {
      code: 108,
      message: 'not available',
    });
    // Bytes that are JSON are kept, with an offset; a channel without history takes any bytes.
    await sub.publish(new TextEncoder().encode('{"n":1}'));
    await until(() => pubs.length === 1);
    assert.equal(pubs[0]!.offset, 1);
    assert.equal(new TextDecoder().decode(pubs[0]!.data), '{"n":1}');
    const plain = (await subscribed(client, 'plain:bytes')).sub;
    const plainPubs = record<{ data: Uint8Array }>(plain, 'publication');
    await plain.publish(new Uint8Array([0, 1, 2, 255]));
    await until(() => plainPubs.length === 1);
    assert.deepEqual([...plainPubs[0]!.data], [0, 1, 2, 255]);
    await pause(100);
    assert.equal(pubs.length, 1, 'the refused bytes reached nobody');
    assert.equal((await a.ws.channels!.history('bytes', { limit: -1 })).offset, 1);
  });

  it('/metrics says the Redis engine served the publications and reads', async () => {
    const a = await node();
    await a.ws.channels!.publish('scraped', { n: 1 });
    await a.ws.channels!.history('scraped');
    const text = await createMetricsRegistry(a.ws).metrics();
    const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    assert.equal(value('wshub_redis_state_connected'), 1);
    assert.ok(value('wshub_redis_state_history_appends_total') >= 1, 'appends counted');
    assert.ok(value('wshub_redis_state_history_reads_total') >= 1, 'reads counted');
    assert.ok(!/^wshub_history_streams /m.test(text), 'no in-memory engine figures with the Redis engine');
  });

  /**
   * A client connected to `b` subscribes to `channel` from a position while
   * `a` keeps publishing (paced, so the history of 100 still holds all since
   * the position when the subscribe reads it), for `racingMs` after the
   * reply: it must recover and then get every later offset exactly once.
   */
  async function recoverWhilePublishing(a: RunningHub, b: RunningHub, channel: string, racingMs: number) {
    await a.ws.channels!.publish(channel, { n: 0 });
    const start = await a.ws.channels!.history(channel);
    // Connected first: the race is between the subscribe and the publications.
    const client = sdkClient(b, { token: await connectionToken('racer') });
    await connected(client);
    let n = 0;
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        n++;
        await a.ws.channels!.publish(channel, { n });
        await pause(2);
      }
    })();
    await pause(30);
    const sub = client.newSubscription(channel, { since: { offset: start.offset, epoch: start.epoch } });
    const pubs = record<Pub>(sub, 'publication');
    const ctx = nextEvent<{ recovered: boolean }>(sub, 'subscribed');
    sub.subscribe();
    assert.equal((await ctx).recovered, true);
    await pause(racingMs);
    publishing = false;
    await publisher;
    const last = start.offset + n;
    await until(() => (pubs.at(-1)?.offset ?? 0) >= last);
    assert.deepEqual(
      pubs.map((p) => p.offset!),
      Array.from({ length: last - start.offset }, (_, i) => start.offset + 1 + i),
      'every offset after the position exactly once, in order',
    );
  }

  it('recovery on another node while publications keep coming: no gap, no duplicate', async () => {
    await recoverWhilePublishing(await node(), await node(), 'busy', 100);
  });

  it('pub/sub behind the read: publications up to the reply position are not delivered again', async (t) => {
    const redis = backend().server;
    if (redis === null) return t.skip('needs the single server');
    // Node B's pub/sub connection (its second to Redis) gets every message 150 ms late, so
    // publications already in the recovery reply keep arriving through pub/sub after it.
    const url = new URL(redis.url);
    const proxy = await startLaggingProxy(
      { host: url.hostname, port: Number(url.port) },
      150,
      (i) => i === 1,
    );
    t.after(() => proxy.stop());
    const a = await node();
    const b = await node(60_000, `redis://127.0.0.1:${proxy.port}`);
    await recoverWhilePublishing(a, b, 'lagging', 400);
  });

  it('a sync marker that does not come back in time ends the subscription with 2500, and the SDK recovers', async (t) => {
    const redis = backend().server;
    if (redis === null) return t.skip('needs the single server');
    const url = new URL(redis.url);
    // Node B's pub/sub connection: prompt while the channel is set up, then 1.5 s behind, past the
    // 1 s command timeout within which the marker must come back.
    const proxy = await startLaggingProxy({ host: url.hostname, port: Number(url.port) }, 0, (i) => i === 1);
    t.after(() => proxy.stop());
    const a = await node();
    const b = await node(60_000, `redis://127.0.0.1:${proxy.port}`);
    const first = await subscriber(b, 'fay', 'marker');
    proxy.setLag(1500);
    await a.ws.channels!.publish('marker', { n: 1 });

    // B's read sees offset 1, its pub/sub has not: the subscriber waits for the marker, which is late.
    const client = sdkClient(b, { token: await connectionToken('gus') });
    await connected(client);
    const late = client.newSubscription('marker');
    const pubs = record<Pub>(late, 'publication');
    const states = record<{ code: number }>(late, 'subscribing');
    const subscribedAgain = record<{ wasRecovering: boolean; recovered: boolean }>(late, 'subscribed');
    late.subscribe();
    await until(() => states.some((s) => s.code === 2500), 4000);
    assert.ok(
      states.some((s) => s.code === 2500),
      `subscribing events: ${JSON.stringify(states.map((s) => s.code))}`,
    );
    assert.ok((b.ws.metrics().redis_state_forced_resubscribes ?? 0) >= 1);
    proxy.setLag(0);
    await until(() => subscribedAgain.some((s) => s.wasRecovering && s.recovered), 6000);
    assert.ok(
      subscribedAgain.some((s) => s.wasRecovering && s.recovered),
      JSON.stringify(subscribedAgain),
    );
    await a.ws.channels!.publish('marker', { n: 2 });
    await until(() => pubs.some((p) => p.offset === 2) && first.pubs.length >= 2);
    await pause(100);
    // Offset 1 was in the first reply's position, so the recovery brought nothing twice.
    assert.deepEqual(
      pubs.map((p) => p.offset),
      [2],
    );
    assert.deepEqual(
      first.pubs.map((p) => p.offset),
      [1, 2],
    );
  });

  it('the admin broadcast to a channel with history answers 204 once Redis stored it, 503 when it could not', async (t) => {
    const redis = backend().server;
    if (redis === null) return t.skip('needs the single server');
    const url = new URL(redis.url);
    // Node A reaches Redis through a proxy that can be taken away.
    const proxy = await startLaggingProxy({ host: url.hostname, port: Number(url.port) }, 0, () => false);
    t.after(() => proxy.stop());
    const admin = { broadcastEnabled: true, broadcastSecret: BROADCAST_SECRET };
    const a = await node(60_000, `redis://127.0.0.1:${proxy.port}`, admin);
    const b = await node();
    const onB = await subscriber(b, 'ivy', 'announce');
    const broadcast = (text: string) =>
      fetch(`http://127.0.0.1:${a.port}/_admin/broadcast?room=announce`, {
        method: 'POST',
        headers: { authorization: `Bearer ${BROADCAST_SECRET}` },
        body: text,
      });
    const ok = await broadcast('{"n":1}');
    assert.equal(ok.status, 204);
    await until(() => onB.pubs.length === 1);
    assert.deepEqual([onB.pubs[0]!.offset, onB.pubs[0]!.data], [1, { n: 1 }]);

    await proxy.stop();
    const refused = await broadcast('{"n":2}');
    assert.equal(refused.status, 503);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'WEBSOCKET_BROADCAST_REJECTED');
    assert.match(body.error.message, /could not be stored/);
    // A library caller that ignores the result's `stored` gets no unhandled rejection when it fails.
    const ignored = a.ws.hub.tryBroadcastRoom('announce', Opcode.TEXT, '{"n":3}');
    assert.ok(ignored.stored instanceof Promise);
    await pause(1200);
    assert.equal(onB.pubs.length, 1, 'nobody got what was not stored');
    assert.equal((await b.ws.channels!.history('announce', { limit: -1 })).offset, 1);
  });

  it('Redis restarted without persistence: a client coming back gets recovered: false', async (t) => {
    const redis = backend().server;
    if (redis === null) return t.skip('needs the single server');
    const a = await node();
    const b = await node();
    const onA = await subscriber(a, 'rita', 'restart');
    await a.ws.channels!.publish('restart', { n: 1 });
    await until(() => onA.pubs.length === 1);
    const position = { offset: onA.pubs[0]!.offset!, epoch: (await a.ws.channels!.history('restart')).epoch };
    onA.client.disconnect();
    await redis.restart();
    // Publishing works again once the nodes reconnected; the stream starts over with a new epoch.
    let published = false;
    for (let i = 0; i < 100 && !published; i++) {
      published = await a.ws
        .channels!.publish('restart', { n: 2 })
        .then(() => true)
        .catch(() => false);
      if (!published) await pause(50);
    }
    assert.ok(published);
    const client = sdkClient(b, { token: await connectionToken('rita') });
    await connected(client);
    const sub = client.newSubscription('restart', { since: position });
    const ctx = nextEvent<{ wasRecovering: boolean; recovered: boolean; streamPosition?: { epoch: string } }>(
      sub,
      'subscribed',
    );
    sub.subscribe();
    const result = await ctx;
    assert.deepEqual([result.wasRecovering, result.recovered], [true, false]);
    assert.notEqual((await b.ws.channels!.history('restart')).epoch, position.epoch);
  });

  it('presence, presence_stats and join/leave across nodes', async () => {
    const a = await node();
    const b = await node();
    const onA = await subscriber(a, 'alice', 'lobby');
    const joins = record<{ info: { user: string } }>(onA.sub, 'join');
    const leaves = record<{ info: { user: string } }>(onA.sub, 'leave');
    const onB = await subscriber(b, 'bob', 'lobby');
    const onB2 = await subscriber(b, 'bob', 'lobby');
    // Every subscriber's join, its own included (as on a single node), from both nodes.
    await until(() => joins.length >= 3);
    assert.deepEqual(
      joins.map((j) => j.info.user),
      ['alice', 'bob', 'bob'],
    );
    const stats = await onA.sub.presenceStats();
    assert.deepEqual([stats.numClients, stats.numUsers], [3, 2]);
    const presence = await a.ws.channels!.presence('lobby');
    assert.deepEqual(
      Object.values(presence)
        .map((p) => p.user)
        .sort(),
      ['alice', 'bob', 'bob'],
    );
    onB2.client.disconnect();
    await until(() => leaves.length >= 1);
    assert.equal(leaves[0]!.info.user, 'bob');
    const after = await b.ws.channels!.presenceStats('lobby');
    assert.deepEqual(after, { num_clients: 2, num_users: 2 });
    onB.client.disconnect();
  });

  it('a node that stops refreshing its presence (killed) loses its entries within the presence ttl', async () => {
    const a = await node(400);
    const b = await node(400);
    await subscriber(a, 'alice', 'ttl');
    const onB = await subscriber(b, 'bob', 'ttl');
    assert.equal((await a.ws.channels!.presenceStats('ttl')).num_clients, 2);
    // Refreshes keep entries beyond the ttl.
    await pause(600);
    assert.equal((await a.ws.channels!.presenceStats('ttl')).num_clients, 2);
    // B stops refreshing without removing anything (as a SIGKILLed process would).
    (b.ws.channels as unknown as { presenceTimer: NodeJS.Timeout }).presenceTimer.close();
    const stoppedAt = Date.now();
    let numClients = 2;
    while (numClients > 1 && Date.now() - stoppedAt < 2000) {
      numClients = (await a.ws.channels!.presenceStats('ttl')).num_clients;
      await pause(20);
    }
    assert.equal(numClients, 1);
    assert.ok(Date.now() - stoppedAt <= 400 + 300, `gone within the ttl (${Date.now() - stoppedAt} ms)`);
    onB.client.disconnect();
  });

  it('a raw /ws member on A and a channel subscriber on B get each message once, and raw text is recoverable', async () => {
    const a = await node();
    const b = await node();
    const raw: Client = await connectClient(a.url('/ws?room=mixed'), { headers: await authHeaders() });
    const rawB: Client = await connectClient(b.url('/ws?room=mixed'), { headers: await authHeaders() });
    const onB = await subscriber(b, 'bea', 'mixed');
    const onA = await subscriber(a, 'abe', 'mixed');
    await raw.conn.sendText('{"from":"raw"}');
    await raw.conn.sendText('plain text');
    await onB.sub.publish({ from: 'sdk' });
    await b.ws.channels!.publish('mixed', { from: 'api' });
    // Sent over different connections, they may reach Redis in any order, but every member and
    // subscriber everywhere sees Redis's one order, each message once.
    const expected = ['{"from":"raw"}', 'plain text', '{"from":"sdk"}', '{"from":"api"}'];
    const orders: string[][] = [];
    for (const member of [raw, rawB]) {
      const texts: string[] = [];
      for (let i = 0; i < 4; i++) texts.push((await member.queue.next(3000)).text);
      assert.deepEqual([...texts].sort(), [...expected].sort());
      await assert.rejects(member.queue.next(200), 'nothing more: no duplicate');
      orders.push(texts);
    }
    assert.deepEqual(orders[0], orders[1]);
    const order = orders[0]!.map((text) => (text === 'plain text' ? text : (JSON.parse(text) as unknown)));
    await until(() => onA.pubs.length >= 4 && onB.pubs.length >= 4);
    await pause(100);
    for (const s of [onA, onB])
      assert.deepEqual(
        s.pubs.map((p) => [p.offset, p.data]),
        order.map((data, i) => [i + 1, data]),
      );
    const history = await a.ws.channels!.history('mixed', { limit: -1 });
    assert.deepEqual(
      history.publications.map((p) => p.data),
      order,
    );
  });

  it('a channel without history still crosses nodes once, through the cluster', async () => {
    const a = await node();
    const b = await node();
    const onA = await subscriber(a, 'p1', 'plain:x');
    const onB = await subscriber(b, 'p2', 'plain:x');
    let seen = false;
    onB.sub.on('publication', () => (seen = true));
    for (let i = 0; i < 100 && !seen; i++) {
      await a.ws.channels!.publish('plain:x', 'probe');
      await pause(20);
    }
    assert.ok(seen);
    await pause(100);
    onA.pubs.length = 0;
    onB.pubs.length = 0;
    for (let n = 1; n <= 10; n++) await a.ws.channels!.publish('plain:x', { n });
    await until(() => onA.pubs.length >= 10 && onB.pubs.length >= 10);
    await pause(100);
    for (const s of [onA, onB]) {
      assert.deepEqual(
        s.pubs.map((p) => p.data),
        Array.from({ length: 10 }, (_, i) => ({ n: i + 1 })),
      );
      assert.ok(s.pubs.every((p) => p.offset === undefined));
    }
  });

  it('Redis down: a client publish is answered with a temporary error, never ok; counted', async (t) => {
    const redis = backend().server;
    if (redis === null) return t.skip('needs the single server');
    const a = await node();
    const onA = await subscriber(a, 'dan', 'down');
    await redis.kill();
    try {
      const outcome = await onA.sub.publish({ n: 1 }).then(
        () => 'ok',
        (error: { code: number }) => error.code,
      );
      assert.equal(outcome, 100);
      const m = a.ws.metrics();
      assert.ok((m.redis_state_publish_failed ?? 0) >= 1);
      assert.ok((m.redis_state_errors ?? 0) >= 1);
      await assert.rejects(a.ws.channels!.publish('down', { n: 2 }), /internal server error/);
    } finally {
      await redis.restart();
    }
  });
}
