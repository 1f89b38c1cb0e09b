// NATS faults: the server unreachable at start, and the server killed with
// SIGKILL and restarted on the same port while a member keeps publishing.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, test } from 'node:test';
import { Cluster } from '../../../src/broker/cluster.ts';
import { channelToSubject, NatsTransport } from '../../../src/broker/nats.ts';
import { createWshub } from '../../../src/server/server.ts';
import { assertNoLeaks } from '../../helpers/leaks.ts';
import {
  freePort,
  natsCluster,
  requireNatsServer,
  startNatsServer,
  type NatsServer,
} from '../../helpers/nats.ts';
import {
  cleanupHubs,
  connectClient,
  startHub,
  waitFor,
  type Client,
  type RunningHub,
} from '../server/harness.ts';

const gate = requireNatsServer();
const servers: NatsServer[] = [];

afterEach(async () => {
  await cleanupHubs();
  for (const s of servers.splice(0)) await s.stop();
});

async function startNode(url: string, name: string): Promise<RunningHub> {
  const hub = await startHub({ allowUnauthenticated: true, cluster: natsCluster(url, name) });
  await hub.ws.start();
  return hub;
}

function join(hub: RunningHub, room: string): Promise<Client> {
  return connectClient(hub.url(`/ws?room=${encodeURIComponent(room)}`));
}

/** Numbers of the `n:<i>` messages a client received until `settleMs` passes without one. */
async function numbers(client: Client, settleMs = 300): Promise<number[]> {
  const out: number[] = [];
  for (;;) {
    const m = await client.queue.next(settleMs).catch(() => null);
    if (m === null) return out;
    out.push(Number(m.text.slice(2)));
  }
}

describe('NATS unreachable at start', () => {
  test('ws.start() rejects quickly with an error naming the server; nothing is left open', async () => {
    const port = await freePort();
    const ws = createWshub({
      allowUnauthenticated: true,
      pingPeriod: 0,
      cluster: new Cluster({ transport: new NatsTransport({ servers: `nats://127.0.0.1:${port}` }) }),
    });
    const started = performance.now();
    await assert.rejects(ws.start(), (error: Error) => {
      assert.match(error.message, new RegExp(`NATS unreachable at nats://127\\.0\\.0\\.1:${port}`));
      return true;
    });
    assert.ok(performance.now() - started < 3_000, 'rejects without waiting for retries');
    await ws.shutdown({ timeout: 200 });
    await assertNoLeaks();
  });
});

describe('nats-server killed and restarted mid-stream', gate, () => {
  test('local delivery never stops, cross-node delivery resumes, broker_lost matches what B missed', async () => {
    const nats = await startNatsServer();
    servers.push(nats);
    const A = await startNode(nats.url, 'fault-A');
    const B = await startNode(nats.url, 'fault-B');
    const publisher = await join(A, 'live.feed');
    const localPeer = await join(A, 'live.feed');
    const remote = await join(B, 'live.feed');
    const subject = channelToSubject('wshub:room:live.feed');
    await waitFor(() => B.ws.hub.getClusterRoomCount('live.feed') === 3, 3_000, 'B sees all members');
    assert.ok((await nats.connections()).find((c) => c.name === 'fault-B')?.subjects.includes(subject));

    let sent = 0;
    const send = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        await publisher.conn.sendText(`n:${++sent}`);
        await sleep(4);
      }
    };
    await send(40);
    await nats.kill();
    await waitFor(() => A.ws.metrics().broker_connected === 0, 2_000, 'A notices the outage');
    await send(40); // while the broker is down
    await nats.restart();
    await send(10); // while the nodes reconnect
    await waitFor(
      () => A.ws.metrics().broker_connected === 1 && B.ws.metrics().broker_connected === 1,
      5_000,
      'both nodes reconnected',
    );
    // nats.js re-sent B's subscription by itself: the restarted server knows it.
    await waitFor(() => B.ws.hub.getClusterRoomCount('live.feed') === 3, 3_000, 'presence back');
    assert.ok((await nats.connections()).find((c) => c.name === 'fault-B')?.subjects.includes(subject));
    await send(40);

    const all = Array.from({ length: sent }, (_, i) => i + 1);
    assert.deepEqual(await numbers(localPeer), all, 'the local member got every message, in order');
    assert.deepEqual(await numbers(publisher, 50), all, 'so did the sender');
    const remoteGot = await numbers(remote, 50);
    // In order, no duplicates, and the tail after the reconnection is complete.
    assert.deepEqual(
      remoteGot,
      [...remoteGot].sort((x, y) => x - y),
    );
    assert.equal(new Set(remoteGot).size, remoteGot.length);
    assert.deepEqual(remoteGot.slice(-40), all.slice(-40), 'cross-node delivery resumed');
    const missed = sent - remoteGot.length;
    assert.ok(missed >= 40, `B missed at least the messages sent during the outage (missed ${missed})`);
    const a = A.ws.metrics();
    const b = B.ws.metrics();
    assert.equal(b.broker_lost, missed, 'B counted exactly what its member missed');
    assert.equal(b.broker_gaps, missed);
    assert.ok(a.broker_publish_failed! >= 40, `A counted its failed publishes (${a.broker_publish_failed})`);
    assert.ok(a.broker_publish_failed! <= missed);
    assert.ok(a.broker_reconnects! >= 1 && b.broker_reconnects! >= 1);

    // The hubs still serve: a new member on B gets traffic from A.
    const late = await join(B, 'live.feed');
    await waitFor(() => A.ws.hub.getClusterRoomCount('live.feed') === 4, 3_000, 'late member counted');
    await publisher.conn.sendText('n:0');
    assert.deepEqual(await numbers(late), [0]);
    for (const c of [publisher, localPeer, remote, late]) c.conn.close();
  });

  test('while the server is down publishes fail at once and are counted, not buffered', async () => {
    const nats = await startNatsServer();
    servers.push(nats);
    const events: string[] = [];
    const transport = new NatsTransport({ servers: nats.url, reconnectMaxDelayMs: 100 });
    await transport.start(() => {}, {
      down: () => events.push('down'),
      up: () => events.push('up'),
    });
    try {
      await transport.publish('wshub:all', Buffer.from('before'));
      await nats.kill();
      await waitFor(() => !transport.connected, 2_000, 'down noticed');
      const started = performance.now();
      await assert.rejects(transport.publish('wshub:all', Buffer.from('during')), /not connected/);
      assert.ok(performance.now() - started < 100, 'rejected without waiting');
      await nats.restart();
      await waitFor(() => transport.connected, 5_000, 'reconnected');
      await transport.publish('wshub:all', Buffer.from('after'));
      assert.deepEqual(events, ['down', 'up']);
    } finally {
      await transport.close();
    }
    await assertNoLeaks();
  });

  test('publishes made before the outage is noticed all fail within a bound; none is lost silently', async () => {
    const nats = await startNatsServer();
    servers.push(nats);
    const transport = new NatsTransport({ servers: nats.url, reconnectMaxDelayMs: 100 });
    await transport.start(() => {}, {});
    try {
      await transport.publish('wshub:all', Buffer.from('before'));
      await nats.kill();
      // The process is gone, so no publish from here on can be confirmed by it;
      // the transport may or may not have noticed yet. Every one must settle,
      // and as a failure (the client drops its offline buffer on reconnecting,
      // so a "success" here would be a message lost without being counted).
      const outcomes = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          if (i % 20 === 0) await sleep(1);
          const settled = transport.publish('wshub:all', Buffer.alloc(512, i)).then(
            () => 'confirmed',
            () => 'failed',
          );
          return Promise.race([settled, sleep(5_000).then(() => 'hung')]);
        }),
      );
      assert.deepEqual(
        outcomes.filter((o) => o !== 'failed'),
        [],
        'every publish after the kill failed, none hung or claimed success',
      );
    } finally {
      await transport.close();
    }
    await assertNoLeaks();
  });

  test('close() while the server is down returns promptly and leaves no socket', async () => {
    const nats = await startNatsServer();
    servers.push(nats);
    const transport = new NatsTransport({ servers: nats.url, reconnectMaxDelayMs: 100 });
    await transport.start(() => {}, {});
    await transport.subscribe(['wshub:room:x']);
    await nats.kill();
    await waitFor(() => !transport.connected, 2_000, 'down noticed');
    const started = performance.now();
    await transport.close();
    assert.ok(performance.now() - started < 1_000, 'close did not wait for the server');
    await assertNoLeaks();
  });
});

describe('nats-server stalled at shutdown', gate, () => {
  test('ws.shutdown() completes within its bound and leaves no socket open', async () => {
    const nats = await startNatsServer();
    servers.push(nats);
    const A = await startNode(nats.url, 'stall-A');
    const B = await startNode(nats.url, 'stall-B');
    const member = await join(A, 'stop');
    await waitFor(() => B.ws.hub.getClusterRoomCount('stop') === 1, 2_000, 'A announced to B');
    nats.pause();
    try {
      const started = performance.now();
      // 500 ms for the client's close handshake plus the cluster's 1 s close
      // bound; the rest is margin for a loaded machine.
      const bound = 500 + 1_000 + 1_500;
      const outcome = await Promise.race([
        A.ws.shutdown({ timeout: 500 }).then(() => 'done'),
        sleep(bound).then(() => 'hung'),
      ]);
      const took = performance.now() - started;
      assert.equal(outcome, 'done', `shutdown still waiting after ${bound} ms`);
      assert.ok(took < bound, `took ${took.toFixed(0)} ms`);
      await member.conn.closed();
    } finally {
      nats.resume();
    }
  });
});
