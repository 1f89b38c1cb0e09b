import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEFAULT_HASH_CONCURRENCY,
  DEFAULT_MAX_QUEUED_CHECKS,
  DEFAULT_PBKDF2_ITERATIONS,
  InvalidRoomPasswordError,
  MAX_ROOM_PASSWORD_BYTES,
  RoomAuthBusyError,
  RoomPasswords,
  SecureRoomAuth,
  type RoomAuthContext,
} from '../../../src/auth/index.ts';

// Few iterations keep the suite fast; one test below uses the real default.
const fast = (): RoomPasswords => new RoomPasswords({ iterations: 1000 });

function ctx(room: string, password: string | undefined): RoomAuthContext {
  return {
    request: { socket: { remoteAddress: '127.0.0.1' } } as IncomingMessage,
    room,
    password,
    user: undefined,
    claims: undefined,
  };
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

/** Polls until `condition` holds (bounded). */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 3_000;
  while (!condition()) {
    assert.ok(performance.now() < deadline, `timed out waiting for ${what}`);
    await sleep(1);
  }
}

// Iterations high enough that a hash is surely still running while the test
// looks at the queue (tens of ms), low enough to keep the suite quick.
const SLOW = 100_000;

describe('RoomPasswords: bounded hashing', () => {
  test('defaults: one hash at a time, 32 checks may wait', () => {
    assert.equal(DEFAULT_HASH_CONCURRENCY, 1);
    assert.equal(DEFAULT_MAX_QUEUED_CHECKS, 32);
  });

  test('never more hashes at once than `concurrency`; the rest wait in order', async () => {
    for (const concurrency of [1, 2]) {
      const rp = new RoomPasswords({ iterations: SLOW, concurrency });
      await rp.setRoomPassword('r', 'right');
      const checks = Array.from({ length: 5 }, (_, i) => rp.verify('r', i === 4 ? 'right' : `wrong-${i}`));
      await until(() => rp.passwordMetrics().room_password_hashes === concurrency, 'the first hashes');
      assert.equal(rp.passwordMetrics().room_password_queued, 5 - concurrency);
      assert.deepEqual(await Promise.all(checks), [false, false, false, false, true]);
      assert.deepEqual(rp.passwordMetrics(), {
        room_password_hashes: 5,
        room_password_skipped: 0,
        room_password_busy: 0,
        room_password_queued: 0,
      });
    }
  });

  test('beyond maxQueued waiting checks, verify rejects at once with RoomAuthBusyError', async () => {
    const rp = new RoomPasswords({ iterations: SLOW, concurrency: 1, maxQueued: 2 });
    await rp.setRoomPassword('r', 'right');
    const admitted = [rp.verify('r', 'a'), rp.verify('r', 'b'), rp.verify('r', 'c')];
    await until(() => rp.passwordMetrics().room_password_queued === 2, 'two waiting checks');
    await assert.rejects(rp.verify('r', 'd'), (error: unknown) => {
      return error instanceof RoomAuthBusyError && error.retryAfterSeconds === 1;
    });
    // Open rooms and checks that need no hash are never refused as busy.
    assert.equal(await rp.verify('open', undefined), true);
    assert.equal(await rp.verify('r', undefined), false);
    assert.deepEqual(await Promise.all(admitted), [false, false, false]);
    assert.equal(rp.passwordMetrics().room_password_busy, 1);
    assert.equal(rp.passwordMetrics().room_password_hashes, 3);
  });

  test('a waiting check whose signal aborts leaves the queue at once and is never hashed', async () => {
    const rp = new RoomPasswords({ iterations: SLOW, concurrency: 1 });
    await rp.setRoomPassword('r', 'right');
    const first = rp.verify('r', 'wrong');
    const controllers = Array.from({ length: 3 }, () => new AbortController());
    const waiting = controllers.map((c) => rp.verify('r', 'wrong', c.signal));
    await until(() => rp.passwordMetrics().room_password_queued === 3, 'three waiting checks');
    for (const c of controllers) c.abort();
    assert.equal(rp.passwordMetrics().room_password_queued, 0, 'the places are freed at once');
    for (const check of waiting) {
      await assert.rejects(check, (error: unknown) => error instanceof Error && error.name === 'AbortError');
    }
    assert.equal(await first, false);
    // A signal aborted before the check starts is not hashed either.
    const gone = new AbortController();
    gone.abort();
    await assert.rejects(rp.verify('r', 'wrong', gone.signal));
    assert.deepEqual(rp.passwordMetrics(), {
      room_password_hashes: 1,
      room_password_skipped: 4,
      room_password_busy: 0,
      room_password_queued: 0,
    });
  });

  test('setRoomPassword shares the gate but is never refused as busy', async () => {
    const rp = new RoomPasswords({ iterations: SLOW, concurrency: 1, maxQueued: 0 });
    await rp.setRoomPassword('r', 'right');
    const running = rp.verify('r', 'wrong');
    await until(() => rp.passwordMetrics().room_password_hashes === 1, 'the running hash');
    await assert.rejects(rp.verify('r', 'again'), RoomAuthBusyError);
    await rp.setRoomPassword('s', 'other');
    assert.equal(await running, false);
    assert.equal(await rp.verify('s', 'other'), true);
  });

  test('authorize passes the context signal; SecureRoomAuth forwards it and the counters', async () => {
    const auth = new SecureRoomAuth({ iterations: SLOW, allowWeakPasswords: true, concurrency: 1 });
    await auth.setRoomPassword('r', 'right');
    const first = auth.authorize(ctx('r', 'wrong'));
    const controller = new AbortController();
    const waiting = auth.authorize({ ...ctx('r', 'wrong'), signal: controller.signal });
    await until(() => auth.passwordMetrics().room_password_queued === 1, 'the waiting check');
    controller.abort();
    await assert.rejects(waiting);
    assert.equal(await first, false);
    assert.equal(auth.metrics().roomAuthFailures, 1, 'an abandoned check is no failed authorization');
    assert.equal(auth.passwordMetrics().room_password_skipped, 1);
  });

  test('invalid concurrency and maxQueued are refused', () => {
    for (const concurrency of [0, -1, 1.5, 65, Number.NaN]) {
      assert.throws(() => new RoomPasswords({ concurrency }), RangeError);
    }
    for (const maxQueued of [-1, 0.5, 100_001, Number.NaN]) {
      assert.throws(() => new RoomPasswords({ maxQueued }), RangeError);
    }
    assert.doesNotThrow(() => new RoomPasswords({ concurrency: 64, maxQueued: 0 }));
  });
});
