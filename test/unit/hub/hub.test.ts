// Hub semantics: join checks and their order, membership,
// queries, metrics, broadcast results, encode-once, stop and shutdown.
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection, SendStatus, defaultConnectionOptions } from '../../../src/connection/connection.ts';
import { ConfigError } from '../../../src/errors.ts';
import { Hub, isRejected, type BroadcastResult, type HubOptions } from '../../../src/hub/hub.ts';
import { Opcode, type DataOpcode } from '../../../src/protocol/frame.ts';
import { assertNoLeaks } from '../../helpers/leaks.ts';
import { FakeConn, fakes } from './fake-conn.ts';

function hub(options: Partial<HubOptions> = {}): Hub<FakeConn> {
  return new Hub<FakeConn>(options);
}

function result(partial: Partial<BroadcastResult>): BroadcastResult {
  return { attempted: 0, enqueued: 0, skipped: 0, dropped: 0, invalid: false, stopped: false, ...partial };
}

describe('tryJoin: order of checks', () => {
  test('stopped comes first (before an invalid room and a missing connection)', async () => {
    const h = hub();
    await h.stop();
    assert.deepEqual(h.tryJoin('bad room', null as unknown as FakeConn), { ok: false, reason: 'stopped' });
    assert.deepEqual(h.tryJoin('ok', new FakeConn()), { ok: false, reason: 'stopped' });
  });

  test('an invalid room comes before a missing connection', () => {
    const h = hub();
    assert.deepEqual(h.tryJoin('bad room', null as unknown as FakeConn), {
      ok: false,
      reason: 'invalid_room',
    });
    assert.deepEqual(h.tryJoin('x'.repeat(129), new FakeConn()), {
      ok: false,
      reason: 'invalid_room',
    });
    assert.deepEqual(h.tryJoin('', new FakeConn()), { ok: false, reason: 'invalid_room' });
    assert.deepEqual(h.tryJoin('ok', null as unknown as FakeConn), {
      ok: false,
      reason: 'invalid_connection',
    });
    assert.deepEqual(h.tryJoin('ok', undefined as unknown as FakeConn), {
      ok: false,
      reason: 'invalid_connection',
    });
  });

  test('already a member: succeeds and bypasses every limit', () => {
    const h = hub({ maxRoomConnections: 1, maxRoomRegistrations: 1, maxConnectionRate: 0.5 });
    const [a, b] = fakes(2);
    assert.deepEqual(h.tryJoin('r', a!), { ok: true, alreadyMember: false });
    // The room and the hub are full and the bucket (burst 1) is empty.
    assert.equal(h.tryJoin('r', b!).ok, false);
    for (let i = 0; i < 3; i++) assert.deepEqual(h.tryJoin('r', a!), { ok: true, alreadyMember: true });
    assert.equal(h.getRoomCount('r'), 1);
    assert.equal(h.getRoomRegistrationCount(), 1);
  });

  test('rate limit: hub-wide, burst of 2 × rate, refills over time', async () => {
    const h = hub({ maxConnectionRate: 5 });
    const conns = fakes(12);
    const outcomes = conns.map((c, i) => h.tryJoin(`room-${i % 3}`, c));
    assert.equal(outcomes.filter((o) => o.ok).length, 10, 'burst of 10 across rooms');
    assert.deepEqual(outcomes[10], { ok: false, reason: 'rate_limited' });
    await sleep(450); // 5/s → at least 2 tokens back
    assert.equal(h.tryJoin('room-0', conns[10]!).ok, true);
    assert.equal(h.tryJoin('room-0', conns[11]!).ok, true);
  });

  test('rate limit comes before hub full, hub full before room full', () => {
    const rate = hub({ maxConnectionRate: 1, maxRoomRegistrations: 2 });
    const [a, b, c] = fakes(3);
    rate.tryJoin('x', a!);
    rate.tryJoin('y', b!);
    assert.deepEqual(rate.tryJoin('z', c!), { ok: false, reason: 'rate_limited' });

    const full = hub({ maxRoomRegistrations: 1, maxRoomConnections: 1 });
    const [d, e] = fakes(2);
    full.tryJoin('same', d!);
    assert.deepEqual(full.tryJoin('same', e!), { ok: false, reason: 'hub_full' });
  });

  test('room full applies per room', () => {
    const h = hub({ maxRoomConnections: 2 });
    const [a, b, c] = fakes(3);
    assert.equal(h.tryJoin('r', a!).ok, true);
    assert.equal(h.tryJoin('r', b!).ok, true);
    assert.deepEqual(h.tryJoin('r', c!), { ok: false, reason: 'room_full' });
    assert.equal(h.tryJoin('other', c!).ok, true);
  });

  test('hub full counts registrations, so one connection in many rooms uses several', () => {
    const h = hub({ maxRoomRegistrations: 3 });
    const [a, b] = fakes(2);
    for (const room of ['r1', 'r2', 'r3']) assert.equal(h.tryJoin(room, a!).ok, true);
    assert.deepEqual(h.tryJoin('r4', b!), { ok: false, reason: 'hub_full' });
    assert.equal(h.getActiveConnectionCount(), 1);
    assert.equal(h.getRoomRegistrationCount(), 3);
  });

  test('checkJoin predicts without changing anything', () => {
    const h = hub({ maxRoomConnections: 1, maxConnectionRate: 1 });
    for (let i = 0; i < 5; i++) assert.equal(h.checkJoin('r').ok, true, 'checkJoin consumes no rate tokens');
    h.tryJoin('r', new FakeConn());
    assert.deepEqual(h.checkJoin('r'), { ok: false, reason: 'room_full' });
    assert.deepEqual(h.checkJoin('bad room'), { ok: false, reason: 'invalid_room' });
    assert.equal(h.metrics().accepted_total, 1);
    assert.equal(h.metrics().rejected_total, 0);
  });

  test('a custom roomValidator replaces the default policy', () => {
    const h = hub({ roomValidator: (room) => room.startsWith('team/') });
    assert.equal(h.tryJoin('team/blue', new FakeConn()).ok, true);
    assert.deepEqual(h.tryJoin('lobby', new FakeConn()), { ok: false, reason: 'invalid_room' });
    assert.equal(h.tryBroadcastRoom('lobby', Opcode.TEXT, 'x').invalid, true);
  });

  test('constructor refuses negative and non-finite options', () => {
    for (const key of [
      'workerCount',
      'jobQueueSize',
      'maxRoomConnections',
      'sendTimeout',
      'closeTimeout',
    ] as const) {
      assert.throws(() => hub({ [key]: -1 }), ConfigError, key);
      assert.throws(() => hub({ [key]: Number.NaN }), ConfigError, key);
    }
    assert.throws(() => hub({ workerCount: 0 }), ConfigError);
  });
});

describe('membership and queries', () => {
  test('leave, removeConn and the queries', () => {
    const h = hub();
    const [a, b, c] = fakes(3);
    h.tryJoin('r1', a!);
    h.tryJoin('r2', a!);
    h.tryJoin('r1', b!);
    h.tryJoin('r3', c!);
    assert.equal(a!.room, 'r1', 'the first room is the connection’s room');
    assert.deepEqual(h.getRooms().sort(), ['r1', 'r2', 'r3']);
    assert.equal(h.getRoomCount('r1'), 2);
    assert.equal(h.getRoomCount('missing'), 0);
    assert.equal(h.getRoomRegistrationCount(), 4);
    assert.equal(h.getActiveConnectionCount(), 3);
    assert.deepEqual(h.roomsOf(a!).sort(), ['r1', 'r2']);

    assert.equal(h.leave('r1', a!), true);
    assert.equal(h.leave('r1', a!), false, 'leaving twice');
    assert.equal(h.leave('nowhere', a!), false);
    assert.equal(a!.room, 'r2', 'room follows the remaining membership');
    assert.equal(h.getRoomRegistrationCount(), 3);

    assert.equal(h.leave('r3', c!), true);
    assert.deepEqual(h.getRooms().sort(), ['r1', 'r2'], 'an empty room disappears');
    assert.equal(c!.room, undefined);

    h.removeConn(a!);
    h.removeConn(a!);
    assert.deepEqual(h.getRooms(), ['r1']);
    assert.equal(h.getActiveConnectionCount(), 1);
    assert.equal(h.getRoomRegistrationCount(), 1);
    const m = h.metrics();
    assert.equal(m.active_connections, 1);
    assert.equal(m.room_registrations, 1);
    assert.equal(m.rooms, 1);
  });

  test('rangeConns iterates a snapshot: the callback may join and leave', () => {
    const h = hub();
    const members = fakes(4);
    for (const c of members) h.tryJoin('r', c);
    const visited: FakeConn[] = [];
    h.rangeConns('r', (conn) => {
      visited.push(conn);
      h.leave('r', conn);
      h.tryJoin('r', new FakeConn());
    });
    assert.deepEqual(
      visited,
      members.map((c) => c),
    );
    assert.equal(h.getRoomCount('r'), 4, 'the newcomers stayed; the originals left');
    let calls = 0;
    h.rangeConns('missing', () => calls++);
    assert.equal(calls, 0);
  });
});

describe('broadcast results', () => {
  test('queued, full and closed recipients are counted apart', () => {
    const h = hub();
    const [ok, full, closed] = fakes(3);
    full!.status = SendStatus.FULL;
    closed!.finish();
    for (const c of [ok, full, closed]) h.tryJoin('r', c!);
    const r = h.tryBroadcastRoom('r', Opcode.TEXT, 'hello');
    assert.deepEqual(r, result({ attempted: 3, enqueued: 1, dropped: 1, skipped: 1 }));
    assert.equal(isRejected(r), false);
    const m = h.metrics();
    assert.deepEqual(
      [m.broadcast_attempted, m.broadcast_enqueued, m.broadcast_dropped, m.broadcast_skipped],
      [3, 1, 1, 1],
    );
  });

  test('invalid room or opcode, stopped hub, empty room', async () => {
    const h = hub();
    h.tryJoin('r', new FakeConn());
    assert.deepEqual(h.tryBroadcastRoom('bad room', Opcode.TEXT, 'x'), result({ invalid: true }));
    for (const opcode of [Opcode.PING, Opcode.CLOSE, Opcode.CONTINUATION, 3]) {
      assert.deepEqual(h.tryBroadcastRoom('r', opcode as DataOpcode, 'x'), result({ invalid: true }));
      assert.deepEqual(h.tryBroadcastAll(opcode as DataOpcode, 'x'), result({ invalid: true }));
    }
    const empty = h.tryBroadcastRoom('nobody-here', Opcode.TEXT, 'x');
    assert.deepEqual(empty, result({}));
    assert.equal(isRejected(empty), false, 'no recipients is not a rejection');
    await h.stop();
    assert.deepEqual(h.tryBroadcastRoom('r', Opcode.TEXT, 'x'), result({ stopped: true }));
    assert.deepEqual(h.tryBroadcastAll(Opcode.BINARY, Buffer.from('x')), result({ stopped: true }));
    assert.equal(h.metrics().broadcast_attempted, 0);
  });

  test('isRejected: invalid, stopped, or nobody took it although someone was there', () => {
    assert.equal(isRejected(result({ invalid: true })), true);
    assert.equal(isRejected(result({ stopped: true })), true);
    assert.equal(isRejected(result({ attempted: 2, dropped: 2 })), true);
    assert.equal(isRejected(result({ attempted: 2, skipped: 2 })), true);
    assert.equal(isRejected(result({ attempted: 2, enqueued: 1, dropped: 1 })), false);
    assert.equal(isRejected(result({})), false);
    const h = hub();
    const [a] = fakes(1);
    a!.status = SendStatus.FULL;
    h.tryJoin('r', a!);
    assert.equal(isRejected(h.tryBroadcastRoom('r', Opcode.TEXT, 'x')), true);
  });

  test('broadcastAll reaches a connection in several rooms once', () => {
    const h = hub();
    const [a, b, c] = fakes(3);
    for (const room of ['r1', 'r2', 'r3']) h.tryJoin(room, a!);
    h.tryJoin('r1', b!);
    h.tryJoin('r2', c!);
    const r = h.tryBroadcastAll(Opcode.TEXT, 'all');
    assert.deepEqual(r, result({ attempted: 3, enqueued: 3 }));
    assert.deepEqual(
      [a, b, c].map((x) => x!.frames.length),
      [1, 1, 1],
    );
    h.broadcastAll(Opcode.TEXT, 'again');
    assert.equal(a!.frames.length, 2);
  });

  test('a broadcast encodes once: every recipient gets the identical Buffer', async () => {
    const h = hub();
    const conns = fakes(5);
    for (const c of conns) h.tryJoin('r', c);
    h.broadcastRoom('r', Opcode.TEXT, 'shared');
    // Room broadcasts are written at the end of the event-loop turn.
    assert.equal(conns[0]!.frames.length, 0);
    await new Promise((resolve) => setImmediate(resolve));
    const first = conns[0]!.frames[0]!;
    for (const c of conns) assert.equal(c.frames[0], first, 'same Buffer instance');
    // It is a complete unmasked text frame carrying the payload.
    assert.equal(first[0], 0x81);
    assert.equal(first[1], 6);
    assert.equal(first.subarray(2).toString(), 'shared');
    h.broadcastAll(Opcode.BINARY, Buffer.from([1, 2]));
    const second = conns[0]!.frames[1]!;
    assert.notEqual(second, first);
    for (const c of conns) assert.equal(c.frames[1], second);
    assert.equal(second[0], 0x82);
  });

  test('the payload is not shared with the caller after the call', async () => {
    const h = hub();
    const [a] = fakes(1);
    h.tryJoin('r', a!);
    const data = Buffer.from('abc');
    h.broadcastRoom('r', Opcode.BINARY, data);
    data.fill(0x7a);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(a!.frames[0]!.subarray(2).toString(), 'abc');
  });
});

describe('broadcast under "block"', () => {
  test('a blocked recipient is waited for; success stays enqueued, a timeout becomes dropped', async () => {
    const h = hub({ sendTimeout: 123 });
    const [slow, fast] = [new FakeConn('block'), new FakeConn('block')];
    slow.status = SendStatus.FULL;
    h.tryJoin('r', slow);
    h.tryJoin('r', fast);
    const r1 = h.tryBroadcastRoom('r', Opcode.TEXT, 'one');
    assert.deepEqual(r1, result({ attempted: 2, enqueued: 2 }));
    assert.equal(slow.waits.length, 1);
    assert.equal(slow.waits[0]!.timeout, 123, 'waits up to sendTimeout');
    assert.equal(slow.waits[0]!.frame, fast.frames[0], 'the waiting copy is the same frame');
    assert.equal(h.metrics().broadcast_jobs_waiting, 1);
    slow.waits[0]!.resolve();
    await sleep(0);
    assert.equal(h.metrics().broadcast_jobs_waiting, 0);
    assert.equal(h.metrics().broadcast_dropped, 0);

    h.tryBroadcastRoom('r', Opcode.TEXT, 'two');
    slow.waits[1]!.reject(new Error('timed out'));
    await sleep(0);
    const m = h.metrics();
    assert.equal(m.broadcast_dropped, 1);
    assert.equal(m.broadcast_enqueued, 3, '2 + 2 enqueued, minus the one that timed out');
    assert.equal(m.broadcast_jobs_waiting, 0);
  });

  test('when the job queue is full, a blocked recipient is dropped at once', () => {
    const h = hub({ workerCount: 1, jobQueueSize: 1 });
    const [slow] = [new FakeConn('block')];
    slow.status = SendStatus.FULL;
    h.tryJoin('r', slow);
    assert.equal(h.tryBroadcastRoom('r', Opcode.TEXT, '1').enqueued, 1);
    assert.equal(h.tryBroadcastRoom('r', Opcode.TEXT, '2').enqueued, 1);
    const third = h.tryBroadcastRoom('r', Opcode.TEXT, '3');
    assert.deepEqual(third, result({ attempted: 1, dropped: 1 }));
    assert.equal(isRejected(third), true);
    assert.equal(h.metrics().broadcast_jobs_waiting, 2);
    for (const w of slow.waits) w.resolve();
  });

  test('stop() drains waiting jobs within a bound, then empties the rooms', async () => {
    const h = hub({ sendTimeout: 100 });
    const slow = new FakeConn('block');
    slow.status = SendStatus.FULL;
    h.tryJoin('r', slow);
    h.tryBroadcastRoom('r', Opcode.TEXT, 'x');
    const started = performance.now();
    const stopping = h.stop();
    assert.equal(h.isStopped, true, 'stopped at once');
    assert.deepEqual(h.tryJoin('r', new FakeConn()), { ok: false, reason: 'stopped' });
    setTimeout(() => slow.waits[0]!.resolve(), 30);
    await stopping;
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 25 && elapsed < 150, `stop took ${elapsed} ms`);
    assert.equal(h.getActiveConnectionCount(), 0);
    assert.deepEqual(h.getRooms(), []);
    assert.equal(slow.closeCodes.length, 0, 'stop does not close connections');
    await Promise.all([h.stop(), h.stop()]);
  });

  test('stop() does not wait forever for a job that never settles', async () => {
    const h = hub({ sendTimeout: 50 });
    const slow = new FakeConn('block');
    slow.status = SendStatus.FULL;
    h.tryJoin('r', slow);
    h.tryBroadcastRoom('r', Opcode.TEXT, 'x');
    const started = performance.now();
    await h.stop();
    assert.ok(performance.now() - started < 500);
  });
});

describe('shutdown', () => {
  test('closes every connection with 1001, once, and is shared by concurrent calls', async () => {
    const h = hub();
    const conns = fakes(3);
    h.tryJoin('a', conns[0]!);
    h.tryJoin('a', conns[1]!);
    h.tryJoin('b', conns[1]!);
    h.tryJoin('b', conns[2]!);
    const p1 = h.shutdown({ timeout: 1_000 });
    const p2 = h.shutdown({ timeout: 1_000 });
    assert.equal(p1, p2, 'the same shutdown');
    await p1;
    for (const c of conns) {
      assert.deepEqual(c.closeCodes, [1001]);
      assert.equal(c.terminated, false);
    }
    assert.equal(h.getActiveConnectionCount(), 0);
    assert.equal(h.isStopped, true);
  });

  test('terminates connections that do not finish closing within the timeout', async () => {
    const h = hub();
    const [deaf, polite] = fakes(2);
    deaf!.answersClose = false;
    h.tryJoin('r', deaf!);
    h.tryJoin('r', polite!);
    const started = performance.now();
    await h.shutdown({ timeout: 150 });
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 140 && elapsed < 600, `took ${elapsed} ms`);
    assert.equal(deaf!.terminated, true);
    assert.equal(polite!.terminated, false);
  });

  test('an aborted signal ends the wait early', async () => {
    const h = hub();
    const [deaf] = fakes(1);
    deaf!.answersClose = false;
    h.tryJoin('r', deaf!);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const started = performance.now();
    await h.shutdown({ timeout: 10_000, signal: controller.signal });
    assert.ok(performance.now() - started < 500);
    assert.equal(deaf!.terminated, true);
  });
});

describe('with real connections', () => {
  test('encode once over sockets, closed connections skipped, payload intact at the clients', async () => {
    const serverSockets: Socket[] = [];
    const server = createServer((socket) => serverSockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const clients = await Promise.all(
      Array.from(
        { length: 3 },
        () =>
          new Promise<Socket>((resolve) => {
            const s = connect(port, '127.0.0.1', () => resolve(s));
          }),
      ),
    );
    while (serverSockets.length < 3) await sleep(5);
    const h = new Hub();
    const options = { ...defaultConnectionOptions(), pingPeriod: 0, closeTimeout: 200 };
    const conns = serverSockets.map((s) => new Connection(s, options, {}));
    const seen: Buffer[][] = conns.map(() => []);
    conns.forEach((conn, i) => {
      const original = conn.sendFrame.bind(conn);
      conn.sendFrame = (frame: Buffer) => {
        seen[i]!.push(frame);
        return original(frame);
      };
      h.tryJoin('r', conn);
    });
    const received = clients.map((c) => {
      const chunks: Buffer[] = [];
      c.on('data', (d: Buffer) => chunks.push(d));
      return chunks;
    });
    try {
      const r = h.tryBroadcastRoom('r', Opcode.TEXT, 'over the wire');
      assert.deepEqual(r, result({ attempted: 3, enqueued: 3 }));
      assert.ok(seen[0]![0] === seen[1]![0] && seen[1]![0] === seen[2]![0], 'one Buffer for all');
      const expected = Buffer.concat([Buffer.from([0x81, 13]), Buffer.from('over the wire')]);
      for (let i = 0; i < 3; i++) {
        while (Buffer.concat(received[i]!).length < expected.length) await sleep(5);
        assert.deepEqual(Buffer.concat(received[i]!), expected);
      }
      // A connection whose socket is gone is skipped, not dropped.
      clients[0]!.destroy();
      await conns[0]!.closed();
      const after = h.tryBroadcastRoom('r', Opcode.TEXT, 'again');
      assert.deepEqual(after, result({ attempted: 3, enqueued: 2, skipped: 1 }));
    } finally {
      for (const c of clients) c.destroy();
      await Promise.all(conns.map((c) => c.closed()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await assertNoLeaks();
  });
});

describe('room broadcast batching', () => {
  test('messages broadcast to a room in one turn reach each member as one Buffer, in order', async () => {
    const h = new Hub<FakeConn>();
    const conns = fakes(3);
    for (const c of conns) h.tryJoin('r', c);
    for (let i = 0; i < 5; i++) h.broadcastRoom('r', Opcode.TEXT, `m${i}`);
    await new Promise((resolve) => setImmediate(resolve));
    for (const c of conns) {
      assert.equal(c.frames.length, 1, 'one write per member');
      assert.equal(c.frames[0], conns[0]!.frames[0], 'the same Buffer for every member');
    }
    const texts: string[] = [];
    const batch = conns[0]!.frames[0]!;
    for (let pos = 0; pos < batch.length; pos += 2 + batch[pos + 1]!) {
      texts.push(batch.subarray(pos + 2, pos + 2 + batch[pos + 1]!).toString());
    }
    assert.deepEqual(texts, ['m0', 'm1', 'm2', 'm3', 'm4']);
    assert.equal(h.metrics().broadcast_enqueued, 15, 'counted per message and member');
  });

  test('a result-returning broadcast writes pending batches first, keeping order', async () => {
    const h = new Hub<FakeConn>();
    const [a] = fakes(1);
    h.tryJoin('r', a!);
    h.broadcastRoom('r', Opcode.TEXT, 'first');
    h.tryBroadcastRoom('r', Opcode.TEXT, 'second');
    assert.equal(a!.frames.length, 2);
    assert.equal(a!.frames[0]!.subarray(2).toString(), 'first');
    assert.equal(a!.frames[1]!.subarray(2).toString(), 'second');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(a!.frames.length, 2, 'nothing written twice');
  });
});

describe('a direct send or close never overtakes a broadcast of the same turn', () => {
  test('the hub links each member to its batches on join and unlinks it on removal', async () => {
    const h = new Hub<FakeConn>();
    const [a] = fakes(1);
    h.tryJoin('r', a!);
    assert.ok(a!.beforeDirectWrite !== null, 'linked on join');
    h.broadcastRoom('r', Opcode.TEXT, 'batched');
    assert.equal(a!.frames.length, 0);
    a!.beforeDirectWrite();
    assert.equal(a!.frames.length, 1, 'the link writes the pending batch now');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(a!.frames.length, 1, 'nothing written twice');
    h.removeConn(a!);
    assert.equal(a!.beforeDirectWrite, null, 'unlinked on removal');
  });

  test('over a socket: broadcast, direct send and close arrive in the order issued', async () => {
    let serverSocket: Socket | undefined;
    const server = createServer((socket) => (serverSocket = socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const client = await new Promise<Socket>((resolve) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
    });
    const received: Buffer[] = [];
    client.on('data', (d: Buffer) => received.push(d));
    while (serverSocket === undefined) await sleep(5);
    const h = new Hub();
    const options = { ...defaultConnectionOptions(), pingPeriod: 0, closeTimeout: 100 };
    const conn = new Connection(serverSocket, options, {});
    h.tryJoin('r', conn);
    h.broadcastRoom('r', Opcode.TEXT, 'one');
    void conn.sendText('two');
    h.broadcastRoom('r', Opcode.TEXT, 'three');
    conn.close(1000, 'bye');
    const expected = Buffer.concat([
      Buffer.from([0x81, 3]),
      Buffer.from('one'),
      Buffer.from([0x81, 3]),
      Buffer.from('two'),
      Buffer.from([0x81, 5]),
      Buffer.from('three'),
      Buffer.from([0x88, 5, 0x03, 0xe8]),
      Buffer.from('bye'),
    ]);
    const deadline = performance.now() + 2_000;
    while (Buffer.concat(received).length < expected.length && performance.now() < deadline) await sleep(5);
    assert.deepEqual(Buffer.concat(received), expected);
    client.destroy();
    await conn.closed();
    h.removeConn(conn);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await assertNoLeaks();
  });
});
