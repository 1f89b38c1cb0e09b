// Presence announcements are bounded: what a node accepts from others (bytes
// before parsing, rooms per announcement, room names and counts, parts per
// round), and what it sends itself (split into parts within those bounds,
// the smallest rooms left out and counted past the cap). What a node keeps
// from another expires: a silent node after presenceTtl, a goodbye at once.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Cluster,
  PRESENCE_MAX_BYTES,
  PRESENCE_MAX_PARTS,
  PRESENCE_MAX_ROOMS,
  type ClusterDelivery,
  type ClusterOptions,
} from '../../../src/broker/cluster.ts';
import { MemoryBus, MemoryTransport } from '../../../src/broker/memory.ts';
import type { Transport } from '../../../src/broker/transport.ts';
import { ROOM_NAME_MAX_BYTES } from '../../../src/hub/validation.ts';
import { waitFor } from '../../e2e/server/harness.ts';
import { LossyTransport } from './lossy-transport.ts';

const PRESENCE = 'wshub:presence';

/** A hub stand-in whose rooms the test sets. */
class Rooms implements ClusterDelivery {
  counts = new Map<string, number>();
  isValidRoom?: (room: string) => boolean;
  deliver(): void {}
  localCounts(): Map<string, number> {
    return this.counts;
  }
}

const started: Cluster[] = [];
const taps: MemoryTransport[] = [];

afterEach(async () => {
  for (const cluster of started.splice(0)) await cluster.close();
  for (const tap of taps.splice(0)) await tap.close();
});

async function memoryNode(
  bus: MemoryBus,
  options: Partial<ClusterOptions> = {},
  rooms = new Rooms(),
  transport: MemoryTransport = new MemoryTransport(bus),
): Promise<Cluster> {
  const cluster = new Cluster({ transport, presenceInterval: 60_000, ...options });
  await cluster.start(rooms);
  started.push(cluster);
  return cluster;
}

/** A raw connection to the bus: records every presence message and can publish anything. */
async function tap(bus: MemoryBus): Promise<{ seen: Buffer[]; send(body: string | Buffer): Promise<void> }> {
  const transport = new MemoryTransport(bus);
  const seen: Buffer[] = [];
  await transport.start((_channel, payload) => seen.push(payload), {});
  await transport.subscribe([PRESENCE]);
  taps.push(transport);
  return {
    seen,
    async send(body) {
      await transport.publish(PRESENCE, Buffer.from(body));
      await sleep(1);
    },
  };
}

function announcement(node: string, rooms: Record<string, unknown>, extra: object = {}): string {
  return JSON.stringify({ node, rooms, ...extra });
}

describe('presence from other nodes is bounded', () => {
  test('an announcement over PRESENCE_MAX_BYTES is refused whole and counted; one at the bound is taken', async () => {
    const bus = new MemoryBus();
    const b = await memoryNode(bus, { nodeId: 'b' });
    const rogue = await tap(bus);
    // Valid in every other respect: a few rooms, padded with one long field.
    const body = announcement('x', { big: 5 }, { pad: 'p'.repeat(PRESENCE_MAX_BYTES) });
    assert.ok(Buffer.byteLength(body) > PRESENCE_MAX_BYTES);
    await rogue.send(body);
    assert.equal(b.remoteRoomCount('big'), 0, 'nothing from it was taken');
    assert.equal(b.nodeCount(), 1);
    assert.equal(b.metrics().broker_presence_refused, 1);

    // Right at the bound it is accepted.
    const fits = announcement('x', { big: 5 }, { pad: '' });
    const padded = fits.replace(
      '"pad":""',
      `"pad":"${'p'.repeat(PRESENCE_MAX_BYTES - Buffer.byteLength(fits))}"`,
    );
    assert.equal(Buffer.byteLength(padded), PRESENCE_MAX_BYTES);
    await rogue.send(padded);
    assert.equal(b.remoteRoomCount('big'), 5);
    assert.equal(b.metrics().broker_presence_refused, 1);
  });

  test('more than PRESENCE_MAX_ROOMS rooms in one announcement: refused whole and counted', async () => {
    const bus = new MemoryBus();
    const b = await memoryNode(bus, { nodeId: 'b' });
    const rogue = await tap(bus);
    const rooms = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`r${i}`, 1]));
    await rogue.send(announcement('x', rooms(PRESENCE_MAX_ROOMS + 1)));
    assert.equal(b.remoteRooms().size, 0);
    assert.equal(b.metrics().broker_presence_refused, 1);
    await rogue.send(announcement('x', rooms(PRESENCE_MAX_ROOMS)));
    assert.equal(b.remoteRooms().size, PRESENCE_MAX_ROOMS);
    assert.equal(b.metrics().broker_presence_refused, 1);
  });

  test("room names outside the hub's room policy and counts that are not positive whole numbers are skipped and counted", async () => {
    const bus = new MemoryBus();
    const b = await memoryNode(bus, { nodeId: 'b' });
    const rogue = await tap(bus);
    const longest = 'l'.repeat(ROOM_NAME_MAX_BYTES);
    await rogue.send(
      announcement('x', {
        ok: 3,
        [longest]: 2,
        [`${longest}l`]: 1,
        'has space': 1,
        'a/b': 1,
        '': 1,
        zero: 0,
        negative: -4,
        fraction: 1.5,
        huge: 2 ** 53,
        text: '7',
        nested: { n: 1 },
      }),
    );
    assert.deepEqual([...b.remoteRooms()].sort(), [longest, 'ok'].sort());
    assert.equal(b.remoteRoomCount('ok'), 3);
    assert.equal(b.remoteRoomCount(longest), 2);
    const m = b.metrics();
    assert.equal(m.broker_presence_rooms_refused, 10);
    assert.equal(m.broker_presence_refused, 0, 'the valid part of the announcement was kept');
  });

  test('a custom room policy of the hub is the one applied', async () => {
    const bus = new MemoryBus();
    const rooms = new Rooms();
    rooms.isValidRoom = (room: string) => room.startsWith('team-');
    const b = await memoryNode(bus, { nodeId: 'b' }, rooms);
    const rogue = await tap(bus);
    await rogue.send(announcement('x', { 'team-1': 2, other: 1 }));
    assert.deepEqual([...b.remoteRooms()], ['team-1']);
    assert.equal(b.metrics().broker_presence_rooms_refused, 1);
  });

  test('malformed announcements are refused and counted, and never throw', async () => {
    const bus = new MemoryBus();
    const b = await memoryNode(bus, { nodeId: 'b' });
    const rogue = await tap(bus);
    const bad = [
      '{not json',
      '"a string"',
      'null',
      '[1,2]',
      announcement('', { r: 1 }),
      announcement('n'.repeat(65), { r: 1 }),
      announcement('has space', { r: 1 }),
      JSON.stringify({ node: 5, rooms: { r: 1 } }),
      JSON.stringify({ node: 'x' }),
      JSON.stringify({ node: 'x', rooms: [1] }),
      announcement('x', { r: 1 }, { parts: 0, part: 0 }),
      announcement('x', { r: 1 }, { parts: PRESENCE_MAX_PARTS + 1, part: 0 }),
      announcement('x', { r: 1 }, { parts: 2, part: 2 }),
      announcement('x', { r: 1 }, { parts: 2, part: -1 }),
      announcement('x', { r: 1 }, { parts: 2, part: 0.5 }),
      announcement('x', { r: 1 }, { round: -1 }),
      announcement('x', { r: 1 }, { round: 2 ** 32 }),
    ];
    for (const body of bad) await rogue.send(body);
    assert.equal(b.metrics().broker_presence_refused, bad.length);
    assert.equal(b.remoteRooms().size, 0);
    assert.equal(b.nodeCount(), 1);
  });

  test('a split announcement counts once every part of its round arrived; a repeated part is refused; a round missing a part leaves the last complete counts', async () => {
    const bus = new MemoryBus();
    const b = await memoryNode(bus, { nodeId: 'b' });
    const rogue = await tap(bus);
    const part = (round: number, index: number, rooms: Record<string, number>) =>
      announcement('x', rooms, { round, parts: 2, part: index });
    await rogue.send(part(1, 0, { a: 1 }));
    assert.equal(b.nodeCount(), 1, 'half a round is not yet a view of the node');
    await rogue.send(part(1, 0, { a: 9 }));
    assert.equal(b.metrics().broker_presence_refused, 1, 'the same part twice');
    await rogue.send(part(1, 1, { b: 2 }));
    assert.equal(b.nodeCount(), 2);
    assert.equal(b.remoteRoomCount('a'), 1);
    assert.equal(b.remoteRoomCount('b'), 2);

    // Round 2 loses its second part; round 3 starts over.
    await rogue.send(part(2, 0, { a: 5 }));
    await rogue.send(part(3, 0, { a: 7 }));
    assert.equal(b.remoteRoomCount('a'), 1, 'still the last complete round');
    await rogue.send(part(3, 1, { c: 4 }));
    assert.equal(b.remoteRoomCount('a'), 7);
    assert.equal(b.remoteRoomCount('b'), 0, 'rooms absent from the new round are gone');
    assert.equal(b.remoteRoomCount('c'), 4);
  });
});

describe('what a node keeps from all other nodes together is bounded', () => {
  test('maxRemoteNodes: announcements from one node more are refused until a known one expires', async () => {
    const bus = new MemoryBus();
    const b = await memoryNode(bus, { nodeId: 'b', maxRemoteNodes: 3, presenceTtl: 300 });
    const rogue = await tap(bus);
    for (const node of ['n1', 'n2', 'n3', 'n4', 'n5']) await rogue.send(announcement(node, { [node]: 1 }));
    assert.equal(b.nodeCount(), 4, 'three others and this one');
    assert.equal(b.metrics().broker_presence_refused, 2);
    await rogue.send(announcement('n1', { n1: 2 }));
    assert.equal(b.remoteRoomCount('n1'), 2, 'a known node is still heard');
    await sleep(400);
    await rogue.send(announcement('n4', { n4: 1 }));
    assert.equal(b.remoteRoomCount('n4'), 1, 'room again once the others expired');
    assert.equal(b.nodeCount(), 2);
  });

  test('maxRemoteRooms: an announcement that would go over is refused; what it replaces does not count', async () => {
    const bus = new MemoryBus();
    const b = await memoryNode(bus, { nodeId: 'b', maxRemoteRooms: 100 });
    const rogue = await tap(bus);
    const rooms = (prefix: string, n: number) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, 1]));
    await rogue.send(announcement('x', rooms('x', 60)));
    await rogue.send(announcement('y', rooms('y', 50)));
    assert.equal(b.metrics().broker_presence_refused, 1, "y's 50 do not fit beside x's 60");
    assert.equal(b.remoteRooms().size, 60);
    await rogue.send(announcement('x', rooms('x', 100)));
    assert.equal(b.remoteRooms().size, 100, "x's new counts replace its old ones");
    assert.equal(b.metrics().broker_presence_rooms, 100);
    await rogue.send(announcement('x', rooms('x', 10)));
    await rogue.send(announcement('y', rooms('y', 50)));
    assert.equal(b.metrics().broker_presence_rooms, 60);
    assert.equal(b.metrics().broker_presence_refused, 1);
  });

  test('bad bounds are refused', () => {
    const transport = new MemoryTransport(new MemoryBus());
    for (const value of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new Cluster({ transport, maxRemoteNodes: value }), RangeError);
      assert.throws(() => new Cluster({ transport, maxRemoteRooms: value }), RangeError);
    }
  });
});

describe("a node's own announcement stays within the bounds", () => {
  /** Parses every announcement the tap saw and checks each against the bounds. */
  function checkParts(seen: Buffer[]): Array<{ parts: number; part: number; rooms: Record<string, number> }> {
    return seen.map((body) => {
      assert.ok(body.length <= PRESENCE_MAX_BYTES, `an announcement of ${body.length} bytes`);
      const message = JSON.parse(body.toString()) as {
        parts: number;
        part: number;
        rooms: Record<string, number>;
      };
      assert.ok(Object.keys(message.rooms).length <= PRESENCE_MAX_ROOMS);
      assert.ok(message.parts <= PRESENCE_MAX_PARTS);
      return message;
    });
  }

  test('30,000 rooms with the longest names: split into parts another node accepts in full', async () => {
    const bus = new MemoryBus();
    const b = await memoryNode(bus, { nodeId: 'b' });
    const watcher = await tap(bus);
    const rooms = new Rooms();
    const total = 30_000;
    for (let i = 0; i < total; i++)
      rooms.counts.set(String(i).padStart(ROOM_NAME_MAX_BYTES, 'r'), (i % 5) + 1);
    const a = await memoryNode(bus, { nodeId: 'a' }, rooms);
    await waitFor(() => b.nodeCount() === 2, 2_000, 'B to put A together');
    const parts = checkParts(watcher.seen);
    assert.ok(parts.length > 1, `split into ${parts.length} parts`);
    assert.ok(parts.every((p) => p.parts === parts.length));
    assert.equal(b.remoteRooms().size, total);
    for (const i of [0, 1, 12_345, total - 1])
      assert.equal(b.remoteRoomCount(String(i).padStart(ROOM_NAME_MAX_BYTES, 'r')), (i % 5) + 1);
    assert.equal(a.metrics().broker_presence_rooms_omitted, 0);
    assert.equal(b.metrics().broker_presence_refused, 0);
    assert.equal(b.metrics().broker_presence_rooms_refused, 0);
  });

  test('more rooms than PRESENCE_MAX_PARTS parts hold: the smallest rooms are left out and counted, the others are exact', async () => {
    const bus = new MemoryBus();
    const b = await memoryNode(bus, { nodeId: 'b' });
    const watcher = await tap(bus);
    const rooms = new Rooms();
    const capacity = PRESENCE_MAX_PARTS * PRESENCE_MAX_ROOMS;
    const total = capacity + 5_000;
    // The 5,000 rooms with one member are spread among the larger ones.
    for (let i = 0; i < total; i++)
      rooms.counts.set(`room-${i}`, i % 27 === 0 && i / 27 < 5_000 ? 1 : 2 + (i % 3));
    const a = await memoryNode(bus, { nodeId: 'a' }, rooms);
    await waitFor(() => b.nodeCount() === 2, 5_000, 'B to put A together');
    const parts = checkParts(watcher.seen);
    assert.equal(parts.length, PRESENCE_MAX_PARTS);
    assert.equal(a.metrics().broker_presence_rooms_omitted, 5_000);
    const seen = b.remoteRooms();
    assert.equal(seen.size, capacity);
    for (const [room, count] of rooms.counts) {
      if (count > 1) assert.equal(b.remoteRoomCount(room), count, `${room} is announced with its count`);
      else assert.ok(!seen.has(room), `${room} (one member) is one of those left out`);
    }
  });

  test('a node with no rooms still announces itself (one empty part)', async () => {
    const bus = new MemoryBus();
    const b = await memoryNode(bus, { nodeId: 'b' });
    await memoryNode(bus, { nodeId: 'a' });
    await waitFor(() => b.nodeCount() === 2, 1_000, 'A to be seen');
    assert.equal(b.remoteRooms().size, 0);
  });
});

/** A broker that takes publishes and never answers: records the presence ones. */
class StalledTransport implements Transport {
  readonly kind = 'stalled';
  readonly connected = true;
  presence = 0;
  start(): Promise<void> {
    return Promise.resolve();
  }
  subscribe(): Promise<void> {
    return Promise.resolve();
  }
  unsubscribe(): Promise<void> {
    return Promise.resolve();
  }
  publish(channel: string): Promise<void> {
    if (channel === PRESENCE) this.presence++;
    return new Promise(() => {});
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

describe('a stalled broker', () => {
  test('gets no new announcement while the last one is still waiting', async () => {
    const transport = new StalledTransport();
    const rooms = new Rooms();
    rooms.counts.set('r', 1);
    const cluster = new Cluster({ transport, presenceInterval: 20, closeTimeout: 50 });
    await cluster.start(rooms);
    started.push(cluster);
    await sleep(300);
    // The goodbye at close is the one extra publish allowed.
    assert.equal(transport.presence, 1, 'one announcement in ~15 intervals');
  });
});

describe('presence expires', () => {
  test('a node that falls silent: its counts last presenceTtl after its last announcement, then vanish; it is counted again once heard', async () => {
    const bus = new MemoryBus();
    const ttl = 1_000;
    const interval = 50;
    const b = await memoryNode(bus, { nodeId: 'b', presenceTtl: ttl });
    const rooms = new Rooms();
    rooms.counts.set('r', 3);
    const transport = new LossyTransport(bus);
    let silent = false;
    let lastAnnounced = 0;
    // Like a hung or cut-off process: no goodbye, simply no more announcements.
    transport.drop = (channel) => {
      if (channel !== PRESENCE) return false;
      if (!silent) lastAnnounced = performance.now();
      return silent;
    };
    await memoryNode(bus, { nodeId: 'a', presenceInterval: interval }, rooms, transport);
    await waitFor(() => b.nodeCount() === 2, 2_000, 'A to be seen');
    assert.equal(b.remoteRoomCount('r'), 3);

    silent = true;
    await sleep(ttl / 2);
    assert.equal(b.nodeCount(), 2, 'still counted within presenceTtl');
    assert.equal(b.remoteRoomCount('r'), 3);
    await waitFor(() => b.nodeCount() === 1, 3 * ttl, 'A to expire');
    const expiredAfter = performance.now() - lastAnnounced;
    assert.ok(expiredAfter >= ttl, `expired ${expiredAfter.toFixed(0)} ms after the last announcement`);
    assert.ok(
      expiredAfter < ttl + 1_000,
      `expired ${expiredAfter.toFixed(0)} ms after the last announcement`,
    );
    assert.equal(b.remoteRoomCount('r'), 0);
    assert.equal(b.remoteRooms().size, 0);
    const m = b.metrics();
    assert.equal(m.cluster_nodes, 1);
    assert.equal(m.broker_presence_rooms, 0);
    assert.ok(transport.lost > 0);

    silent = false;
    await waitFor(() => b.nodeCount() === 2, 2_000, 'A to be seen again');
    assert.equal(b.remoteRoomCount('r'), 3);
  });

  test('a node that says goodbye is dropped at once, long before presenceTtl', async () => {
    const bus = new MemoryBus();
    const b = await memoryNode(bus, { nodeId: 'b', presenceTtl: 60_000 });
    const rooms = new Rooms();
    rooms.counts.set('r', 2);
    const a = await memoryNode(bus, { nodeId: 'a' }, rooms);
    await waitFor(() => b.remoteRoomCount('r') === 2, 2_000, 'A to be seen');
    await a.close();
    await waitFor(() => b.nodeCount() === 1, 1_000, 'A to be dropped');
    assert.equal(b.remoteRoomCount('r'), 0);
  });

  test('a split announcement whose round never completes is dropped after presenceTtl, and frees its share of maxRemoteRooms', async () => {
    const bus = new MemoryBus();
    const ttl = 300;
    const b = await memoryNode(bus, {
      nodeId: 'b',
      presenceTtl: ttl,
      presenceInterval: 50,
      maxRemoteRooms: 100,
    });
    const rogue = await tap(bus);
    const rooms = (prefix: string, n: number) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, 1]));
    await rogue.send(announcement('x', rooms('x', 60), { round: 1, parts: 2, part: 0 }));
    assert.equal(b.nodeCount(), 1, 'half a round is not a view of the node');
    assert.equal(b.metrics().broker_presence_rooms, 60, 'but its rooms are held meanwhile');
    await rogue.send(announcement('y', rooms('y', 50)));
    assert.equal(b.metrics().broker_presence_refused, 1, "y's 50 do not fit beside x's 60");

    await waitFor(() => b.metrics().broker_presence_rooms === 0, 3 * ttl, 'the unfinished round to expire');
    await rogue.send(announcement('y', rooms('y', 50)));
    assert.equal(b.remoteRooms().size, 50);
    assert.equal(b.nodeCount(), 2);
    assert.equal(b.metrics().broker_presence_refused, 1);
  });
});
