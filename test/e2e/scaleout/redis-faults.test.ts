// Redis faults under a running cluster, on a single redis-server and on a
// 3-master Redis Cluster: unreachable at start, killed and restarted
// mid-stream (on a cluster: the master owning the room's slot; local
// delivery goes on, cross-node delivery resumes, losses are counted
// exactly), and a stalled broker (bounded in-flight publishes, counted
// drops, bounded memory; shutdown completes in bounded time).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Cluster, type ClusterMetrics, type ClusterOptions } from '../../../src/broker/cluster.ts';
import { RedisClusterTransport } from '../../../src/broker/redis-cluster.ts';
import { RedisTransport } from '../../../src/broker/redis.ts';
import type { Transport } from '../../../src/broker/transport.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import { createWshub } from '../../../src/server/server.ts';
import { assertNoLeaks } from '../../helpers/leaks.ts';
import { freePort } from '../../helpers/redis.ts';
import { REDIS_BACKENDS, type RunningRedis } from '../../helpers/redis-backends.ts';
import {
  SECRET,
  authHeaders,
  cleanupHubs,
  connectClient,
  startHub,
  waitFor,
  type Client,
  type RunningHub,
} from '../server/harness.ts';

const PRESENCE_INTERVAL = 100;

/** Forces a full garbage collection, so heap figures compare live data only. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/**
 * Bytes of live JS heap plus Buffer memory after full collections (Buffer
 * backing stores are freed by a concurrent sweeper, hence the pause).
 */
async function liveBytes(): Promise<number> {
  collectGarbage();
  await sleep(50);
  collectGarbage();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

/** Every message a client has received until `settleMs` pass without a new one. */
async function drain(client: Client, settleMs = 200): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const message = await client.queue.next(settleMs).catch(() => null);
    if (message === null) return out;
    out.push(message.text);
  }
}

/** The cluster counters of a node (they always exist when it has a cluster). */
function metricsOf(hub: RunningHub): ClusterMetrics {
  const metrics = hub.ws.hub.clusterMetrics();
  assert.ok(metrics !== null, 'the node has a cluster');
  return metrics;
}

async function closeClients(...clients: Client[]): Promise<void> {
  for (const c of clients) c.conn.close();
  await Promise.all(clients.map((c) => c.conn.closed()));
}

for (const backend of REDIS_BACKENDS)
  describe(`${backend.name} faults`, backend.requirement(), () => {
    let redis: RunningRedis;
    /** Starts the killed server again, while one is down. */
    let revive: (() => Promise<void>) | null = null;

    before(async () => {
      redis = await backend.start();
    });
    after(async () => {
      await redis.stop();
    });
    afterEach(async () => {
      redis.resume();
      await revive?.();
      revive = null;
      await cleanupHubs();
    });

    /** A transport to `urls` (a dead port in the unreachable tests), of the backend's kind. */
    function transportTo(urls: string[], options: { reconnectMaxDelayMs?: number } = {}): Transport {
      return backend.cluster
        ? new RedisClusterTransport({ rootNodes: urls, ...options })
        : new RedisTransport({ url: urls[0]!, ...options });
    }

    const unreachable = backend.cluster ? 'redis cluster unreachable' : 'redis unreachable';

    async function startNode(cluster: Partial<ClusterOptions> = {}) {
      const c = new Cluster({
        transport: transportTo(redis.url.split(','), { reconnectMaxDelayMs: 100 }),
        presenceInterval: PRESENCE_INTERVAL,
        ...cluster,
      });
      const hub = await startHub({ cluster: c });
      await hub.ws.start();
      return hub;
    }

    async function join(hub: { url(path?: string): string }, room: string): Promise<Client> {
      return connectClient(hub.url(`/ws?room=${room}`), { headers: await authHeaders() });
    }

    test('broker unreachable at start: ws.start() rejects with a clear error, nothing left open', async () => {
      const port = await freePort();
      const ws = createWshub({
        secret: SECRET,
        pingPeriod: 0,
        cluster: new Cluster({ transport: transportTo([`redis://127.0.0.1:${port}`]) }),
      });
      const started = performance.now();
      await assert.rejects(ws.start(), (error: Error) => {
        assert.match(error.message, new RegExp(`${unreachable} at redis://127\\.0\\.0\\.1:${port}`));
        assert.match(error.message, /ECONNREFUSED/);
        return true;
      });
      assert.ok(performance.now() - started < 2_000, 'fails fast instead of retrying forever');
      await assertNoLeaks();
    });

    test('unreachable with a password in the URL: the error never shows the password', async () => {
      const port = await freePort();
      const transport = transportTo([`redis://user:hunter2secret@127.0.0.1:${port}`]);
      await assert.rejects(
        transport.start(() => {}, {}),
        (error: Error) => {
          assert.doesNotMatch(error.message, /hunter2secret/);
          assert.ok(error.message.includes(unreachable), error.message);
          return true;
        },
      );
      await assertNoLeaks();
    });

    test('redis killed and restarted mid-stream: local delivery goes on, remote resumes, losses counted exactly', async () => {
      const a = await startNode();
      const b = await startNode();
      const sender = await join(a, 'f');
      const localPeer = await join(a, 'f');
      const remote = await join(b, 'f');
      await waitFor(() => a.ws.hub.getClusterRoomCount('f') === 3, 3_000, 'B interest announced');

      let sent = 0;
      let sending = true;
      const stream = (async () => {
        while (sending) {
          await sender.conn.sendText(String(++sent));
          await sleep(3);
        }
      })();
      await waitFor(() => sent >= 50, 3_000, '50 messages before the outage');

      revive = await redis.killOwnerOf('wshub:room:f');
      await waitFor(() => metricsOf(a).broker_connected === 0 && metricsOf(b).broker_connected === 0);
      const sentAtOutage = sent;
      // A room that gains its first member during the outage must be subscribed after it.
      const late = await join(b, 'late');
      await sleep(300);
      const sentDuringOutage = sent - sentAtOutage;
      assert.ok(sentDuringOutage > 20, `kept sending during the outage (${sentDuringOutage})`);

      await revive();
      revive = null;
      await waitFor(
        () =>
          metricsOf(a).broker_connected === 1 &&
          metricsOf(b).broker_connected === 1 &&
          metricsOf(a).broker_reconnects >= 1 &&
          metricsOf(b).broker_reconnects >= 1,
        10_000,
        'both nodes to reconnect',
      );
      const sentAtRecovery = sent;
      await waitFor(() => sent >= sentAtRecovery + 50, 3_000, '50 messages after recovery');
      sending = false;
      await stream;

      const all = Array.from({ length: sent }, (_, i) => String(i + 1));
      assert.deepEqual(await drain(sender), all, 'the sender got every message, in order');
      assert.deepEqual(await drain(localPeer), all, 'local delivery never stopped');

      const remoteGot = (await drain(remote)).map(Number);
      for (let i = 1; i < remoteGot.length; i++)
        assert.ok(remoteGot[i]! > remoteGot[i - 1]!, 'in order, no duplicate');
      assert.equal(remoteGot.at(-1), sent, 'cross-node delivery resumed');
      assert.ok(remoteGot.includes(sentAtOutage - 10), 'received before the outage');
      const missed = sent - remoteGot.length;
      assert.ok(missed > 0, 'the outage lost messages');

      const ma = metricsOf(a);
      const mb = metricsOf(b);
      assert.equal(mb.broker_gaps, missed, 'B counted exactly what its member missed');
      assert.equal(mb.broker_lost, missed);
      assert.ok(ma.broker_publish_failed > 0, 'A counted failed publishes');
      assert.ok(
        ma.broker_publish_failed <= missed,
        `A's failed publishes (${ma.broker_publish_failed}) are among the missed (${missed})`,
      );
      assert.equal(ma.broker_publish_failed + ma.broker_published, sent, 'every publish is accounted for');

      // Redis (a fresh process) knows every active room again: resubscribed.
      const view = await redis.view();
      try {
        for (const [channel, count] of [
          ['wshub:room:f', 2],
          ['wshub:room:late', 1],
          ['wshub:all', 2],
        ] as const) {
          assert.equal(await view.subscribers(channel, redis.cluster), count, channel);
        }
      } finally {
        view.close();
      }
      await waitFor(() => a.ws.hub.getClusterRoomCount('late') === 1, 1_000, 'presence resumed');
      await closeClients(sender, localPeer, remote, late);
    });

    test('stalled broker at shutdown: ws.shutdown() completes within its bound and leaves no socket open', async () => {
      const a = await startNode();
      const b = await startNode();
      const member = await join(a, 'stop');
      await waitFor(() => b.ws.hub.getClusterRoomCount('stop') === 1, 1_000, 'A announced to B');
      redis.pause();
      try {
        const started = performance.now();
        // 500 ms for the client's close handshake plus the cluster's 1 s close
        // bound; the rest is margin for a loaded machine.
        const bound = 500 + 1_000 + 1_500;
        const outcome = await Promise.race([
          a.ws.shutdown({ timeout: 500 }).then(() => 'done'),
          sleep(bound).then(() => 'hung'),
        ]);
        const took = performance.now() - started;
        assert.equal(outcome, 'done', `shutdown still waiting after ${bound} ms`);
        assert.ok(took < bound, `took ${took.toFixed(0)} ms`);
        assert.equal(metricsOf(a).broker_connected, 0, 'the broker connections were cut');
        await member.conn.closed();
      } finally {
        redis.resume();
      }
    });

    test('stalled broker: in-flight publishes stay bounded, the rest are dropped and counted, memory bounded', async () => {
      const maxInFlight = 100;
      const a = await startNode({ maxInFlight });
      const b = await startNode();
      const remote = await join(b, 'slow');
      await waitFor(() => a.ws.hub.getClusterRoomCount('slow') === 1, 1_000, 'B interest announced');

      const payload = Buffer.alloc(1024, 0x61);
      const total = 20_000;
      const baseline = await liveBytes();
      redis.pause();
      try {
        for (let i = 0; i < total; i++) a.ws.hub.broadcastRoom('slow', Opcode.TEXT, payload);
        await sleep(100);
        const m = metricsOf(a);
        assert.equal(m.broker_publish_dropped, total - maxInFlight, 'everything beyond the bound is dropped');
        assert.equal(m.broker_published, 0, 'nothing completes while Redis is stalled');
        const growth = (await liveBytes()) - baseline;
        // Unbounded buffering would hold ≥ 20 MiB of payloads.
        assert.ok(growth < 8 * 1024 * 1024, `memory grew by ${(growth / 1048576).toFixed(1)} MiB`);
      } finally {
        redis.resume();
      }
      await waitFor(
        () => metricsOf(a).broker_published === maxInFlight,
        5_000,
        'in-flight publishes to complete',
      );
      const got = await drain(remote);
      assert.equal(got.length, maxInFlight, 'the in-flight messages arrive after the stall');
      assert.equal(metricsOf(b).broker_gaps, 0, 'dropped publishes took no sequence numbers');
      const m = metricsOf(a);
      assert.equal(m.broker_lost, total - maxInFlight);
      assert.equal(m.broker_publish_failed, 0);
      await closeClients(remote);
    });

    test('stalled broker: in-flight message bytes stay within maxInFlightBytes, the overflow is dropped and counted', async () => {
      const maxInFlightBytes = 1024 * 1024;
      const a = await startNode({ maxInFlightBytes });
      const b = await startNode();
      const remote = await join(b, 'big');
      await waitFor(() => a.ws.hub.getClusterRoomCount('big') === 1, 1_000, 'B interest announced');

      const size = 256 * 1024;
      const fits = maxInFlightBytes / size;
      // 16 MiB offered: the count bound (10,000) alone would hold all of it.
      const total = 64;
      let peak = 0;
      redis.pause();
      try {
        for (let i = 0; i < total; i++) {
          a.ws.hub.broadcastRoom('big', Opcode.TEXT, Buffer.alloc(size, 0x61 + (i % 26)));
          peak = Math.max(peak, metricsOf(a).broker_in_flight_bytes);
          // Spread out like real traffic, so the client library writes what it can to the socket.
          await sleep(2);
        }
        await sleep(100);
        const m = metricsOf(a);
        assert.ok(peak <= maxInFlightBytes, `peak in-flight bytes ${peak} within ${maxInFlightBytes}`);
        assert.equal(m.broker_in_flight, fits);
        assert.equal(m.broker_in_flight_bytes, fits * size);
        assert.equal(m.broker_publish_dropped, total - fits, 'everything beyond the bytes bound is dropped');
        assert.equal(m.broker_published, 0, 'nothing completes while Redis is stalled');
      } finally {
        redis.resume();
      }
      await waitFor(() => metricsOf(a).broker_published === fits, 5_000, 'in-flight publishes to complete');
      const got = await drain(remote);
      assert.equal(got.length, fits, 'the in-flight messages arrive after the stall');
      assert.ok(got.every((text) => text.length === size));
      const m = metricsOf(a);
      assert.equal(m.broker_in_flight_bytes, 0);
      assert.equal(m.broker_lost, total - fits);
      assert.equal(metricsOf(b).broker_gaps, 0, 'dropped publishes took no sequence numbers');
      await closeClients(remote);
    });
  });
