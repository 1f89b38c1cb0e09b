// RedisClusterTransport on a real 3-master Redis Cluster, below the rooms:
// slots computed as Redis computes them, a batch of thousands of channels
// across slots (one SSUBSCRIBE per slot, at most two connections per master),
// a slot moved to another master under a live subscription, and a clear
// error when the single-server transport is pointed at a cluster node.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { RedisClusterTransport } from '../../../src/broker/redis-cluster.ts';
import { RedisTransport } from '../../../src/broker/redis.ts';
import { groupBySlot, redisSlot } from '../../../src/broker/redis-slot.ts';
import {
  redisClusterRequirement,
  startRedisCluster,
  type RedisCluster,
} from '../../helpers/redis-cluster.ts';

/** Numbers from the redis-cli output of a command that answers with one integer per line pair. */
function counts(output: string): number[] {
  return output
    .trim()
    .split('\n')
    .filter((_, i) => i % 2 === 1)
    .map(Number);
}

describe('redis cluster transport', redisClusterRequirement(), () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster.stop();
  });

  async function shardSubscribers(channel: string): Promise<number> {
    const port = await cluster.ownerOf(redisSlot(channel));
    return counts(await cluster.command(port, 'PUBSUB', 'SHARDNUMSUB', channel))[0] ?? -1;
  }

  /** Client connections the masters see, without the one redis-cli opens to ask. */
  async function serverConnections(): Promise<number> {
    let total = 0;
    for (const port of cluster.ports) {
      const list = await cluster.command(port, 'CLIENT', 'LIST');
      total += list.trim().split('\n').length - 1;
    }
    return total;
  }

  async function started(): Promise<{ transport: RedisClusterTransport; got: Array<[string, string]> }> {
    const got: Array<[string, string]> = [];
    const transport = new RedisClusterTransport({ rootNodes: cluster.rootUrls, reconnectMaxDelayMs: 100 });
    await transport.start((channel, payload) => got.push([channel, payload.toString()]), {});
    return { transport, got };
  }

  test('hash slots agree with CLUSTER KEYSLOT, hash tags included', async () => {
    const names = [
      'wshub:all',
      'wshub:presence',
      'wshub:room:lobby',
      '{user1000}.following',
      'user1000',
      'a{}b',
      '{}{x}',
      'x{y',
      'x}y{z}',
      'é-ünïcødé-房间',
      'x'.repeat(300),
      '',
    ];
    for (const name of names) {
      const expected = Number((await cluster.command(cluster.ports[0]!, 'CLUSTER', 'KEYSLOT', name)).trim());
      assert.equal(redisSlot(name), expected, `slot of ${JSON.stringify(name)}`);
    }
  });

  test('5,000 channels across slots: one batch, every one subscribed, at most two connections per master', async () => {
    const before = await serverConnections();
    const { transport, got } = await started();
    try {
      const channels = Array.from({ length: 5_000 }, (_, i) => `wshub:room:r${i}`);
      const slots = groupBySlot(channels).size;
      assert.ok(slots > 3_000, `${slots} distinct slots`);
      const t0 = performance.now();
      await transport.subscribe(channels);
      const took = performance.now() - t0;
      assert.ok(took < 15_000, `subscribed in ${took.toFixed(0)} ms`);

      // Redis's own view: every master holds the channels of its slots, 5,000 in all.
      let total = 0;
      for (const port of cluster.ports) {
        const owned = (await cluster.command(port, 'PUBSUB', 'SHARDCHANNELS', 'wshub:room:*')).trim();
        total += owned === '' ? 0 : owned.split('\n').length;
      }
      assert.equal(total, channels.length);
      assert.equal(transport.connections, 6, 'publisher + pub/sub connection per master');
      assert.equal((await serverConnections()) - before, 6, 'the masters see the same six connections');

      const publisher = await started();
      try {
        for (const i of [0, 1_234, 4_999])
          await publisher.transport.publish(`wshub:room:r${i}`, Buffer.from(`m${i}`));
        const deadline = performance.now() + 3_000;
        while (got.length < 3 && performance.now() < deadline) await sleep(10);
        assert.deepEqual(got, [
          ['wshub:room:r0', 'm0'],
          ['wshub:room:r1234', 'm1234'],
          ['wshub:room:r4999', 'm4999'],
        ]);
      } finally {
        await publisher.transport.close();
      }

      await transport.unsubscribe(channels);
      for (const port of cluster.ports) {
        assert.equal((await cluster.command(port, 'PUBSUB', 'SHARDCHANNELS')).trim(), '', `master ${port}`);
      }
    } finally {
      await transport.close();
    }
    const deadline = performance.now() + 3_000;
    while ((await serverConnections()) !== before && performance.now() < deadline) await sleep(20);
    assert.equal(await serverConnections(), before, 'close() leaves no connection open');
  });

  test('a slot moved to another master under a live subscription: delivery resumes there', async () => {
    const channel = 'wshub:room:moving';
    const slot = redisSlot(channel);
    const subscriber = await started();
    const publisher = await started();
    try {
      await subscriber.transport.subscribe([channel]);
      const from = await cluster.ownerOf(slot);
      await publisher.transport.publish(channel, Buffer.from('before'));
      const to = cluster.ports.find((p) => p !== from)!;
      await cluster.moveSlot(slot, to);
      assert.equal(await cluster.ownerOf(slot), to);

      // Redis drops the subscription on the old owner; the client subscribes
      // again on the new one. Publish until a message gets through (the
      // publisher follows MOVED to the new owner).
      const deadline = performance.now() + 10_000;
      let sent = 0;
      while (!subscriber.got.some(([, text]) => text.startsWith('after')) && performance.now() < deadline) {
        await publisher.transport.publish(channel, Buffer.from(`after${++sent}`));
        await sleep(50);
      }
      const texts = subscriber.got.map(([, text]) => text);
      assert.equal(texts[0], 'before');
      assert.ok(
        texts.some((t) => t.startsWith('after')),
        `delivery resumed after the move (${sent} sent)`,
      );
      assert.equal(await shardSubscribers(channel), 1, 'subscribed on the new owner');
      assert.equal(subscriber.transport.connected, true);
    } finally {
      await subscriber.transport.close();
      await publisher.transport.close();
      await cluster.waitHealthy();
    }
  });

  test('the single-server transport with sharded pub/sub on a cluster node: a clear error, nothing left open', async () => {
    const before = await serverConnections();
    const transport = new RedisTransport({ url: cluster.rootUrls[0]!, sharded: true });
    await assert.rejects(
      transport.start(() => {}, {}),
      /is a Redis Cluster node: sharded pub\/sub on a cluster needs the cluster client \(--broker-cluster/,
    );
    const deadline = performance.now() + 3_000;
    while ((await serverConnections()) !== before && performance.now() < deadline) await sleep(20);
    assert.equal(await serverConnections(), before);
  });
});
