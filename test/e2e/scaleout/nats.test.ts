// Scale-out through a real nats-server: several in-process hub nodes, each
// with its own NatsTransport connection. Cross-node fan-out (exactly once,
// in order per publisher), subject mapping of awkward room names,
// interest-based subscriptions as the server sees them, cluster-wide
// counts and the admin broadcast reaching other nodes.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { channelToSubject, NatsTransport, subjectToChannel } from '../../../src/broker/nats.ts';
import { assertNoLeaks } from '../../helpers/leaks.ts';
import { natsCluster, requireNatsServer, startNatsServer, type NatsServer } from '../../helpers/nats.ts';
import {
  BROADCAST_SECRET,
  cleanupHubs,
  connectClient,
  rawHttp,
  startHub,
  waitFor,
  type Client,
  type RunningHub,
} from '../server/harness.ts';

const gate = requireNatsServer();
let nats: NatsServer | null = null;
let nodeCounter = 0;

before(async () => {
  if (gate.skip === false) nats = await startNatsServer();
});
after(async () => {
  await nats?.stop();
});
afterEach(cleanupHubs);

function server(): NatsServer {
  assert.ok(nats !== null, 'nats-server is running');
  return nats;
}

/** A hub node with its own NATS connection, started and listening. */
async function startNode(label: string): Promise<{ hub: RunningHub; name: string }> {
  const name = `${label}-${++nodeCounter}`;
  const hub = await startHub({
    allowUnauthenticated: true,
    broadcastEnabled: true,
    broadcastSecret: BROADCAST_SECRET,
    cluster: natsCluster(server().url, name),
  });
  await hub.ws.start();
  return { hub, name };
}

function join(hub: RunningHub, room: string): Promise<Client> {
  return connectClient(hub.url(`/ws?room=${encodeURIComponent(room)}`));
}

/** Subjects the server says the connection named `name` is subscribed to. */
async function subjectsOf(name: string): Promise<string[]> {
  const conns = await server().connections();
  return conns.find((c) => c.name === name)?.subjects ?? [];
}

/** Waits until the server's view of every named connection includes the rooms' subjects. */
async function waitForInterest(names: string[], rooms: string[]): Promise<void> {
  const wanted = rooms.map((room) => channelToSubject(`wshub:room:${room}`));
  const deadline = performance.now() + 3_000;
  for (;;) {
    const conns = await server().connections();
    const ok = names.every((name) => {
      const subjects = conns.find((c) => c.name === name)?.subjects ?? [];
      return wanted.every((s) => subjects.includes(s));
    });
    if (ok) return;
    if (performance.now() > deadline)
      assert.fail(`no interest in ${rooms.join(', ')} from ${names.join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Every message a client receives until `settleMs` passes without one. */
async function drain(client: Client, settleMs = 200): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const m = await client.queue.next(settleMs).catch(() => null);
    if (m === null) return out;
    out.push(m.text);
  }
}

async function closeAll(clients: Client[]): Promise<void> {
  for (const c of clients) c.conn.close();
  await Promise.all(clients.map((c) => c.conn.closed()));
}

describe('channel ↔ subject mapping', () => {
  test('awkward room names become one literal token and map back exactly', () => {
    assert.equal(channelToSubject('wshub:room:a.b'), 'wshub:room:a%2Eb');
    assert.equal(channelToSubject('wshub:room:a.*'), 'wshub:room:a%2E%2A');
    assert.equal(channelToSubject('wshub:room:>'), 'wshub:room:%3E');
    assert.equal(channelToSubject('wshub:room:50%'), 'wshub:room:50%25');
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (channel) => {
        const subject = channelToSubject(channel);
        assert.match(subject, /^[A-Za-z0-9_:%-]*$/);
        assert.equal(subjectToChannel(subject), channel);
      }),
      { numRuns: 500 },
    );
    assert.throws(() => subjectToChannel('a.b'), RangeError);
    assert.throws(() => subjectToChannel('a%2'), RangeError);
  });
});

describe('NatsTransport against nats-server', gate, () => {
  test('wildcard-looking channels do not leak into each other', async () => {
    const channels = ['wshub:room:a', 'wshub:room:a.b', 'wshub:room:a.*', 'wshub:room:>', 'wshub:room:a:b'];
    const got = new Map<string, string[]>();
    const receiver = new NatsTransport({ servers: server().url, name: 'leak-receiver' });
    const sender = new NatsTransport({ servers: server().url, name: 'leak-sender' });
    await receiver.start((channel, payload) => {
      got.set(channel, [...(got.get(channel) ?? []), payload.toString()]);
    }, {});
    await sender.start(() => {}, {});
    try {
      await receiver.subscribe(channels);
      await receiver.subscribe(channels); // idempotent: still one subscription each
      assert.equal((await subjectsOf('leak-receiver')).length, channels.length);
      for (const channel of channels) await sender.publish(channel, Buffer.from(`to ${channel}`));
      await waitFor(() => [...got.values()].flat().length >= channels.length, 3_000, 'deliveries');
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (const channel of channels) assert.deepEqual(got.get(channel), [`to ${channel}`], channel);
      await receiver.unsubscribe(['wshub:room:a.*']);
      assert.equal((await subjectsOf('leak-receiver')).includes('wshub:room:a%2E%2A'), false);
    } finally {
      await receiver.close();
      await sender.close();
    }
    await assertNoLeaks();
  });
});

describe('cross-node fan-out through NATS', gate, () => {
  test('three nodes: every member gets 2 × 200 messages exactly once, in order per publisher', async () => {
    const room = 'chat.v1:main';
    const nodes = [await startNode('A'), await startNode('B'), await startNode('C')];
    const members: Client[] = [];
    for (const { hub } of nodes) members.push(await join(hub, room), await join(hub, room));
    await waitForInterest(
      nodes.map((n) => n.name),
      [room],
    );
    const [pubA, pubC] = [members[0]!, members[4]!];
    const sends: Promise<void>[] = [];
    for (let i = 1; i <= 200; i++) {
      sends.push(pubA.conn.sendText(`A:${i}`), pubC.conn.sendText(`C:${i}`));
    }
    await Promise.all(sends);
    const expectedA = Array.from({ length: 200 }, (_, i) => `A:${i + 1}`);
    const expectedC = Array.from({ length: 200 }, (_, i) => `C:${i + 1}`);
    for (const [index, member] of members.entries()) {
      const got: string[] = [];
      for (let i = 0; i < 400; i++) got.push((await member.queue.next(5_000)).text);
      assert.deepEqual(
        got.filter((t) => t.startsWith('A:')),
        expectedA,
        `member ${index}: A's messages once each, in order`,
      );
      assert.deepEqual(
        got.filter((t) => t.startsWith('C:')),
        expectedC,
        `member ${index}: C's messages once each, in order`,
      );
    }
    // Nothing extra trickles in afterwards (no echo, no duplicate).
    for (const member of members) assert.deepEqual(await drain(member, 150), []);
    for (const { hub } of nodes) {
      const m = hub.ws.metrics();
      assert.equal(m.broker_lost, 0);
      // Each node received the other two nodes' publishes, never its own echo.
      const own = hub === nodes[0]!.hub || hub === nodes[2]!.hub ? 200 : 0;
      assert.equal(m.broker_received, 400 - own);
    }
    await closeAll(members);
  });

  test('two nodes: rooms a, a.b, a.b.c, a:b and a_b stay separate', async () => {
    const rooms = ['a', 'a.b', 'a.b.c', 'a:b', 'a_b'];
    const [A, B] = [await startNode('A'), await startNode('B')];
    const onA = new Map<string, Client>();
    const onB = new Map<string, Client>();
    for (const room of rooms) {
      onA.set(room, await join(A.hub, room));
      onB.set(room, await join(B.hub, room));
    }
    await waitForInterest([A.name, B.name], rooms);
    for (const room of rooms) await onB.get(room)!.conn.sendText(`hello ${room}`);
    for (const room of rooms) {
      assert.deepEqual(await drain(onA.get(room)!), [`hello ${room}`], `A's member of ${room}`);
      assert.deepEqual(await drain(onB.get(room)!, 50), [`hello ${room}`], `B's member of ${room}`);
    }
    await closeAll([...onA.values(), ...onB.values()]);
  });
});

describe('interest-based subscriptions', gate, () => {
  test('a node without members of a room is not subscribed to it and receives none of its traffic', async () => {
    const [A, B] = [await startNode('A'), await startNode('B')];
    const a1 = await join(A.hub, 'only.on:a');
    const a2 = await join(A.hub, 'only.on:a');
    const sharedA = await join(A.hub, 'shared');
    const sharedB = await join(B.hub, 'shared');
    await waitForInterest([A.name], ['only.on:a', 'shared']);
    await waitForInterest([B.name], ['shared']);
    // The server's own view: B never asked for the room.
    assert.equal((await subjectsOf(B.name)).includes(channelToSubject('wshub:room:only.on:a')), false);
    for (let i = 0; i < 20; i++) await a1.conn.sendText(`private ${i}`);
    assert.equal((await drain(a2)).length, 20);
    assert.equal(B.hub.ws.metrics().broker_received, 0, 'B received none of the room traffic');
    // The same counter does move for a room B serves.
    await sharedA.conn.sendText('to both');
    assert.deepEqual(await drain(sharedB), ['to both']);
    assert.equal(B.hub.ws.metrics().broker_received, 1);
    // The last local member leaving withdraws the interest on the server.
    await closeAll([a1, a2]);
    const subject = channelToSubject('wshub:room:only.on:a');
    await waitFor(() => !A.hub.ws.hub.getRooms().includes('only.on:a'), 2_000, 'room emptied');
    const deadline = performance.now() + 2_000;
    while ((await subjectsOf(A.name)).includes(subject)) {
      assert.ok(performance.now() < deadline, 'A unsubscribed from the empty room');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await closeAll([sharedA, sharedB]);
  });
});

describe('cluster-wide state through NATS', gate, () => {
  test('room counts and the room list add up across three nodes; a node leaving drops out', async () => {
    const [A, B, C] = [await startNode('A'), await startNode('B'), await startNode('C')];
    const clients = [
      await join(A.hub, 'r.1'),
      await join(B.hub, 'r.1'),
      await join(B.hub, 'r.1'),
      await join(C.hub, 'r.1'),
      await join(C.hub, 'r.1'),
      await join(C.hub, 'r.1'),
      await join(B.hub, 'only:b'),
    ];
    for (const node of [A, B, C]) {
      await waitFor(
        () => node.hub.ws.hub.getClusterRoomCount('r.1') === 6,
        3_000,
        `${node.name} sees 6 members of r.1`,
      );
      await waitFor(() => node.hub.ws.hub.getClusterRoomCount('only:b') === 1, 3_000, 'only:b counted');
      assert.deepEqual(node.hub.ws.hub.getClusterRooms().sort(), ['only:b', 'r.1']);
      assert.equal(node.hub.ws.metrics().cluster_nodes, 3);
    }
    await closeAll(clients.slice(1, 3));
    await waitFor(() => A.hub.ws.hub.getClusterRoomCount('r.1') === 4, 3_000, 'B members left');
    await closeAll(clients.slice(3, 6));
    await C.hub.close();
    await waitFor(() => A.hub.ws.hub.getClusterRoomCount('r.1') === 1, 3_000, "C's members gone");
    assert.equal(A.hub.ws.metrics().cluster_nodes, 2);
    await closeAll([clients[0]!, clients[6]!]);
  });

  test('the admin broadcast on node A reaches members on node B (room and everyone)', async () => {
    const [A, B] = [await startNode('A'), await startNode('B')];
    const inRoomB = await join(B.hub, 'news.eu');
    const otherB = await join(B.hub, 'sport');
    const inRoomA = await join(A.hub, 'news.eu');
    await waitForInterest([B.name], ['news.eu']);
    const post = async (path: string, body: string): Promise<number> => {
      const head =
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Authorization: Bearer ${BROADCAST_SECRET}\r\nConnection: close\r\n\r\n`;
      return (await rawHttp(A.hub.port, head, body)).status;
    };
    assert.equal(await post('/_admin/broadcast?room=news.eu', 'room notice'), 204);
    assert.equal(await post('/_admin/broadcast', 'to everyone'), 204);
    assert.deepEqual(await drain(inRoomB), ['room notice', 'to everyone']);
    assert.deepEqual(await drain(otherB, 50), ['to everyone']);
    assert.deepEqual(await drain(inRoomA, 50), ['room notice', 'to everyone']);
    await closeAll([inRoomB, otherB, inRoomA]);
  });
});
