// `wshub serve --workers 2` under repeated crashes: every worker is
// SIGKILLed three times, 0.7 s apart. The primary must stay up (the port
// must not close for good), log every crash and every restart with its
// backoff delay, serve /healthz again within the backoff bound, and still
// stop cleanly on SIGTERM.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_MIN_MS } from '../../../src/cli/workers.ts';
import { startCli, type RunningCli } from '../../helpers/cli.ts';
import { logLines, request, waitFor, type LogLine } from '../../cli/support.ts';

const ROUNDS = 3;
const ROUND_GAP_MS = 700;

const running: RunningCli[] = [];
after(async () => {
  await Promise.all(running.splice(0).map((cli) => cli.stop('SIGKILL')));
});

function events(cli: RunningCli, event: string): LogLine[] {
  return logLines(cli.stderr()).filter((line) => line.event === event);
}

/** Worker pids the primary forked and has not yet seen exit. */
function liveWorkers(cli: RunningCli): number[] {
  const exited = new Set(events(cli, 'worker_exit').map((l) => l.pid));
  return events(cli, 'worker_started')
    .map((l) => l.pid as number)
    .filter((pid) => !exited.has(pid));
}

async function healthy(url: string): Promise<boolean> {
  try {
    return (await request(`${url}/healthz`)).status === 200;
  } catch {
    return false;
  }
}

describe('wshub serve --workers: crash loop', () => {
  test('the primary survives every worker being killed three times and keeps restarting them', async () => {
    const cli = await startCli(
      ['serve', '--workers', '2', '--allow-unauthenticated', '--port', '0', '--log-level', 'info'],
      {},
      60_000,
    );
    running.push(cli);

    let kills = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const pid of liveWorkers(cli)) {
        try {
          process.kill(pid, 'SIGKILL');
          kills++;
        } catch {
          // Already gone; its exit is logged all the same.
        }
      }
      await sleep(ROUND_GAP_MS);
    }
    assert.ok(kills >= ROUNDS * 2 - 1, `killed ${kills} workers`);

    // The doubling delays of these kills add up to at most 100 ms · 2^kills;
    // on top of that each replacement needs a few seconds to start on a busy machine.
    const bound = Math.min(RESTART_BACKOFF_MIN_MS * 2 ** kills, RESTART_BACKOFF_MAX_MS) + 20_000;
    await waitFor(() => events(cli, 'worker_exit').length >= kills, 'every crash in the log', 10_000);
    const started = performance.now();
    for (;;) {
      assert.equal(cli.child.exitCode, null, `the primary exited; stderr: ${cli.stderr()}`);
      const live = liveWorkers(cli);
      const listening = new Set(events(cli, 'start').map((l) => l.pid));
      if (live.length === 2 && live.every((pid) => listening.has(pid)) && (await healthy(cli.url))) break;
      assert.ok(performance.now() - started < bound, `two workers serving again within ${bound} ms`);
      await sleep(50);
    }
    assert.equal(cli.child.exitCode, null, 'the primary is still running');

    const exits = events(cli, 'worker_exit');
    const restarts = events(cli, 'worker_restart');
    assert.equal(exits.length, kills, 'every crash logged once');
    assert.ok(
      exits.every((l) => l.signal === 'SIGKILL' && l.level === 'error'),
      'with its signal',
    );
    assert.equal(restarts.length, kills, 'every restart logged, with its delay');
    const delays = restarts.map((l) => l.delay_ms as number);
    assert.equal(delays[0], RESTART_BACKOFF_MIN_MS);
    for (let i = 1; i < delays.length; i++) {
      assert.equal(
        delays[i],
        Math.min(delays[i - 1]! * 2, RESTART_BACKOFF_MAX_MS),
        `backoff doubles: ${delays.join(', ')}`,
      );
    }

    assert.equal(await cli.stop('SIGTERM'), 0, 'SIGTERM still stops the primary cleanly');
    assert.equal(events(cli, 'primary_stopped').length, 1);
    assert.equal(events(cli, 'stopped').length, 2, 'both live workers stopped gracefully');
  });
});
