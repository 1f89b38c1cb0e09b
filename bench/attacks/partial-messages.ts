/**
 * Partial messages held open: 20 authenticated connections each send the
 * first fragment (FIN=0) of a binary message with a 15 MiB payload, just
 * under the default 16 MiB read limit, and then send nothing more. The
 * server must either bound what it keeps for unfinished messages or close
 * such connections; the figure to watch is its RSS.
 */
import { randomBytes } from 'node:crypto';
import {
  drained,
  endingText,
  openRawClient,
  sleep,
  tally,
  tallyText,
  type Attack,
  type AttackContext,
  type AttackOutcome,
  type RawClient,
} from './common.ts';

const CONNECTIONS = 20;
const PAYLOAD_BYTES = 15 * 1024 * 1024;
const HOLD_MS = 8000;
const SEND_MS = 10_000;

/** A masked first fragment (binary, FIN=0) with a `length`-byte payload and 64-bit length. */
function bigFirstFragment(length: number): Buffer {
  const frame = Buffer.alloc(14 + length, 0x62);
  frame[0] = 0x02;
  frame[1] = 0x80 | 127;
  frame.writeUInt32BE(Math.floor(length / 0x100000000), 2);
  frame.writeUInt32BE(length >>> 0, 6);
  const mask = randomBytes(4);
  mask.copy(frame, 10);
  for (let i = 0; i < length; i++) frame[14 + i]! ^= mask[i & 3]!;
  return frame;
}

async function run(ctx: AttackContext): Promise<AttackOutcome> {
  const frame = bigFirstFragment(PAYLOAD_BYTES);
  const deadline = performance.now() + SEND_MS;
  const clients: RawClient[] = [];
  const failed: string[] = [];
  let delivered = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      const client = await openRawClient(ctx, 'partial');
      if (typeof client === 'string') {
        failed.push(client);
        return;
      }
      clients.push(client);
      if (!client.socket.write(frame)) await drained(client.socket, deadline);
      if (client.socket.writableLength === 0) delivered++;
    }),
  );
  await sleep(HOLD_MS);
  const endings = clients.map((c) => c.ended ?? 'held open');
  const timings = clients.map(endingText);
  for (const client of clients) client.socket.destroy();
  return {
    summary:
      `${CONNECTIONS} × ${PAYLOAD_BYTES / 1048576} MiB first fragments, ${delivered} fully taken by the server; ` +
      `after ${HOLD_MS / 1000} s: ${tallyText(tally([...endings, ...failed]))}`,
    details: { connections: CONNECTIONS, payloadBytes: PAYLOAD_BYTES, delivered, endings: timings, failed },
  };
}

export const partialMessages: Attack = {
  name: 'partial-messages',
  description: `${CONNECTIONS} connections each send a ${PAYLOAD_BYTES / 1048576} MiB FIN=0 binary fragment, then hold ${HOLD_MS / 1000} s`,
  launch: {},
  budgetMs: SEND_MS + HOLD_MS + 2000,
  run,
};
