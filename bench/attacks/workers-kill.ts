/**
 * Worker crashes under `wshub serve --workers 2`: SIGKILL every worker of
 * the server 0.7 s apart (whatever workers exist at that moment, including
 * restarted ones), then watch for 6 s whether the primary stays up and
 * serves again. The report's sequence was three rounds; whether restarted
 * workers exist yet at each round depends on how fast they start, so three
 * more rounds follow while the primary lives, which makes the outcome
 * independent of the machine's speed: every restart the primary allows in
 * its window is used up with no worker left.
 */
import { descendants } from './server.ts';
import { sleep, type Attack, type AttackContext, type AttackOutcome } from './common.ts';

const ROUNDS = 6;
const ROUND_GAP_MS = 700;
const WATCH_MS = 6000;

function killAll(pids: number[]): number {
  let killed = 0;
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      // Already gone.
    }
  }
  return killed;
}

async function run(ctx: AttackContext): Promise<AttackOutcome> {
  const primary = ctx.server.pid;
  const killedPerRound: number[] = [];
  for (let round = 0; round < ROUNDS && ctx.server.alive(); round++) {
    // Only the primary's own children: the workers of the server started for this attack.
    killedPerRound.push(killAll(descendants(primary)));
    await sleep(ROUND_GAP_MS);
  }
  await Promise.race([ctx.server.whenExited(), sleep(WATCH_MS)]);
  const exit = ctx.server.exit;
  const workersAtEnd = exit === undefined ? descendants(primary).length : 0;
  const fate =
    exit === undefined
      ? `primary alive after ${WATCH_MS / 1000} s with ${workersAtEnd} worker(s)`
      : `primary exited (code ${exit.code}, signal ${exit.signal})`;
  return {
    summary: `SIGKILL to all workers ${killedPerRound.length}× ${ROUND_GAP_MS} ms apart (killed ${killedPerRound.join('+')}): ${fate}`,
    details: { killedPerRound, exit, workersAtEnd },
  };
}

export const workersKill: Attack = {
  name: 'workers-kill',
  description: `--workers 2; SIGKILL every worker ${ROUNDS} times ${ROUND_GAP_MS} ms apart, watch ${WATCH_MS / 1000} s`,
  launch: { args: ['--workers', '2'] },
  budgetMs: ROUNDS * ROUND_GAP_MS + WATCH_MS + 2000,
  run,
};
