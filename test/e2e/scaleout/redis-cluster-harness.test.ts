// The Redis Cluster test harness itself: three masters covering all slots,
// a slot that moves, a master that restarts and rejoins, and nothing left
// behind after stop().
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { pingRedis } from '../../helpers/redis.ts';
import { CLUSTER_SLOTS, redisClusterRequirement, startRedisCluster } from '../../helpers/redis-cluster.ts';

test(
  'startRedisCluster: 3 healthy masters, slot moves, restart, clean stop',
  redisClusterRequirement(),
  async () => {
    const cluster = await startRedisCluster();
    try {
      assert.equal(cluster.nodes.length, 3);
      assert.equal(new Set(cluster.ports).size, 3);
      for (const port of cluster.ports) {
        const info = await cluster.command(port, 'CLUSTER', 'INFO');
        assert.match(info, /cluster_state:ok/);
        assert.match(info, new RegExp(`cluster_slots_ok:${CLUSTER_SLOTS}`));
        assert.match(info, /cluster_size:3/);
      }
      // Every master owns some slots.
      const owners = new Set(await Promise.all([0, 8_000, 16_383].map((s) => cluster.ownerOf(s))));
      assert.equal(owners.size, 3);

      // A key's slot moves with its key.
      const slot = Number((await cluster.command(cluster.ports[0]!, 'CLUSTER', 'KEYSLOT', 'k')).trim());
      const from = await cluster.ownerOf(slot);
      await cluster.command(from, 'SET', 'k', 'v');
      const to = cluster.ports.find((p) => p !== from)!;
      await cluster.moveSlot(slot, to);
      assert.equal(await cluster.ownerOf(slot), to);
      assert.equal((await cluster.command(to, 'GET', 'k')).trim(), 'v');
      assert.match(await cluster.command(from, 'GET', 'k'), /MOVED/);
      await cluster.waitHealthy();

      // A killed master rejoins with its slots.
      const node = cluster.nodes[1]!;
      await node.kill();
      assert.equal(node.running, false);
      assert.equal(await pingRedis(node.port), false);
      await node.restart();
      await cluster.waitHealthy();
    } finally {
      await cluster.stop();
    }
    for (const port of cluster.ports) assert.equal(await pingRedis(port), false);
    await cluster.stop(); // idempotent
  },
);

test(
  'startRedisCluster: leaves no process behind when it cannot start',
  redisClusterRequirement(),
  async () => {
    // redis-cli refuses to create a cluster of fewer than three masters.
    await assert.rejects(startRedisCluster({ masters: 2, timeoutMs: 5_000 }));
    const children = spawnSync('pgrep', ['-P', String(process.pid), 'redis-server'], { encoding: 'utf8' });
    assert.equal(children.stdout.trim(), '', 'no redis-server child left');
  },
);
