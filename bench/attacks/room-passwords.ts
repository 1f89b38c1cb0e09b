/**
 * Room-password guessing. The server protects room "vault" with a password
 * (--room-passwords). An attacker with a valid token first keeps 32
 * wrong-password upgrades in flight for 6 s, then writes 300 such upgrades
 * within a few milliseconds and abandons them (destroys the sockets at
 * once), and watches for 10 s. The victim's upgrade probe joins "vault"
 * with the right password meanwhile.
 */
import type net from 'node:net';
import {
  PROTECTED_ROOM,
  answerLabel,
  connectFrom,
  exchange,
  formatMs,
  mintToken,
  nextSourceAddress,
  quantile,
  sleep,
  tally,
  tallyText,
  upgradeText,
  type Attack,
  type AttackContext,
  type AttackOutcome,
} from './common.ts';

const CONCURRENT = 32;
const CONCURRENT_MS = 6000;
const ABANDONED = 300;
const WATCH_MS = 10_000;

function guess(ctx: AttackContext, token: string, n: number): string {
  return upgradeText(`/ws?room=${PROTECTED_ROOM}`, ctx.server.port, [
    `Authorization: Bearer ${token}`,
    `X-WebSocket-Room-Password: wrong-guess-${n}`,
  ]);
}

async function run(ctx: AttackContext): Promise<AttackOutcome> {
  const token = mintToken(ctx.secret, 'guesser');
  const labels: string[] = [];
  const times: number[] = [];
  let n = 0;
  const stopAt = performance.now() + CONCURRENT_MS;
  await Promise.all(
    Array.from({ length: CONCURRENT }, async () => {
      while (performance.now() < stopAt && ctx.server.alive()) {
        let socket: net.Socket;
        try {
          socket = await connectFrom(ctx.server.port, nextSourceAddress());
        } catch (error) {
          labels.push(`connect ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
          await sleep(100);
          continue;
        }
        const answer = await exchange(socket, guess(ctx, token, n++), 10_000);
        answer.socket.destroy();
        labels.push(answerLabel(answer));
        times.push(answer.ms);
      }
    }),
  );

  // Open first, so the burst itself is only the writes.
  const sockets = (
    await Promise.all(
      Array.from({ length: ABANDONED }, () =>
        connectFrom(ctx.server.port, nextSourceAddress()).catch(() => undefined),
      ),
    )
  ).filter((s): s is net.Socket => s !== undefined);
  const cpuBefore = ctx.server.cpuSeconds();
  const burstStart = performance.now();
  for (const socket of sockets) {
    socket.on('error', () => {});
    socket.write(guess(ctx, token, n++));
  }
  const burstMs = performance.now() - burstStart;
  await sleep(50);
  for (const socket of sockets) socket.destroy();
  await sleep(WATCH_MS);
  const cpuAfterAbandon = ctx.server.cpuSeconds() - cpuBefore;

  return {
    summary:
      `${labels.length} guesses ${CONCURRENT} at a time: ${tallyText(tally(labels))}, ` +
      `answer p50 ${formatMs(quantile(times, 0.5))} max ${formatMs(quantile(times, 1))}; ` +
      `${sockets.length} guesses written in ${formatMs(burstMs)} and abandoned: ` +
      `${cpuAfterAbandon.toFixed(1)} CPU-s in the next ${WATCH_MS / 1000} s`,
    details: {
      concurrent: CONCURRENT,
      guesses: labels.length,
      answers: tally(labels),
      answerMsP50: quantile(times, 0.5),
      answerMsMax: quantile(times, 1),
      abandoned: sockets.length,
      burstMs,
      cpuSecondsAfterAbandon: cpuAfterAbandon,
    },
  };
}

export const roomPasswords: Attack = {
  name: 'room-passwords',
  description:
    `valid token, wrong password for "${PROTECTED_ROOM}": ${CONCURRENT} in flight for ${CONCURRENT_MS / 1000} s, ` +
    `then ${ABANDONED} written at once and abandoned, watched ${WATCH_MS / 1000} s; ` +
    'victim upgrades join the room with the right password',
  launch: {},
  victimRoom: 'protected',
  budgetMs: CONCURRENT_MS + WATCH_MS + 12_000,
  run,
};
