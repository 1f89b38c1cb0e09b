/**
 * Ping flood from a client that never reads: one authenticated connection
 * sends 125-byte pings as fast as the server reads them and never reads the
 * pongs, for up to 20 s or until the server ends the connection. The pongs
 * pile up on the server unless it bounds them.
 */
import { OPCODE_PING, maskedFrame, newMask } from '../loadgen/client-frames.ts';
import {
  drained,
  endingText,
  openRawClient,
  sleep,
  type Attack,
  type AttackContext,
  type AttackOutcome,
} from './common.ts';

const ATTACK_MS = 20_000;
const PINGS_PER_CHUNK = 1000;

async function run(ctx: AttackContext): Promise<AttackOutcome> {
  const client = await openRawClient(ctx, 'pings', { read: false });
  if (typeof client === 'string') return { summary: client, details: { ending: client } };
  const { socket } = client;
  const ping = maskedFrame(OPCODE_PING, Buffer.alloc(125, 0x70), newMask());
  const chunk = Buffer.concat(Array.from({ length: PINGS_PER_CHUNK }, () => ping));
  const deadline = performance.now() + ATTACK_MS;
  let pings = 0;
  while (client.ended === undefined && performance.now() < deadline && ctx.server.alive()) {
    const flushed = socket.write(chunk);
    pings += PINGS_PER_CHUNK;
    if (!flushed) await drained(socket, deadline);
  }
  if (client.ended === undefined && ctx.server.alive()) await sleep(300);
  const ending = endingText(client);
  socket.destroy();
  return {
    summary: `${(pings / 1e6).toFixed(2)} M pings written, pongs never read: ${ending}`,
    details: { pingsWritten: pings, pingBytes: ping.length, ending },
  };
}

export const pingFlood: Attack = {
  name: 'ping-flood',
  description: `1 connection writes 125-byte pings as fast as the server reads, never reads, ≤ ${ATTACK_MS / 1000} s`,
  launch: {},
  budgetMs: ATTACK_MS + 3000,
  run,
};
