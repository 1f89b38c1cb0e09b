// The hub's side of "rooms and channels are one space": registrations that
// are not members (channel subscriptions) count in room counts and limits,
// skip the join rate, and the room sink sees every broadcast of a room.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WshubError } from '../../../src/errors.ts';
import { Hub, type RoomSink } from '../../../src/hub/hub.ts';
import { Opcode, type DataOpcode } from '../../../src/protocol/frame.ts';
import { FakeConn } from './fake-conn.ts';

describe('Hub.register', () => {
  test('counts with members in room counts, rooms and registrations; unregister undoes it', () => {
    const h = new Hub<FakeConn>();
    assert.deepEqual(h.register('chat'), { ok: true, alreadyMember: false });
    assert.equal(h.tryJoin('chat', new FakeConn()).ok, true);
    assert.equal(h.getRoomCount('chat'), 2);
    assert.equal(h.getRoomRegistrationCount(), 2);
    assert.deepEqual(h.getRooms(), ['chat']);
    h.unregister('chat');
    assert.equal(h.getRoomCount('chat'), 1);
    assert.equal(h.getRoomRegistrationCount(), 1);
    h.unregister('nowhere'); // nothing to undo: no change
    assert.equal(h.getRoomRegistrationCount(), 1);
  });

  test('maxRoomConnections and maxRoomRegistrations bound members and registrations together', () => {
    const h = new Hub<FakeConn>({ maxRoomConnections: 2, maxRoomRegistrations: 3 });
    assert.equal(h.register('a').ok, true);
    assert.equal(h.tryJoin('a', new FakeConn()).ok, true);
    assert.deepEqual(h.register('a'), { ok: false, reason: 'room_full' });
    assert.deepEqual(h.tryJoin('a', new FakeConn()), { ok: false, reason: 'room_full' });
    assert.equal(h.register('b').ok, true);
    assert.deepEqual(h.register('c'), { ok: false, reason: 'hub_full' });
  });

  test('is not a join: the join rate does not apply; an invalid room or a stopped hub is refused', async () => {
    const h = new Hub<FakeConn>({ maxConnectionRate: 1 });
    for (let i = 0; i < 10; i++) assert.equal(h.register(`r${i}`).ok, true);
    assert.deepEqual(h.register('bad room'), { ok: false, reason: 'invalid_room' });
    await h.stop();
    assert.deepEqual(h.register('r0'), { ok: false, reason: 'stopped' });
  });
});

describe('room sink', () => {
  test('sees every broadcast of a room with its publication, whether or not it has members', () => {
    const h = new Hub<FakeConn>();
    const seen: Array<[string, DataOpcode, string, unknown]> = [];
    const sink: RoomSink = {
      roomMessage: (room, opcode, data, publication) =>
        seen.push([room, opcode, data.toString(), publication]),
    };
    h.setRoomSink(sink);
    const meta = { from: 'channels' };
    h.broadcastRoom('empty', Opcode.TEXT, 'a', meta);
    h.tryBroadcastRoom('empty', Opcode.BINARY, Buffer.from('b'));
    h.broadcastRoom('bad room', Opcode.TEXT, 'c');
    assert.deepEqual(seen, [
      ['empty', Opcode.TEXT, 'a', meta],
      ['empty', Opcode.BINARY, 'b', undefined],
    ]);
  });

  test('one per hub: a second sink is refused with a coded error; null frees the place', () => {
    const h = new Hub<FakeConn>();
    const sink: RoomSink = { roomMessage: () => {} };
    h.setRoomSink(sink);
    h.setRoomSink(sink);
    assert.throws(
      () => h.setRoomSink({ roomMessage: () => {} }),
      (e: unknown) => e instanceof WshubError && e.code === 'ROOM_SINK_TAKEN',
    );
    h.setRoomSink(null);
    h.setRoomSink({ roomMessage: () => {} });
  });
});
