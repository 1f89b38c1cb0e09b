// The per-client limit tables on a hand-driven clock: exact windows,
// release, exemption, and memory that stays bounded when an attacker
// rotates through many addresses.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PasswordLockout } from '../../../src/auth/password-lockout.ts';
import { InboundRate } from '../../../src/connection/inbound-rate.ts';
import { AddressLimits, UserConnectionLimit } from '../../../src/upgrade/client-limits.ts';

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('AddressLimits', () => {
  test('handshakes per second: exactly the limit per window, then 429, and a new window lets in again', () => {
    const c = clock();
    const limits = new AddressLimits({ maxConnsPerIp: 0, maxHandshakesPerIp: 3, exempt: [], now: c.now });
    for (let i = 0; i < 3; i++) assert.equal(limits.admit('192.0.2.1'), null);
    const refused = limits.admit('192.0.2.1');
    assert.equal(refused?.status, 429);
    assert.equal(refused?.code, 'WEBSOCKET_IP_HANDSHAKE_RATE');
    assert.equal(refused?.headers?.['Retry-After'], '1');
    assert.equal(limits.admit('192.0.2.2'), null, 'another address has its own count');
    c.advance(999);
    assert.notEqual(limits.admit('192.0.2.1'), null);
    c.advance(1);
    assert.equal(limits.admit('192.0.2.1'), null);
    assert.equal(limits.counters.ip_handshakes_refused, 2);
  });

  test('connections per address are held until released; IPv6 counts per /64', () => {
    const limits = new AddressLimits({ maxConnsPerIp: 2, maxHandshakesPerIp: 0, exempt: [] });
    assert.equal(limits.admit('2001:db8::1'), null);
    assert.equal(limits.admit('2001:db8::ffff'), null);
    assert.equal(limits.admit('2001:db8::2')?.code, 'WEBSOCKET_IP_CONNECTION_LIMIT');
    assert.equal(limits.admit('2001:db8:1::1'), null, 'another /64');
    limits.release('2001:db8::1');
    assert.equal(limits.admit('2001:db8::3'), null);
    for (const a of ['2001:db8::3', '2001:db8::ffff', '2001:db8:1::1']) limits.release(a);
    assert.equal(limits.trackedAddresses, 0);
  });

  test('exempt ranges are neither limited nor counted', () => {
    const limits = new AddressLimits({
      maxConnsPerIp: 1,
      maxHandshakesPerIp: 1,
      exempt: ['10.0.0.0/8', '::1'],
    });
    for (let i = 0; i < 10; i++) assert.equal(limits.admit('10.1.2.3'), null);
    for (let i = 0; i < 10; i++) assert.equal(limits.admit('::ffff:10.9.9.9'), null);
    assert.equal(limits.admit('::1'), null);
    assert.equal(limits.trackedAddresses, 0);
  });

  test('100,000 distinct addresses in one second: the handshake table stays at its cap', () => {
    const c = clock();
    const limits = new AddressLimits({
      maxConnsPerIp: 0,
      maxHandshakesPerIp: 5,
      exempt: [],
      maxTrackedAddresses: 1_000,
      now: c.now,
    });
    for (let i = 0; i < 100_000; i++) {
      limits.admit(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      assert.ok(limits.windowAddresses <= 1_000);
    }
    assert.equal(limits.windowAddresses, 1_000);
    assert.equal(limits.counters.limit_table_full, 99_000);
    // A tracked address is still limited while the table is full.
    for (let i = 0; i < 4; i++) limits.admit('10.0.0.0');
    assert.notEqual(limits.admit('10.0.0.0'), null);
    // The next window starts empty.
    c.advance(1_000);
    limits.admit('192.0.2.1');
    assert.equal(limits.windowAddresses, 1);
  });

  test('the connection table holds only addresses with a connection open', () => {
    const limits = new AddressLimits({ maxConnsPerIp: 10, maxHandshakesPerIp: 0, exempt: [] });
    for (let i = 0; i < 10_000; i++) {
      const address = `10.0.${i >> 8}.${i & 255}`;
      assert.equal(limits.admit(address), null);
      limits.release(address);
    }
    assert.equal(limits.trackedAddresses, 0);
  });
});

describe('UserConnectionLimit', () => {
  test('per user, anonymous not counted, released slots reused', () => {
    const users = new UserConnectionLimit(2);
    assert.ok(users.tryAcquire('alice'));
    assert.ok(users.tryAcquire('alice'));
    assert.equal(users.tryAcquire('alice'), false);
    assert.ok(users.tryAcquire('bob'));
    for (let i = 0; i < 5; i++) assert.ok(users.tryAcquire(''));
    users.release('alice');
    assert.ok(users.tryAcquire('alice'));
    assert.equal(users.refused, 1);
    users.release('alice');
    users.release('alice');
    users.release('bob');
    assert.equal(users.trackedUsers, 0);
  });
});

describe('PasswordLockout', () => {
  test('N failures lock the pair out for the lockout time; success clears; other rooms unaffected', () => {
    const c = clock();
    const lockout = new PasswordLockout({ maxFailures: 3, lockoutMs: 10_000, now: c.now });
    assert.equal(lockout.fail('192.0.2.1', 'vip'), false);
    lockout.succeed('192.0.2.1', 'vip');
    assert.equal(lockout.fail('192.0.2.1', 'vip'), false);
    assert.equal(lockout.fail('192.0.2.1', 'vip'), false);
    assert.equal(lockout.lockedFor('192.0.2.1', 'vip'), 0);
    assert.equal(lockout.fail('192.0.2.1', 'vip'), true);
    assert.equal(lockout.lockedFor('192.0.2.1', 'vip'), 10);
    assert.equal(lockout.lockedFor('192.0.2.1', 'other'), 0);
    assert.equal(lockout.lockedFor('192.0.2.2', 'vip'), 0);
    c.advance(9_500);
    assert.equal(lockout.lockedFor('192.0.2.1', 'vip'), 1);
    c.advance(500);
    assert.equal(lockout.lockedFor('192.0.2.1', 'vip'), 0);
    assert.deepEqual(lockout.counters, {
      room_password_failures: 4,
      room_password_lockouts: 1,
      room_password_locked_refusals: 2,
    });
  });

  test('failures older than the lockout time are forgotten', () => {
    const c = clock();
    const lockout = new PasswordLockout({ maxFailures: 2, lockoutMs: 1_000, now: c.now });
    lockout.fail('a', 'r');
    c.advance(1_001);
    assert.equal(lockout.fail('a', 'r'), false);
  });

  test('many addresses: the table never passes maxEntries', () => {
    const c = clock();
    const lockout = new PasswordLockout({ maxFailures: 5, lockoutMs: 60_000, maxEntries: 500, now: c.now });
    for (let i = 0; i < 50_000; i++) {
      lockout.fail(`10.0.${i >> 8}.${i & 255}`, 'vip');
      assert.ok(lockout.size <= 500);
    }
    assert.equal(lockout.counters.room_password_failures, 50_000);
  });

  test('passwordLockout 0: failures counted, nothing locked or kept', () => {
    const lockout = new PasswordLockout({ maxFailures: 0, lockoutMs: 60_000 });
    for (let i = 0; i < 10; i++) assert.equal(lockout.fail('a', 'r'), false);
    assert.equal(lockout.lockedFor('a', 'r'), 0);
    assert.equal(lockout.size, 0);
  });
});

describe('InboundRate', () => {
  test('messages: one second of burst, refilled by the clock', () => {
    const c = clock();
    const rate = new InboundRate(10, 0, c.now);
    rate.received(1);
    for (let i = 0; i < 10; i++) assert.equal(rate.message(), null);
    assert.equal(rate.message(), 'messages');
  });

  test('bytes: a second of bytes, then over; half a second later half refilled', () => {
    const c = clock();
    const rate = new InboundRate(0, 1_000, c.now);
    assert.equal(rate.received(1_000), null);
    assert.equal(rate.received(1), 'bytes');
    const fresh = new InboundRate(0, 1_000, c.now);
    assert.equal(fresh.received(1_000), null);
    c.advance(500);
    assert.equal(fresh.received(500), null);
    assert.equal(fresh.received(1), 'bytes');
    assert.equal(fresh.message(), null, 'messages are not limited');
  });
});
