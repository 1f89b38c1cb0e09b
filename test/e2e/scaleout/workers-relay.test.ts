// The built-in inter-process transport without processes: IpcRelay routing
// with fake workers (subscriptions, never back to the sender, order, bounded
// pending deliveries) and IpcTransport over fake IPC endpoints wired
// through a relay, including two Clusters exchanging a room broadcast.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { Cluster } from '../../../src/broker/cluster.ts';
import { IpcRelay, IpcTransport, type IpcDelivery, type RelayPeer } from '../../../src/broker/ipc.ts';
import { Opcode, type DataOpcode } from '../../../src/protocol/frame.ts';

/** A worker as the relay sees it, recording what it is sent. */
class FakePeer implements RelayPeer {
  readonly received: IpcDelivery[] = [];
  constructor(
    readonly id: number,
    private readonly complete = true,
  ) {}
  send(message: IpcDelivery, done: (error: Error | null) => void): void {
    this.received.push(message);
    if (this.complete) done(null);
  }
  texts(): string[] {
    return this.received.map((m) => `${m.channel}=${Buffer.from(m.payload, 'base64').toString()}`);
  }
}

const pub = (channel: string, text: string) => ({
  wshub: 'pub',
  channel,
  payload: Buffer.from(text).toString('base64'),
});

describe('IpcRelay', () => {
  test('forwards each publish to the other subscribed workers only, in order', () => {
    const relay = new IpcRelay();
    const [w1, w2, w3] = [new FakePeer(1), new FakePeer(2), new FakePeer(3)];
    assert.equal(relay.handle(w1, { wshub: 'sub', channels: ['a', 'b'] }), true);
    relay.handle(w2, { wshub: 'sub', channels: ['a'] });
    relay.handle(w3, { wshub: 'sub', channels: ['b'] });
    assert.deepEqual(relay.channelsOf(1), ['a', 'b']);

    for (let i = 0; i < 5; i++) relay.handle(w1, pub('a', `x${i}`));
    relay.handle(w2, pub('a', 'from2'));
    relay.handle(w3, pub('c', 'nobody'));
    assert.deepEqual(w1.texts(), ['a=from2'], 'never back to the sender');
    assert.deepEqual(w2.texts(), ['a=x0', 'a=x1', 'a=x2', 'a=x3', 'a=x4'], 'in publish order');
    assert.deepEqual(w3.texts(), [], 'not subscribed to a');

    relay.handle(w2, { wshub: 'unsub', channels: ['a'] });
    relay.handle(w1, pub('a', 'after-unsub'));
    assert.equal(w2.received.length, 5);
    relay.remove(w3);
    relay.handle(w1, pub('b', 'after-remove'));
    assert.deepEqual(w3.texts(), []);
    assert.deepEqual(relay.metrics(), { published: 9, delivered: 6, dropped: 0 });
  });

  test('ignores foreign messages and malformed transport messages', () => {
    const relay = new IpcRelay();
    const w1 = new FakePeer(1);
    const w2 = new FakePeer(2);
    relay.handle(w2, { wshub: 'sub', channels: ['a', 7] });
    assert.equal(relay.handle(w1, { wshub: 'listening', port: 1 }), false);
    assert.equal(relay.handle(w1, 'text'), false);
    assert.equal(relay.handle(w1, null), false);
    assert.equal(relay.handle(w1, { wshub: 'pub', channel: 'a', payload: 5 }), true);
    assert.deepEqual(relay.channelsOf(2), ['a']);
    assert.equal(w2.received.length, 0);
  });

  test('bounds deliveries waiting to be written per worker and counts drops', () => {
    const relay = new IpcRelay({ maxPending: 2 });
    const stuck = new FakePeer(1, false);
    const fine = new FakePeer(2);
    relay.handle(stuck, { wshub: 'sub', channels: ['a'] });
    relay.handle(fine, { wshub: 'sub', channels: ['a'] });
    const sender = new FakePeer(3);
    for (let i = 0; i < 4; i++) relay.handle(sender, pub('a', `m${i}`));
    assert.equal(stuck.received.length, 2);
    assert.equal(fine.received.length, 4, 'a slow worker does not hold back the others');
    assert.deepEqual(relay.metrics(), { published: 4, delivered: 6, dropped: 2 });
  });
});

/** A worker's end of the IPC channel, delivering through a relay. */
class FakeEndpoint extends EventEmitter {
  connected = true;
  readonly peer: RelayPeer;
  constructor(
    readonly id: number,
    private readonly relay: IpcRelay,
  ) {
    super();
    this.peer = {
      id,
      send: (message, done) => {
        setImmediate(() => {
          this.emit('message', structuredClone(message));
          done(null);
        });
      },
    };
  }
  send(message: unknown, _handle?: undefined, _options?: undefined, done?: (error: Error | null) => void) {
    if (!this.connected) throw new Error('channel closed');
    // A copy, as the real channel serialises.
    const copy: unknown = structuredClone(message);
    setImmediate(() => {
      this.relay.handle(this.peer, copy);
      done?.(null);
    });
    return true;
  }
}

describe('IpcTransport', () => {
  test('rejects start outside a forked worker', async () => {
    const endpoint = new EventEmitter();
    await assert.rejects(
      new IpcTransport(endpoint).start(() => {}, {}),
      /no IPC channel/,
    );
  });

  test('carries bytes between workers through the relay; down when the channel closes', async () => {
    const relay = new IpcRelay();
    const e1 = new FakeEndpoint(1, relay);
    const e2 = new FakeEndpoint(2, relay);
    const t1 = new IpcTransport(e1);
    const t2 = new IpcTransport(e2);
    const got1: string[] = [];
    const got2: string[] = [];
    let downs = 0;
    await t1.start((channel, payload) => got1.push(`${channel}=${payload.toString('hex')}`), {});
    await t2.start((channel, payload) => got2.push(`${channel}=${payload.toString('hex')}`), {
      down: () => downs++,
    });
    assert.equal(t1.connected, true);
    await t1.subscribe(['c']);
    await t2.subscribe(['c']);
    const bytes = Buffer.from([0, 255, 1, 128]);
    await t1.publish('c', bytes);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(got2, ['c=00ff0180']);
    assert.deepEqual(got1, [], 'no echo to the publisher');

    e2.connected = false;
    e2.emit('disconnect');
    assert.equal(downs, 1);
    assert.equal(t2.connected, false);
    await assert.rejects(t2.publish('c', bytes), /closed/);
    await t1.close();
    await t2.close();
    assert.equal(e1.listenerCount('message'), 0, 'close removes its listeners');
  });

  test('two Clusters over IPC transports deliver a room broadcast exactly once', async () => {
    const relay = new IpcRelay();
    const delivered: Array<{ node: string; room: string | null; text: string }> = [];
    const make = (id: number) => {
      const cluster = new Cluster({
        transport: new IpcTransport(new FakeEndpoint(id, relay)),
        nodeId: `n${id}`,
        presenceInterval: 50,
      });
      const delivery = {
        deliver: (room: string | null, _opcode: DataOpcode, data: Buffer) =>
          delivered.push({ node: cluster.nodeId, room, text: data.toString() }),
        localCounts: () => new Map([['r', 1]]),
      };
      return { cluster, delivery };
    };
    const a = make(1);
    const b = make(2);
    await a.cluster.start(a.delivery);
    await b.cluster.start(b.delivery);
    a.cluster.roomActive('r');
    b.cluster.roomActive('r');
    const deadline = Date.now() + 2_000;
    while (relay.channelsOf(2).length < 3 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(relay.channelsOf(2), ['wshub:all', 'wshub:presence', 'wshub:room:r']);
    a.cluster.publish('r', Opcode.TEXT, Buffer.from('hello'));
    while (delivered.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    while (b.cluster.remoteRoomCount('r') < 1 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(delivered, [{ node: 'n2', room: 'r', text: 'hello' }]);
    assert.equal(b.cluster.remoteRoomCount('r'), 1, 'presence crossed the relay');
    await a.cluster.close();
    await b.cluster.close();
  });
});
