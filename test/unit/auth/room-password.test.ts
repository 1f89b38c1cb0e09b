import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import {
  DEFAULT_PBKDF2_ITERATIONS,
  InvalidRoomPasswordError,
  MAX_ROOM_PASSWORD_BYTES,
  RoomPasswords,
  type RoomAuthContext,
} from '../../../src/auth/index.ts';

// Few iterations keep the suite fast; one test below uses the real default.
const fast = (): RoomPasswords => new RoomPasswords({ iterations: 1000 });

function ctx(room: string, password: string | undefined): RoomAuthContext {
  return { request: {} as IncomingMessage, room, password, user: undefined, claims: undefined };
}

describe('RoomPasswords', () => {
  test('rooms without a password are open, with or without a password given', async () => {
    const rp = fast();
    assert.equal(rp.hasRoomPassword('lobby'), false);
    assert.equal(await rp.verify('lobby', undefined), true);
    assert.equal(await rp.verify('lobby', 'anything'), true);
    assert.equal(await rp.authorize(ctx('lobby', undefined)), true);
  });

  test('protected room: missing and wrong passwords fail, the right one passes', async () => {
    const rp = fast();
    await rp.setRoomPassword('vip', 's3cr3t');
    assert.equal(rp.hasRoomPassword('vip'), true);
    assert.equal(await rp.verify('vip', undefined), false);
    assert.equal(await rp.verify('vip', ''), false);
    assert.equal(await rp.verify('vip', 's3cr3T'), false);
    assert.equal(await rp.verify('vip', 's3cr3t '), false);
    assert.equal(await rp.verify('vip', 's3cr3t'), true);
    assert.equal(await rp.authorize(ctx('vip', 's3cr3t')), true);
    assert.equal(await rp.authorize(ctx('vip', 'nope')), false);
    // Other rooms stay open.
    assert.equal(await rp.verify('other', undefined), true);
  });

  test('changing a password: the old one stops working', async () => {
    const rp = fast();
    await rp.setRoomPassword('r', 'first');
    await rp.setRoomPassword('r', 'second');
    assert.equal(await rp.verify('r', 'first'), false);
    assert.equal(await rp.verify('r', 'second'), true);
  });

  test('removing a password opens the room again', async () => {
    const rp = fast();
    await rp.setRoomPassword('r', 'pw');
    assert.equal(rp.removeRoomPassword('r'), true);
    assert.equal(rp.removeRoomPassword('r'), false);
    assert.equal(rp.hasRoomPassword('r'), false);
    assert.equal(await rp.verify('r', undefined), true);
  });

  test('a room is protected as soon as setRoomPassword is called, before hashing ends', async () => {
    const rp = fast();
    const pending = rp.setRoomPassword('r', 'pw');
    assert.equal(rp.hasRoomPassword('r'), true);
    const check = rp.verify('r', undefined);
    await pending;
    assert.equal(await check, false);
  });

  test('overlapping sets: the last call wins', async () => {
    const rp = fast();
    await Promise.all([rp.setRoomPassword('r', 'one'), rp.setRoomPassword('r', 'two')]);
    assert.equal(await rp.verify('r', 'one'), false);
    assert.equal(await rp.verify('r', 'two'), true);
  });

  test('passwords over 4096 bytes are rejected on set and fail on verify', async () => {
    const rp = fast();
    await assert.rejects(rp.setRoomPassword('r', 'a'.repeat(MAX_ROOM_PASSWORD_BYTES + 1)), (err: unknown) => {
      return err instanceof InvalidRoomPasswordError && err.reason === 'too_long';
    });
    // 1366 three-byte characters are 4098 bytes while only 1366 UTF-16 units long.
    await assert.rejects(rp.setRoomPassword('r', '€'.repeat(1366)), InvalidRoomPasswordError);
    assert.equal(rp.hasRoomPassword('r'), false);

    const max = 'b'.repeat(MAX_ROOM_PASSWORD_BYTES);
    await rp.setRoomPassword('r', max);
    assert.equal(await rp.verify('r', max), true);
    assert.equal(await rp.verify('r', `${max}b`), false);
  });

  test('empty passwords are rejected on set', async () => {
    await assert.rejects(fast().setRoomPassword('r', ''), (err: unknown) => {
      return err instanceof InvalidRoomPasswordError && err.reason === 'empty';
    });
  });

  test('the same password in two rooms is salted differently but verifies in both', async () => {
    const rp = fast();
    await rp.setRoomPassword('a', 'same');
    await rp.setRoomPassword('b', 'same');
    assert.equal(await rp.verify('a', 'same'), true);
    assert.equal(await rp.verify('b', 'same'), true);
  });

  test('rooms() lists protected rooms, sorted', async () => {
    const rp = fast();
    await rp.setRoomPassword('zeta', 'x');
    await rp.setRoomPassword('alpha', 'y');
    assert.deepEqual(rp.rooms(), ['alpha', 'zeta']);
  });

  test('invalid iteration counts are refused', () => {
    assert.throws(() => new RoomPasswords({ iterations: 0 }), RangeError);
    assert.throws(() => new RoomPasswords({ iterations: 1.5 }), RangeError);
  });

  test('default settings (210000 iterations) work end to end', async () => {
    assert.equal(DEFAULT_PBKDF2_ITERATIONS, 210_000);
    const rp = new RoomPasswords();
    await rp.setRoomPassword('vip', 'Default-1');
    assert.equal(await rp.verify('vip', 'Default-1'), true);
    assert.equal(await rp.verify('vip', 'default-1'), false);
  });

  test('a hash made with old iterations still verifies after the default changes per instance', async () => {
    // Each stored hash keeps its own iteration count, so verification does not depend on the current setting.
    const rp = new RoomPasswords({ iterations: 2000 });
    await rp.setRoomPassword('r', 'pw');
    assert.equal(await rp.verify('r', 'pw'), true);
  });
});
