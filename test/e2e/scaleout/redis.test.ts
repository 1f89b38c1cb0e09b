// Several wshub nodes sharing rooms through a real redis-server, and through
// a real 3-master Redis Cluster: cross-node fan-out exactly once and in
// order, interest-based subscriptions as Redis itself sees them,
// cluster-wide counts, admin broadcasts across nodes, sharded pub/sub, and a
// SIGKILLed node vanishing from the counts in time.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, test } from 'node:test';
import { Cluster, type ClusterOptions } from '../../../src/broker/cluster.ts';
import { dial } from '../../../src/client/dial.ts';
import { MessageQueue } from '../../../src/client/messages.ts';
import type { WshubConfig } from '../../../src/config.ts';
import {
  BROADCAST_SECRET,
  authHeaders,
  cleanupHubs,
  connectClient,
  rawHttp,
  startHub,
  waitFor,
  type Client,
  type RunningHub,
} from '../server/harness.ts';
import { REDIS_BACKENDS, type RedisView, type RunningRedis } from '../../helpers/redis-backends.ts';

const PRESENCE_INTERVAL = 100;
const NODE_SCRIPT = fileURLToPath(new URL('./redis-node.ts', import.meta.url));

interface Node extends RunningHub {
  cluster: Cluster;
}

for (const backend of REDIS_BACKENDS)
  describe(`${backend.name} scale-out`, backend.requirement(), () => {
    let redis: RunningRedis;
    const admins: RedisView[] = [];

    before(async () => {
      redis = await backend.start();
    });
    after(async () => {
      await redis.stop();
    });
    afterEach(async () => {
      for (const client of admins.splice(0)) client.close();
      await cleanupHubs();
    });

    /** A plain node-redis client to ask Redis for its own view (PUBSUB …). */
    async function admin(): Promise<RedisView> {
      const client = await redis.view();
      admins.push(client);
      return client;
    }

    async function startNode(
      options: { sharded?: boolean; config?: Partial<WshubConfig>; cluster?: Partial<ClusterOptions> } = {},
    ): Promise<Node> {
      const cluster = new Cluster({
        transport: redis.transport({ sharded: options.sharded ?? false }),
        presenceInterval: PRESENCE_INTERVAL,
        ...options.cluster,
      });
      const hub = await startHub({
        cluster,
        broadcastEnabled: true,
        broadcastSecret: BROADCAST_SECRET,
        ...options.config,
      });
      await hub.ws.start();
      return Object.assign(hub, { cluster });
    }

    async function join(node: RunningHub, room: string): Promise<Client> {
      return connectClient(node.url(`/ws?room=${room}`), { headers: await authHeaders() });
    }

    /**
     * Subscribers Redis counts for a room's channel: plain or sharded pub/sub
     * on a single server, always sharded on a cluster.
     */
    async function subscribers(client: RedisView, room: string, sharded = false): Promise<number> {
      return client.subscribers(`wshub:room:${room}`, sharded || redis.cluster);
    }

    async function waitSubscribers(
      client: RedisView,
      room: string,
      n: number,
      sharded = false,
    ): Promise<void> {
      const deadline = performance.now() + 3_000;
      let seen = -1;
      while (performance.now() < deadline) {
        seen = await subscribers(client, room, sharded);
        if (seen === n) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.fail(`expected ${n} subscriber(s) of room ${room}, Redis reports ${seen}`);
    }

    /** Takes `count` messages, then checks that nothing more arrives within `settleMs`. */
    async function receive(client: Client, count: number, settleMs = 150): Promise<string[]> {
      const out: string[] = [];
      for (let i = 0; i < count; i++) out.push((await client.queue.next(3_000)).text);
      const extra = await client.queue.next(settleMs).then(
        (m) => m.text,
        () => null,
      );
      assert.equal(extra, null, `unexpected extra message ${extra ?? ''}`);
      return out;
    }

    function numbered(prefix: string, n: number): string[] {
      return Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
    }

    async function closeClients(...clients: Client[]): Promise<void> {
      for (const c of clients) c.conn.close();
      await Promise.all(clients.map((c) => c.conn.closed()));
    }

    test('two nodes: every member gets each of 200 messages exactly once, in order, sender included', async () => {
      const redisView = await admin();
      const [a, b] = [await startNode(), await startNode()];
      const sender = await join(a, 'r');
      const localPeer = await join(a, 'r');
      const remote1 = await join(b, 'r');
      const remote2 = await join(b, 'r');
      await waitSubscribers(redisView, 'r', 2);

      const expected = numbered('m', 200);
      for (const text of expected) await sender.conn.sendText(text);
      for (const client of [sender, localPeer, remote1, remote2]) {
        assert.deepEqual(await receive(client, expected.length), expected);
      }
      const ma = a.ws.metrics();
      const mb = b.ws.metrics();
      assert.equal(ma.broker_published, 200, 'node A published each message once');
      assert.equal(mb.broker_received, 200, 'node B received each message once');
      assert.equal(ma.broker_received, 0, 'node A ignores its own echo');
      assert.equal(ma.broker_lost, 0);
      assert.equal(mb.broker_lost, 0);
      await closeClients(sender, localPeer, remote1, remote2);
    });

    test('three nodes, two concurrent publishers: exactly once and in order per publisher', async () => {
      const redisView = await admin();
      const nodes = [await startNode(), await startNode(), await startNode()];
      const members = [await join(nodes[0]!, 'r3'), await join(nodes[1]!, 'r3'), await join(nodes[2]!, 'r3')];
      await waitSubscribers(redisView, 'r3', 3);

      const fromA = numbered('a', 100);
      const fromC = numbered('c', 100);
      await Promise.all([
        (async () => {
          for (const text of fromA) await members[0]!.conn.sendText(text);
        })(),
        (async () => {
          for (const text of fromC) await members[2]!.conn.sendText(text);
        })(),
      ]);
      for (const member of members) {
        const got = await receive(member, 200);
        assert.deepEqual(
          got.filter((t) => t.startsWith('a')),
          fromA,
        );
        assert.deepEqual(
          got.filter((t) => t.startsWith('c')),
          fromC,
        );
      }
      for (const node of nodes) assert.equal(node.ws.metrics().broker_lost, 0);
      await closeClients(...members);
    });

    test('interest: a node without members of a room is not subscribed and receives none of its traffic', async () => {
      const redisView = await admin();
      const [a, b] = [await startNode(), await startNode()];
      assert.equal(await subscribers(redisView, 'x'), 0);

      const ax = await join(a, 'x');
      const by = await join(b, 'y');
      await waitSubscribers(redisView, 'x', 1);
      await waitSubscribers(redisView, 'y', 1);
      for (const text of numbered('x', 20)) await ax.conn.sendText(text);
      assert.equal((await receive(ax, 20)).length, 20);
      assert.equal(b.ws.metrics().broker_received, 0, 'B got none of room x traffic');
      assert.equal(await by.queue.next(100).catch(() => null), null);

      // B gains a member of x: now it is subscribed and receives x traffic.
      const bx = await join(b, 'x');
      await waitSubscribers(redisView, 'x', 2);
      await ax.conn.sendText('both');
      assert.deepEqual(await receive(bx, 1), ['both']);
      assert.deepEqual(await receive(ax, 1), ['both']);
      assert.equal(b.ws.metrics().broker_received, 1);

      // B loses it again: unsubscribed, and further x traffic never reaches B.
      await closeClients(bx);
      await waitSubscribers(redisView, 'x', 1);
      for (const text of numbered('z', 10)) await ax.conn.sendText(text);
      assert.equal((await receive(ax, 10)).length, 10);
      assert.equal(b.ws.metrics().broker_received, 1, 'no x traffic after the last member left');
      await closeClients(ax, by);
      await waitSubscribers(redisView, 'x', 0);
      await waitSubscribers(redisView, 'y', 0);
    });

    test('cluster-wide room counts and room list, updated within the presence interval', async () => {
      const [a, b] = [await startNode(), await startNode()];
      const clients = [await join(a, 'r'), await join(a, 'r'), await join(b, 'r'), await join(b, 's')];
      const bound = 3 * PRESENCE_INTERVAL + 200;
      // Both nodes' latest announcements must include every join (B joined s last).
      await waitFor(
        () =>
          a.ws.hub.getClusterRoomCount('r') === 3 &&
          b.ws.hub.getClusterRoomCount('r') === 3 &&
          a.ws.hub.getClusterRoomCount('s') === 1,
        bound,
        'cluster counts of r (3) and s (1) on both nodes',
      );
      assert.equal(a.ws.hub.getClusterRoomCount('s'), 1);
      assert.equal(b.ws.hub.getClusterRoomCount('s'), 1);
      assert.deepEqual(a.ws.hub.getClusterRooms().sort(), ['r', 's']);
      assert.deepEqual(b.ws.hub.getClusterRooms().sort(), ['r', 's']);
      assert.equal(a.ws.metrics().cluster_nodes, 2);

      await closeClients(clients[3]!);
      await waitFor(() => a.ws.hub.getClusterRoomCount('s') === 0, bound, 'room s to vanish on A');
      assert.deepEqual(a.ws.hub.getClusterRooms(), ['r']);

      // A node shutting down says goodbye: its members disappear at once.
      await closeClients(clients[2]!);
      await b.close();
      await waitFor(() => a.ws.hub.getClusterRoomCount('r') === 2, bound, 'B members to vanish');
      assert.equal(a.ws.metrics().cluster_nodes, 1);
      await closeClients(clients[0]!, clients[1]!);
    });

    test('admin broadcast posted to node A reaches members on node B exactly once', async () => {
      const redisView = await admin();
      const [a, b] = [await startNode(), await startNode()];
      const onA = await join(a, 'news');
      const onB = await join(b, 'news');
      const otherOnB = await join(b, 'other');
      await waitSubscribers(redisView, 'news', 2);

      const post = (query: string, body: string) =>
        rawHttp(
          a.port,
          `POST /_admin/broadcast${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
            `Authorization: Bearer ${BROADCAST_SECRET}\r\nConnection: close\r\n\r\n`,
          body,
        );
      const toRoom = await post('?room=news', 'room-wide');
      assert.ok(toRoom.status >= 200 && toRoom.status < 300, toRoom.body);
      assert.deepEqual(await receive(onA, 1), ['room-wide']);
      assert.deepEqual(await receive(onB, 1), ['room-wide']);
      assert.equal(await otherOnB.queue.next(100).catch(() => null), null, 'other rooms are not reached');

      const toAll = await post('', 'everyone');
      assert.ok(toAll.status >= 200 && toAll.status < 300, toAll.body);
      for (const client of [onA, onB, otherOnB]) assert.deepEqual(await receive(client, 1), ['everyone']);
      await closeClients(onA, onB, otherOnB);
    });

    test('sharded pub/sub: SSUBSCRIBE interest visible in PUBSUB SHARDNUMSUB, cross-node delivery', async () => {
      const redisView = await admin();
      const [a, b] = [await startNode({ sharded: true }), await startNode({ sharded: true })];
      const sender = await join(a, 'sh');
      assert.equal(
        await redisView.subscribers('wshub:room:sh', false),
        0,
        'no plain SUBSCRIBE in sharded mode',
      );
      await waitSubscribers(redisView, 'sh', 1, true);
      const remote = await join(b, 'sh');
      await waitSubscribers(redisView, 'sh', 2, true);

      const expected = numbered('s', 50);
      for (const text of expected) await sender.conn.sendText(text);
      assert.deepEqual(await receive(remote, 50), expected);
      assert.deepEqual(await receive(sender, 50), expected);
      assert.equal(b.ws.metrics().broker_received, 50);
      await waitFor(() => a.ws.hub.getClusterRoomCount('sh') === 2, 3 * PRESENCE_INTERVAL + 200, 'count');

      await closeClients(remote);
      await waitSubscribers(redisView, 'sh', 1, true);
      await closeClients(sender);
      await waitSubscribers(redisView, 'sh', 0, true);
    });

    test('a node killed with SIGKILL disappears from the counts within presenceTtl', async () => {
      const ttl = 3 * PRESENCE_INTERVAL;
      const a = await startNode({ cluster: { presenceTtl: ttl } });
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          NODE_SCRIPT,
          redis.url,
          String(PRESENCE_INTERVAL),
          redis.cluster ? 'cluster' : 'single',
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const exited = once(child, 'exit');
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      try {
        const port = await new Promise<number>((resolve, reject) => {
          let out = '';
          const timer = setTimeout(() => reject(new Error(`node did not start: ${stderr}`)), 15_000);
          child.stdout.setEncoding('utf8').on('data', (d: string) => {
            out += d;
            const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
            if (match) {
              clearTimeout(timer);
              resolve(Number(match[1]));
            }
          });
          child.once('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`node exited with ${code}: ${stderr}`));
          });
        });
        const queue = new MessageQueue();
        const conn = await dial(`ws://127.0.0.1:${port}/ws?room=k`, {
          handlers: queue.handlers,
          timeoutMs: 3_000,
        });
        const local = await join(a, 'k');
        await waitFor(
          () => a.ws.hub.getClusterRoomCount('k') === 2,
          3_000,
          'the remote member to be counted',
        );
        assert.equal(a.ws.metrics().cluster_nodes, 2);

        child.kill('SIGKILL');
        await exited;
        const killedAt = performance.now();
        await waitFor(() => a.ws.hub.getClusterRoomCount('k') === 1, ttl + 500, 'the killed node to vanish');
        const elapsed = performance.now() - killedAt;
        assert.ok(elapsed <= ttl + 50, `vanished after ${elapsed.toFixed(0)} ms, bound ${ttl} ms`);
        assert.equal(a.ws.metrics().cluster_nodes, 1);
        assert.deepEqual(a.ws.hub.getClusterRooms(), ['k']);

        await conn.closed();
        await closeClients(local);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
      }
    });
  });
