// AuthFailureLog: every failed admin login is counted, and reported in at
// most one line per interval whose counts add up to every failure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuthFailureLog } from '../../src/http/admin-broadcast.ts';

function recorder(intervalMs: number): { log: AuthFailureLog; lines: Array<[number, string | undefined]> } {
  const lines: Array<[number, string | undefined]> = [];
  return { log: new AuthFailureLog(intervalMs, (count, remote) => lines.push([count, remote])), lines };
}

test('the first failure is reported at once, the rest of the interval in one line when it ends', async () => {
  const { log, lines } = recorder(150);
  log.record('10.0.0.1');
  assert.deepEqual(lines, [[1, '10.0.0.1']]);
  for (let i = 0; i < 500; i++) log.record(`10.0.0.${2 + (i % 200)}`);
  assert.equal(lines.length, 1, 'nothing more within the interval');
  await sleep(400);
  assert.deepEqual(lines, [
    [1, '10.0.0.1'],
    [500, '10.0.0.101'],
  ]);
  assert.equal(log.total, 501);
  log.flush();
  assert.equal(lines.length, 2, 'nothing pending: no line');
});

test('a steady flood gives one line per interval', async () => {
  const { log, lines } = recorder(100);
  const until = performance.now() + 550;
  let n = 0;
  while (performance.now() < until) {
    log.record('127.0.0.1');
    n++;
    await sleep(2);
  }
  log.flush();
  assert.ok(lines.length >= 3 && lines.length <= 8, `${lines.length} lines`);
  assert.equal(
    lines.reduce((sum, [count]) => sum + count, 0),
    n,
  );
  assert.equal(log.total, n);
});

test('flush reports what is pending and stops the timer', async () => {
  const { log, lines } = recorder(60_000);
  log.record(undefined);
  log.record('::1');
  log.record('::1');
  assert.deepEqual(lines, [[1, undefined]]);
  log.flush();
  assert.deepEqual(lines, [
    [1, undefined],
    [2, '::1'],
  ]);
  await sleep(20);
  assert.equal(lines.length, 2);
});
