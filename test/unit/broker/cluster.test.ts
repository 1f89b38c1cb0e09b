// Cluster state stays bounded: publishes waiting for a stalled broker by
// bytes as well as count (overflow dropped and counted), and the sequence
// numbers of rooms without traffic are forgotten, while gap detection keeps
// working for active rooms. Loss is counted where it is seen: drops and
// failures by the sender, messages a broker lost by the receivers' gaps.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import {
  Cluster,
  DEFAULT_MAX_IN_FLIGHT_BYTES,
  type ClusterDelivery,
  type ClusterOptions,
} from '../../../src/broker/cluster.ts';
import { MemoryBus, MemoryTransport } from '../../../src/broker/memory.ts';
import type { Transport } from '../../../src/broker/transport.ts';
import { MAX_READ_LIMIT } from '../../../src/connection/connection.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import { waitFor } from '../../e2e/server/harness.ts';
import { LossyTransport, dropNth } from './lossy-transport.ts';

/** A broker that accepts publishes and answers none until `release()`, then answers all at once. */
class StalledTransport implements Transport {
  readonly kind = 'stalled';
  readonly connected = true;
  private readonly waiting: Array<() => void> = [];
  private stalled = true;

  start(): Promise<void> {
    return Promise.resolve();
  }
  subscribe(): Promise<void> {
    return Promise.resolve();
  }
  unsubscribe(): Promise<void> {
    return Promise.resolve();
  }
  publish(): Promise<void> {
    if (!this.stalled) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    this.stalled = false;
    for (const resolve of this.waiting.splice(0)) resolve();
  }
  stall(): void {
    this.stalled = true;
  }
  close(): Promise<void> {
    this.release();
    return Promise.resolve();
  }
}

/** What a node's hub would deliver, in arrival order. */
class Sink implements ClusterDelivery {
  readonly got: Array<{ room: string | null; text: string }> = [];
  deliver(room: string | null, _opcode: number, data: Buffer): void {
    this.got.push({ room, text: data.toString() });
  }
  localCounts(): Map<string, number> {
    return new Map();
  }
}

const started: Cluster[] = [];

afterEach(async () => {
  for (const cluster of started.splice(0)) {
    if (cluster.transport instanceof StalledTransport) cluster.transport.release();
    await cluster.close();
  }
});

async function node(transport: Transport, options: Partial<ClusterOptions> = {}): Promise<Cluster> {
  const cluster = new Cluster({ transport, ...options });
  await cluster.start(new Sink());
  started.push(cluster);
  return cluster;
}

async function memoryNode(
  bus: MemoryBus,
  options: Partial<ClusterOptions> = {},
): Promise<{ cluster: Cluster; sink: Sink }> {
  const sink = new Sink();
  const cluster = new Cluster({ transport: new MemoryTransport(bus), ...options });
  await cluster.start(sink);
  started.push(cluster);
  return { cluster, sink };
}

async function lossyNode(
  bus: MemoryBus,
  options: Partial<ClusterOptions> = {},
): Promise<{ cluster: Cluster; sink: Sink; transport: LossyTransport }> {
  const sink = new Sink();
  const transport = new LossyTransport(bus);
  const cluster = new Cluster({ transport, ...options });
  await cluster.start(sink);
  started.push(cluster);
  return { cluster, sink, transport };
}

const texts = (sink: Sink): string[] => sink.got.map((m) => m.text);

describe('in-flight publishes bounded in bytes', () => {
  test('a stalled broker holds at most maxInFlightBytes; the rest is dropped, counted, and takes no sequence number', async () => {
    const transport = new StalledTransport();
    const maxInFlightBytes = 1024 * 1024;
    const cluster = await node(transport, { nodeId: 'a', maxInFlightBytes });
    const payload = Buffer.alloc(256 * 1024, 0x61);
    const size = payload.length;
    const fits = Math.floor(maxInFlightBytes / size);
    const total = 200;
    let peak = 0;
    for (let i = 0; i < total; i++) {
      cluster.publish('big', Opcode.BINARY, payload);
      peak = Math.max(peak, cluster.metrics().broker_in_flight_bytes);
    }
    let m = cluster.metrics();
    assert.ok(peak <= maxInFlightBytes, `peak in-flight bytes ${peak} within ${maxInFlightBytes}`);
    assert.equal(m.broker_in_flight, fits);
    assert.equal(m.broker_in_flight_bytes, fits * size);
    assert.equal(m.broker_publish_dropped, total - fits, 'everything beyond the bytes bound is dropped');
    assert.equal(m.broker_lost, total - fits, 'and counted as lost');

    transport.release();
    await waitFor(() => cluster.metrics().broker_published === fits, 2_000, 'in-flight publishes to settle');
    m = cluster.metrics();
    assert.equal(m.broker_in_flight, 0);
    assert.equal(m.broker_in_flight_bytes, 0, 'settled publishes give their bytes back');
    transport.stall();
    cluster.publish('big', Opcode.BINARY, payload);
    assert.equal(cluster.metrics().broker_in_flight, 1, 'publishing works again once the broker answers');
    assert.equal(cluster.metrics().broker_publish_dropped, total - fits);
  });

  test('the count bound still applies to small messages', async () => {
    const transport = new StalledTransport();
    const cluster = await node(transport, { maxInFlight: 5 });
    for (let i = 0; i < 12; i++) cluster.publish('small', Opcode.TEXT, Buffer.from('x'));
    const m = cluster.metrics();
    assert.equal(m.broker_in_flight, 5);
    assert.equal(m.broker_publish_dropped, 7);
  });

  test('dropped publishes leave no hole in the sequence numbers a receiver sees', async () => {
    const bus = new MemoryBus();
    const a = await memoryNode(bus, { nodeId: 'a', maxInFlightBytes: 4 * 1024 });
    const b = await memoryNode(bus, { nodeId: 'b' });
    b.cluster.roomActive('r');
    await nextTurn();
    const payload = Buffer.alloc(1024, 0x62);
    // The memory bus settles a publish a microtask later: all six are pending at once.
    for (let i = 0; i < 6; i++) a.cluster.publish('r', Opcode.TEXT, payload);
    assert.equal(a.cluster.metrics().broker_publish_dropped, 2, 'only four 1 KiB messages fit in 4 KiB');
    await waitFor(() => b.sink.got.length === 4, 2_000, 'the four publishes to arrive');
    a.cluster.publish('r', Opcode.TEXT, payload);
    await waitFor(() => b.sink.got.length === 5, 2_000, 'the next publish to arrive');
    assert.equal(b.cluster.metrics().broker_gaps, 0);
  });

  test('the default fits the largest message a server accepts', async () => {
    const cluster = await node(new StalledTransport());
    cluster.publish('huge', Opcode.BINARY, Buffer.alloc(MAX_READ_LIMIT));
    assert.equal(cluster.metrics().broker_in_flight_bytes, MAX_READ_LIMIT);
    cluster.publish('huge', Opcode.BINARY, Buffer.alloc(1));
    assert.equal(cluster.metrics().broker_publish_dropped, 1, 'not one byte more');
    assert.equal(DEFAULT_MAX_IN_FLIGHT_BYTES, MAX_READ_LIMIT);
  });

  test('bad bounds are refused', () => {
    const transport = new StalledTransport();
    for (const maxInFlightBytes of [0, -1, 1.5, Number.NaN, Infinity]) {
      assert.throws(() => new Cluster({ transport, maxInFlightBytes }), RangeError);
    }
    assert.throws(() => new Cluster({ transport, maxInFlight: 0 }), RangeError);
    assert.throws(() => new Cluster({ transport, sequenceIdleTimeout: 0 }), RangeError);
    assert.throws(() => new Cluster({ transport, sequenceIdleTimeout: 2 ** 31 }), RangeError);
    assert.throws(() => new Cluster({ transport, closeTimeout: 0 }), RangeError);
    assert.throws(() => new Cluster({ transport, closeTimeout: 2 ** 31 }), RangeError);
  });
});

/** A stalled broker whose close() also never finishes: only the cluster's own bound ends the wait. */
class DeafTransport extends StalledTransport {
  closeDeadlines: Array<number | undefined> = [];
  override close(timeoutMs?: number): Promise<void> {
    this.closeDeadlines.push(timeoutMs);
    return new Promise(() => {});
  }
}

describe('close() with a broker that never answers', () => {
  test('the goodbye and the transport close are given up within closeTimeout plus a short grace', async () => {
    const transport = new DeafTransport();
    const cluster = await node(transport, { closeTimeout: 400 });
    const started = performance.now();
    const outcome = await Promise.race([cluster.close().then(() => 'done'), sleep(3_000).then(() => 'hung')]);
    const took = performance.now() - started;
    assert.equal(outcome, 'done', 'close() still waiting after 3 s');
    // 400 ms budget + 250 ms grace; the rest is margin for a loaded machine.
    assert.ok(took >= 390 && took < 1_500, `took ${took.toFixed(0)} ms`);
    assert.equal(transport.closeDeadlines.length, 1);
    const deadline = transport.closeDeadlines[0]!;
    assert.ok(deadline >= 0 && deadline <= 210, `the transport got what was left (${deadline} ms)`);
    assert.equal(await Promise.race([cluster.close().then(() => 'same'), sleep(50)]), 'same');
  });
});

describe('sequence numbers of idle rooms are forgotten', () => {
  test('20,000 rooms published and received: both maps empty after the idle period; gaps still counted in an active room', async () => {
    const bus = new MemoryBus();
    const idle = 1_500;
    const a = await memoryNode(bus, { nodeId: 'a', sequenceIdleTimeout: idle });
    const b = await memoryNode(bus, { nodeId: 'b', sequenceIdleTimeout: idle });
    const rooms = 20_000;
    for (let i = 0; i < rooms; i++) b.cluster.roomActive(`room-${i}`);
    b.cluster.roomActive('live');
    await nextTurn();

    const fillStarted = performance.now();
    for (let i = 0; i < rooms; i++) {
      a.cluster.publish(`room-${i}`, Opcode.TEXT, Buffer.from(String(i)));
      // Let the memory bus settle, so the count bound never drops anything.
      if (i % 1_000 === 999) await nextTurn();
    }
    await waitFor(() => b.sink.got.length === rooms, 5_000, 'every room message to arrive');
    const fillMs = performance.now() - fillStarted;
    // An entry survives at least `idle` after its last use, so all are still there.
    assert.ok(fillMs < idle, `filling took ${fillMs} ms, within the idle period`);
    const before = { out: a.cluster.metrics(), in: b.cluster.metrics() };
    assert.equal(before.out.broker_publish_dropped, 0);
    // The sweep may already have moved some to the older generation, never dropped them yet.
    assert.equal(before.out.broker_sequences_out, rooms, 'A numbers every room it sent to');
    assert.equal(before.in.broker_sequences_in, rooms, 'B checks every (A, room)');

    // One room keeps its traffic going while the others go quiet.
    let sent = 0;
    const keepAlive = setInterval(
      () => a.cluster.publish('live', Opcode.TEXT, Buffer.from(`l${++sent}`)),
      20,
    );
    try {
      await waitFor(
        () => a.cluster.metrics().broker_sequences_out <= 1 && b.cluster.metrics().broker_sequences_in <= 1,
        10 * idle + 2_000,
        'idle rooms to be forgotten',
      );
      await sleep(idle + 100);
      assert.equal(a.cluster.metrics().broker_sequences_out, 1, 'only the live room is still numbered');
      assert.equal(b.cluster.metrics().broker_sequences_in, 1, 'only (A, live) is still checked');
      assert.equal(b.cluster.metrics().broker_gaps, 0, 'no gap so far');
    } finally {
      clearInterval(keepAlive);
    }

    // Three messages lost in the live room are still counted as a gap.
    const liveBefore = b.sink.got.filter((m) => m.room === 'live').length;
    await waitFor(() => b.sink.got.filter((m) => m.room === 'live').length === sent, 2_000, 'live to settle');
    bus.setAvailable(false);
    for (let i = 0; i < 3; i++) a.cluster.publish('live', Opcode.TEXT, Buffer.from('lost'));
    bus.setAvailable(true);
    a.cluster.publish('live', Opcode.TEXT, Buffer.from('after'));
    await waitFor(() => b.sink.got.at(-1)?.text === 'after', 2_000, 'the message after the loss');
    assert.ok(liveBefore > 0);
    await waitFor(() => a.cluster.metrics().broker_publish_failed === 3, 1_000, 'failed publishes');
    assert.equal(b.cluster.metrics().broker_gaps, 3, 'the receiver counted exactly the three lost messages');
  });

  test('a room that loses its last local member and gets one again reports no false gap', async () => {
    const bus = new MemoryBus();
    const a = await memoryNode(bus, { nodeId: 'a' });
    const b = await memoryNode(bus, { nodeId: 'b' });
    b.cluster.roomActive('r');
    await nextTurn();
    for (let i = 0; i < 3; i++) a.cluster.publish('r', Opcode.TEXT, Buffer.from(`first-${i}`));
    await waitFor(() => b.sink.got.length === 3, 1_000, 'the first three');
    assert.equal(b.cluster.metrics().broker_sequences_in, 1);

    b.cluster.roomInactive('r');
    await nextTurn();
    assert.equal(b.cluster.metrics().broker_sequences_in, 0, 'forgotten with the last local member');
    // Nobody on B is in the room: these are nobody's loss.
    for (let i = 0; i < 3; i++) a.cluster.publish('r', Opcode.TEXT, Buffer.from(`unheard-${i}`));
    await sleep(20);
    b.cluster.roomActive('r');
    await nextTurn();
    a.cluster.publish('r', Opcode.TEXT, Buffer.from('again'));
    await waitFor(() => b.sink.got.length === 4, 1_000, 'the message after rejoining');
    assert.equal(b.sink.got.at(-1)?.text, 'again');
    assert.equal(b.cluster.metrics().broker_gaps, 0, 'no messages were missed by anyone');
  });

  test('a node that says goodbye is forgotten at once', async () => {
    const bus = new MemoryBus();
    const a = await memoryNode(bus, { nodeId: 'a' });
    const b = await memoryNode(bus, { nodeId: 'b' });
    b.cluster.roomActive('r');
    await nextTurn();
    a.cluster.publish('r', Opcode.TEXT, Buffer.from('hello'));
    await waitFor(() => b.cluster.metrics().broker_sequences_in === 1, 1_000, 'the message');
    await a.cluster.close();
    await waitFor(() => b.cluster.metrics().broker_sequences_in === 0, 1_000, 'A to be forgotten');
  });
});

describe('in-flight publishes bounded in count, between two nodes on one memory bus', () => {
  test('a burst past maxInFlight: the excess is dropped and counted by the sender alone; the receiver gets the rest without a gap', async () => {
    const bus = new MemoryBus();
    const a = await memoryNode(bus, { nodeId: 'a', maxInFlight: 3 });
    const b = await memoryNode(bus, { nodeId: 'b' });
    b.cluster.roomActive('r');
    await nextTurn();
    // The memory bus settles a publish a microtask later: all five are pending at once.
    for (let i = 1; i <= 5; i++) a.cluster.publish('r', Opcode.TEXT, Buffer.from(`m${i}`));
    const sending = a.cluster.metrics();
    assert.equal(sending.broker_in_flight, 3);
    assert.equal(sending.broker_in_flight_bytes, 6);
    assert.equal(sending.broker_publish_dropped, 2);
    assert.equal(sending.broker_lost, 2);
    await waitFor(() => b.sink.got.length === 3, 2_000, 'the three publishes that fit');
    assert.deepEqual(texts(b.sink), ['m1', 'm2', 'm3']);
    await waitFor(() => a.cluster.metrics().broker_in_flight === 0, 2_000, 'the publishes to settle');
    assert.equal(a.cluster.metrics().broker_in_flight_bytes, 0);

    a.cluster.publish('r', Opcode.TEXT, Buffer.from('m6'));
    await waitFor(() => b.sink.got.length === 4, 2_000, 'the next publish');
    assert.equal(a.cluster.metrics().broker_published, 4);
    const received = b.cluster.metrics();
    assert.equal(received.broker_gaps, 0, 'a dropped publish took no sequence number');
    assert.equal(received.broker_lost, 0);
  });

  test('publishes that fail while the broker is down give back their in-flight share and are counted as failed', async () => {
    const bus = new MemoryBus();
    const a = await memoryNode(bus, { nodeId: 'a', maxInFlight: 3 });
    const b = await memoryNode(bus, { nodeId: 'b' });
    b.cluster.roomActive('r');
    await nextTurn();
    a.cluster.publish('r', Opcode.TEXT, Buffer.from('before'));
    await waitFor(() => b.sink.got.length === 1, 2_000, 'the first message');
    bus.setAvailable(false);
    for (let i = 0; i < 3; i++) a.cluster.publish('r', Opcode.TEXT, Buffer.from('lost'));
    await waitFor(() => a.cluster.metrics().broker_publish_failed === 3, 2_000, 'the failures');
    let m = a.cluster.metrics();
    assert.equal(m.broker_in_flight, 0);
    assert.equal(m.broker_in_flight_bytes, 0);
    assert.equal(m.broker_publish_dropped, 0, 'the bound was never hit: a failure frees its place');
    bus.setAvailable(true);
    for (let i = 0; i < 3; i++) a.cluster.publish('r', Opcode.TEXT, Buffer.from(`after-${i}`));
    await waitFor(() => b.sink.got.length === 4, 2_000, 'the messages after the outage');
    m = a.cluster.metrics();
    assert.equal(m.broker_publish_dropped, 0);
    assert.equal(m.broker_lost, 3);
    // The failed publishes had taken sequence numbers: the receiver sees them missing too.
    assert.equal(b.cluster.metrics().broker_gaps, 3);
  });
});

describe('gaps: messages a broker lost after taking them, counted by the receiver', () => {
  test('two messages lost: the receiver counts two gaps and gets the others in order; the sender saw every publish succeed', async () => {
    const bus = new MemoryBus();
    const a = await lossyNode(bus, { nodeId: 'a' });
    const b = await memoryNode(bus, { nodeId: 'b' });
    b.cluster.roomActive('r');
    await nextTurn();
    a.transport.drop = dropNth('wshub:room:r', [4, 7]);
    for (let i = 1; i <= 10; i++) a.cluster.publish('r', Opcode.TEXT, Buffer.from(`m${i}`));
    await waitFor(() => a.cluster.metrics().broker_published === 10, 2_000, 'the publishes to settle');
    await waitFor(() => texts(b.sink).at(-1) === 'm10', 2_000, 'the last message');
    assert.deepEqual(texts(b.sink), ['m1', 'm2', 'm3', 'm5', 'm6', 'm8', 'm9', 'm10']);
    assert.equal(a.transport.lost, 2);
    const received = b.cluster.metrics();
    assert.equal(received.broker_received, 8);
    assert.equal(received.broker_gaps, 2);
    assert.equal(received.broker_lost, 2);
    const sent = a.cluster.metrics();
    assert.equal(sent.broker_publish_failed, 0);
    assert.equal(sent.broker_publish_dropped, 0);
    assert.equal(sent.broker_lost, 0, 'the sender cannot know');
  });

  test('sequences are per sender and per channel: interleaved senders and rooms make no false gap, and a loss counts where it happened', async () => {
    const bus = new MemoryBus();
    const a = await lossyNode(bus, { nodeId: 'a' });
    const c = await lossyNode(bus, { nodeId: 'c' });
    const b = await memoryNode(bus, { nodeId: 'b' });
    b.cluster.roomActive('r');
    b.cluster.roomActive('s');
    await nextTurn();
    const round = (n: number): void => {
      for (const room of ['r', 's', null]) {
        a.cluster.publish(room, Opcode.TEXT, Buffer.from(`a-${room}-${n}`));
        c.cluster.publish(room, Opcode.TEXT, Buffer.from(`c-${room}-${n}`));
      }
    };
    for (let n = 0; n < 5; n++) round(n);
    await waitFor(() => b.sink.got.length === 30, 2_000, 'the first five rounds');
    assert.equal(b.cluster.metrics().broker_gaps, 0);
    assert.equal(b.cluster.metrics().broker_sequences_in, 6, 'two senders × three channels');

    // A loses its first two publishes to room s, C its first to everyone.
    a.transport.drop = dropNth('wshub:room:s', [1, 2]);
    c.transport.drop = dropNth('wshub:all', [1]);
    for (let n = 5; n < 8; n++) round(n);
    await waitFor(() => b.sink.got.length === 30 + 18 - 3, 2_000, 'the rounds after the loss');
    await waitFor(() => texts(b.sink).includes('c-null-7'), 2_000, 'the last message');
    assert.equal(b.cluster.metrics().broker_gaps, 3);
    const got = texts(b.sink);
    for (const lost of ['a-s-5', 'a-s-6', 'c-null-5']) assert.ok(!got.includes(lost), lost);
    assert.equal(b.sink.got.filter((m) => m.room === null).length, 8 + 7);
  });

  test('a sender restarting without a goodbye numbers from 1 again: no gap, and later losses are counted again', async () => {
    const bus = new MemoryBus();
    const first = await lossyNode(bus, { nodeId: 'a' });
    const b = await memoryNode(bus, { nodeId: 'b' });
    b.cluster.roomActive('r');
    await nextTurn();
    for (let i = 1; i <= 5; i++) first.cluster.publish('r', Opcode.TEXT, Buffer.from(`m${i}`));
    await waitFor(() => b.sink.got.length === 5, 2_000, 'the first five');
    // A crash: the goodbye that would make B forget A's numbering never arrives.
    first.transport.drop = (channel) => channel === 'wshub:presence';
    await first.cluster.close();
    assert.equal(b.cluster.metrics().broker_sequences_in, 1, 'B still remembers A at 5');

    const again = await lossyNode(bus, { nodeId: 'a' });
    again.cluster.publish('r', Opcode.TEXT, Buffer.from('restarted'));
    await waitFor(() => b.sink.got.length === 6, 2_000, 'the first message after the restart');
    assert.equal(b.cluster.metrics().broker_gaps, 0, 'sequence 1 after 5 is a restart, not 2³² − 5 losses');

    again.transport.drop = dropNth('wshub:room:r', [1]);
    again.cluster.publish('r', Opcode.TEXT, Buffer.from('lost'));
    again.cluster.publish('r', Opcode.TEXT, Buffer.from('kept'));
    await waitFor(() => texts(b.sink).at(-1) === 'kept', 2_000, 'the message after the loss');
    assert.equal(b.cluster.metrics().broker_gaps, 1);
  });
});
