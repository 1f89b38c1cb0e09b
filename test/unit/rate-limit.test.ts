import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket } from '../../src/hub/rate-limit.ts';

/** A hand-driven clock in milliseconds. */
function fakeClock(start = 1000): {
  now: () => number;
  advance: (ms: number) => void;
  set: (ms: number) => void;
} {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
    set: (ms) => {
      t = ms;
    },
  };
}

function drain(bucket: TokenBucket, limit = 10_000): number {
  let n = 0;
  while (n < limit && bucket.tryTake()) n++;
  return n;
}

describe('TokenBucket', () => {
  test('starts full with a default burst of 2 x rate', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(5, undefined, clock.now);
    assert.equal(bucket.available(), 10);
    assert.equal(drain(bucket), 10);
    assert.equal(bucket.available(), 0);
    assert.equal(bucket.tryTake(), false);
  });

  test('an explicit burst overrides the default', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(5, 3, clock.now);
    assert.equal(drain(bucket), 3);
  });

  test('a low rate still allows one event', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(0.25, undefined, clock.now);
    assert.equal(drain(bucket), 1);
    clock.advance(3999);
    assert.equal(bucket.tryTake(), false);
    clock.advance(1);
    assert.equal(bucket.tryTake(), true);
  });

  test('refills at the configured rate as time passes', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 20, clock.now);
    assert.equal(drain(bucket), 20);
    clock.advance(99);
    assert.equal(bucket.tryTake(), false);
    clock.advance(1);
    assert.equal(bucket.tryTake(), true);
    assert.equal(bucket.tryTake(), false);
    clock.advance(500);
    assert.equal(bucket.available(), 5);
    assert.equal(drain(bucket), 5);
  });

  test('partial refills accumulate across calls', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(4, 1, clock.now);
    assert.equal(bucket.tryTake(), true);
    for (let i = 0; i < 4; i++) {
      clock.advance(50);
      assert.equal(bucket.tryTake(), false, `step ${i}`);
    }
    clock.advance(50);
    assert.equal(bucket.tryTake(), true);
  });

  test('never holds more than the burst', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 20, clock.now);
    drain(bucket);
    clock.advance(60_000);
    assert.equal(bucket.available(), 20);
    assert.equal(drain(bucket), 20);
  });

  test('sustained rate over a long run matches ratePerSecond', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(50, 100, clock.now);
    drain(bucket);
    let allowed = 0;
    for (let ms = 0; ms < 10_000; ms++) {
      clock.advance(1);
      if (bucket.tryTake()) allowed++;
    }
    assert.ok(allowed >= 499 && allowed <= 500, `allowed ${allowed}`);
  });

  test('a clock stepping backwards neither drains nor double-credits', () => {
    const clock = fakeClock(10_000);
    const bucket = new TokenBucket(1, 1, clock.now);
    assert.equal(bucket.tryTake(), true);
    clock.set(5_000);
    assert.equal(bucket.tryTake(), false);
    clock.set(10_500);
    assert.equal(bucket.tryTake(), false);
    clock.set(11_000);
    assert.equal(bucket.tryTake(), true);

    const full = new TokenBucket(1, 2, clock.now);
    clock.set(1_000);
    assert.equal(full.available(), 2);
    assert.equal(drain(full), 2);
  });

  test('rate 0 is unlimited', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(0, undefined, clock.now);
    assert.equal(drain(bucket, 5000), 5000);
    assert.equal(bucket.available(), Infinity);
  });

  test('works with the default clock', () => {
    const bucket = new TokenBucket(1000);
    assert.equal(bucket.available(), 2000);
    assert.equal(bucket.tryTake(), true);
  });

  test('rejects negative or non-finite rates', () => {
    for (const rate of [-1, -0.001, Number.NaN, Infinity, -Infinity]) {
      assert.throws(() => new TokenBucket(rate), RangeError, String(rate));
    }
  });

  test('rejects a burst below one or non-finite', () => {
    for (const burst of [0, 0.5, -1, Number.NaN, Infinity]) {
      assert.throws(() => new TokenBucket(10, burst), RangeError, String(burst));
    }
  });
});
