/**
 * A long Sec-WebSocket-Protocol list: upgrades offering 5,000 different
 * subprotocols (about 15 KiB, under the 16 KiB head limit) with the bearer
 * token as the last entry, four at a time for 6 s; then the same with a
 * one-entry list as the baseline. The figure is the server's CPU time per
 * request, from /proc, for each.
 */
import {
  answerLabel,
  connectFrom,
  exchange,
  mintToken,
  nextSourceAddress,
  tally,
  tallyText,
  upgradeText,
  type Attack,
  type AttackContext,
  type AttackOutcome,
} from './common.ts';

const ENTRIES = 5000;
const CONCURRENT = 4;
const PHASE_MS = 6000;

interface Phase {
  requests: number;
  answers: Record<string, number>;
  cpuMsPerRequest: number;
}

async function phase(ctx: AttackContext, protocols: string): Promise<Phase> {
  const labels: string[] = [];
  const cpuBefore = ctx.server.cpuSeconds();
  const stopAt = performance.now() + PHASE_MS;
  await Promise.all(
    Array.from({ length: CONCURRENT }, async () => {
      while (performance.now() < stopAt && ctx.server.alive()) {
        try {
          const socket = await connectFrom(ctx.server.port, nextSourceAddress());
          const request = upgradeText('/ws?room=subs', ctx.server.port, [
            `Sec-WebSocket-Protocol: ${protocols}`,
          ]);
          const answer = await exchange(socket, request, 5000);
          answer.socket.destroy();
          labels.push(answerLabel(answer));
        } catch (error) {
          labels.push(`connect ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
        }
      }
    }),
  );
  const cpu = ctx.server.cpuSeconds() - cpuBefore;
  return {
    requests: labels.length,
    answers: tally(labels),
    cpuMsPerRequest: (cpu * 1000) / Math.max(1, labels.length),
  };
}

/** RFC 7230 token characters: every one is a valid one-character subprotocol name. */
const TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * `count` different names, shortest first (1 then 2 characters), so the
 * list stays under the head limit while a duplicate check must compare
 * each name with all those before it.
 */
function distinctNames(count: number): string[] {
  const names = [...TCHARS];
  for (const a of TCHARS) for (const b of TCHARS) names.push(a + b);
  return names.slice(0, count);
}

async function run(ctx: AttackContext): Promise<AttackOutcome> {
  const bearer = `wshub.bearer.${mintToken(ctx.secret, 'lister')}`;
  const long = await phase(ctx, `${distinctNames(ENTRIES - 1).join(',')},${bearer}`);
  const short = await phase(ctx, bearer);
  return {
    summary:
      `${ENTRIES}-entry list: ${long.requests} requests (${tallyText(long.answers)}), ` +
      `${long.cpuMsPerRequest.toFixed(2)} ms server CPU per request; 1-entry baseline: ${short.cpuMsPerRequest.toFixed(2)} ms`,
    details: { entries: ENTRIES, long, short },
  };
}

export const subprotocols: Attack = {
  name: 'subprotocols',
  description: `${ENTRIES}-entry Sec-WebSocket-Protocol (token last), ${CONCURRENT} at a time for ${PHASE_MS / 1000} s, then a 1-entry baseline`,
  launch: {},
  budgetMs: 2 * PHASE_MS + 6000,
  run,
};
