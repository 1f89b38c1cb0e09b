// ExpiryTimer: deadlines past setTimeout's 2^31−1 ms limit are reached in
// capped steps, re-checking the clock each time, and fire exactly once.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExpiryTimer, MAX_TIMER_DELAY_MS } from '../../src/auth/expiry-timer.ts';

describe('ExpiryTimer', () => {
  test('re-arms in capped steps until the clock reaches the deadline, then fires once', async () => {
    let now = 0;
    let fired = 0;
    const timer = new ExpiryTimer(1_000, () => fired++, { now: () => now, maxStepMs: 10 });
    // Several 10 ms steps pass while the (fake) clock stands still: no firing.
    await sleep(80);
    assert.equal(fired, 0);
    assert.ok(timer.pending);
    now = 999;
    await sleep(40);
    assert.equal(fired, 0, 'one ms before the deadline is not the deadline');
    now = 1_000;
    const deadline = performance.now() + 2_000;
    while (fired === 0 && performance.now() < deadline) await sleep(5);
    assert.equal(fired, 1);
    assert.equal(timer.pending, false);
    await sleep(40);
    assert.equal(fired, 1, 'fires only once');
  });

  test('a deadline 30 days ahead neither fires early nor warns about overflow', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      let fired = 0;
      const timer = new ExpiryTimer(Date.now() + 30 * 86_400_000, () => fired++);
      await sleep(100);
      assert.equal(fired, 0, 'a deadline past 2^31-1 ms must not fire at once');
      assert.ok(timer.pending);
      timer.cancel();
      assert.equal(timer.pending, false);
      assert.deepEqual(
        warnings.map((w) => w.name),
        [],
      );
    } finally {
      process.off('warning', onWarning);
    }
  });

  test('a deadline already passed (or NaN) fires promptly; cancel prevents firing', async () => {
    let fired = 0;
    new ExpiryTimer(Date.now() - 1_000, () => fired++);
    new ExpiryTimer(Number.NaN, () => fired++);
    const cancelled = new ExpiryTimer(Date.now() + 20, () => (fired += 100));
    cancelled.cancel();
    await sleep(60);
    assert.equal(fired, 2);
  });

  test('maxStepMs must be an integer from 1 to 2^31-1', () => {
    for (const bad of [0, -1, 1.5, MAX_TIMER_DELAY_MS + 1, Number.NaN]) {
      assert.throws(() => new ExpiryTimer(0, () => {}, { maxStepMs: bad }), RangeError);
    }
  });
});
