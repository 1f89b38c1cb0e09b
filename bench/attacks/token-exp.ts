/**
 * A token valid for 30 days: `exp` more than 2^31 ms (24.8 days) ahead. A
 * timer armed for the expiry overflows and fires at once unless the server
 * bounds it, closing the connection with 4001. The connection is watched
 * for 3 s; staying open is the right outcome.
 */
import {
  endingText,
  mintToken,
  openRawClient,
  sleep,
  type Attack,
  type AttackContext,
  type AttackOutcome,
} from './common.ts';

const TTL_SECONDS = 30 * 24 * 3600;
const WATCH_MS = 3000;

async function run(ctx: AttackContext): Promise<AttackOutcome> {
  const token = mintToken(ctx.secret, 'long-lived', TTL_SECONDS);
  const client = await openRawClient(ctx, 'longlived', { token });
  if (typeof client === 'string') return { summary: client, details: { ending: client } };
  await sleep(WATCH_MS);
  const ending = client.ended === undefined ? `open after ${WATCH_MS / 1000} s` : endingText(client);
  client.socket.destroy();
  return { summary: `token exp in 30 days: ${ending}`, details: { ttlSeconds: TTL_SECONDS, ending } };
}

export const tokenExp: Attack = {
  name: 'token-exp',
  description: `one client with a token whose exp is 30 days ahead, watched ${WATCH_MS / 1000} s`,
  launch: {},
  budgetMs: WATCH_MS + 5000,
  run,
};
