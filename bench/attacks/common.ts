/**
 * What the attack files share: the attack interface, HS256 tokens minted
 * from the server's secret, raw loopback sockets spread over source
 * addresses, reading an HTTP response head, spotting a close frame, and
 * small statistics. Everything here talks to the server over sockets only.
 */
import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import { FrameParser } from '../loadgen/frame-parser.ts';
import type { AttackServer, ServerLaunch } from './server.ts';

/** What an attack reports about its own side: one line of outcome, plus figures. */
export interface AttackOutcome {
  /** One sentence for the table: status / close code / what happened to the server. */
  summary: string;
  /** Raw figures behind the summary (kept in the JSON file). */
  details: Record<string, unknown>;
}

/** Handed to an attack while it runs. */
export interface AttackContext {
  server: AttackServer;
  /** HS256 secret the server was started with (WS_SECRET). */
  secret: string;
  /** Password of the protected room (attack room-passwords). */
  roomPassword: string;
  log(message: string): void;
}

/** One attack: how its server is started and what it does. */
export interface Attack {
  name: string;
  /** What the attack does, with the scaled-down parameters it uses. */
  description: string;
  /** Server flags and limits beyond the defaults. */
  launch: Omit<ServerLaunch, 'wshubDir' | 'secret'>;
  /** Victim options: a password-protected room for the "new upgrade" probe. */
  victimRoom?: 'protected';
  /** Longest the attack may run, in ms; the runner stops waiting past it (plus a grace period). */
  budgetMs: number;
  run(ctx: AttackContext): Promise<AttackOutcome>;
}

export const HOST = '127.0.0.1';
/** The password-protected room of the room-passwords attack. */
export const PROTECTED_ROOM = 'vault';

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * A compact HS256 JWT with `sub`, `iat`, `exp` (now + `ttlSeconds`) and a
 * random `jti`, so every token is new to the server's verification cache.
 */
export function mintToken(secret: string, sub: string, ttlSeconds = 3600): string {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = base64url(
    JSON.stringify({ sub, iat: now, exp: now + ttlSeconds, jti: randomBytes(8).toString('hex') }),
  );
  const signature = createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(`${header}.${claims}`)
    .digest('base64url');
  return `${header}.${claims}.${signature}`;
}

let sourceCounter = 0;

/**
 * The next attacker source address: 127.0.0.2 … 127.0.0.254, then 127.0.1.x
 * and so on, so per-address limits see many clients. The victim stays on
 * 127.0.0.1.
 */
export function nextSourceAddress(): string {
  const n = sourceCounter++ % (253 * 8);
  return `127.0.${Math.floor(n / 253)}.${(n % 253) + 2}`;
}

/** Opens a TCP connection to the server from `localAddress`; rejects on error or after `timeoutMs`. */
export function connectFrom(port: number, localAddress: string, timeoutMs = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port, localAddress });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('connect timeout'));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
    const onError = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    socket.once('error', onError);
  });
}

/** The HTTP upgrade request the fast path expects, as a string (latin1), with extra header lines. */
export function upgradeText(path: string, port: number, extra: string[] = []): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
    extra.map((line) => `${line}\r\n`).join('') +
    '\r\n'
  );
}

/** How the server answered a request written on a raw socket. */
export interface RawAnswer {
  /** HTTP status, or undefined when no response head arrived. */
  status: number | undefined;
  /** The JSON error code in the body, when there was one. */
  code?: string;
  /** What ended the wait without a head: 'timeout', 'closed', 'reset', … */
  ended?: string;
  ms: number;
  /** Bytes after the response head (start of the WebSocket stream on a 101). */
  rest: Buffer;
  socket: net.Socket;
}

/**
 * Writes `request` on `socket` and waits for the response head (and, for a
 * non-101, a bit of body for the error code). Never rejects; the socket is
 * left open for 101s and destroyed otherwise unless `keep`.
 */
export function exchange(
  socket: net.Socket,
  request: string | Buffer,
  timeoutMs = 5000,
  keep = false,
): Promise<RawAnswer> {
  const started = performance.now();
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    let done = false;
    const finish = (answer: Omit<RawAnswer, 'ms' | 'socket'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      socket.on('error', () => {});
      if (answer.status !== 101 && !keep) socket.destroy();
      resolve({ ...answer, ms: performance.now() - started, socket });
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffered.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]);
      const rest = buffered.subarray(end + 4);
      if (status === 101) return finish({ status, rest });
      // Wait briefly for the body so the error code can be reported.
      const code = /"code"\s*:\s*"([A-Z_]+)"/.exec(rest.toString('utf8'))?.[1];
      if (code !== undefined || rest.length > 512) return finish({ status, code, rest });
      setTimeout(() => finish({ status, rest }), 200);
    };
    const onClose = (): void => finish({ status: undefined, ended: 'closed', rest: buffered });
    const onError = (error: NodeJS.ErrnoException): void =>
      finish({ status: undefined, ended: error.code ?? error.message, rest: buffered });
    const timer = setTimeout(
      () => finish({ status: undefined, ended: 'timeout', rest: buffered }),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.on('error', onError);
    socket.write(request);
  });
}

/** A short label for an answer: `101`, `400 BAD_REQUEST`, `timeout`, `ECONNRESET`. */
export function answerLabel(answer: Pick<RawAnswer, 'status' | 'code' | 'ended'>): string {
  if (answer.status === undefined) return answer.ended ?? 'no answer';
  return answer.code !== undefined ? `${answer.status} ${answer.code}` : String(answer.status);
}

/**
 * Watches the server→client byte stream of a WebSocket and records the first
 * close frame's code (1005 when it had no body). Feed it what arrives.
 */
export class CloseWatcher extends FrameParser {
  closeCode: number | undefined;
  frames = 0;

  protected override onFrame(opcode: number, _fin: boolean, prefixLen: number): void {
    this.frames++;
    if (opcode === 8 && this.closeCode === undefined) {
      this.closeCode = prefixLen >= 2 ? this.prefix.readUInt16BE(0) : 1005;
    }
  }
}

/** Counts labels: `{ '101': 3, ECONNRESET: 2 }`. */
export function tally(labels: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const label of labels) out[label] = (out[label] ?? 0) + 1;
  return out;
}

/** `101 ×3, ECONNRESET ×2` from a tally, most frequent first. */
export function tallyText(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([label, n]) => `${label} ×${n}`)
    .join(', ');
}

/** The q-quantile (0…1) of `values` (nearest rank); NaN when empty. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** Milliseconds as `850 ms` or `10.2 s`. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** An authenticated WebSocket opened on a raw socket, with how the server ended it. */
export interface RawClient {
  socket: net.Socket;
  /** Sees every server frame while `read` is on. */
  watcher: CloseWatcher;
  /** performance.now() when the 101 arrived. */
  openedAt: number;
  /** `close 4001`, `ECONNRESET`, `closed`, … once the server ended the connection. */
  ended?: string;
  endedAtMs?: number;
}

/**
 * Opens `/ws?room=ROOM` from the next attacker address with a fresh token
 * (plus `extra` header lines). Resolves with the client, or with a label
 * saying why there is none (`upgrade: 403 …`, `connect: ECONNRESET`).
 * With `read` off the socket is paused: the client never reads.
 */
export async function openRawClient(
  ctx: AttackContext,
  room: string,
  options: { extra?: string[]; token?: string; read?: boolean } = {},
): Promise<RawClient | string> {
  let socket: net.Socket;
  try {
    socket = await connectFrom(ctx.server.port, nextSourceAddress());
  } catch (error) {
    return `connect: ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
  }
  const token = options.token ?? mintToken(ctx.secret, 'attacker');
  const request = upgradeText(`/ws?room=${room}`, ctx.server.port, [
    `Authorization: Bearer ${token}`,
    ...(options.extra ?? []),
  ]);
  const answer = await exchange(socket, request);
  if (answer.status !== 101) return `upgrade: ${answerLabel(answer)}`;
  const client: RawClient = { socket, watcher: new CloseWatcher(), openedAt: performance.now() };
  const end = (how: string): void => {
    if (client.ended !== undefined) return;
    client.ended = how;
    client.endedAtMs = performance.now() - client.openedAt;
  };
  client.watcher.feed(answer.rest, 0, answer.rest.length);
  socket.on('data', (chunk: Buffer) => {
    client.watcher.feed(chunk, 0, chunk.length);
    if (client.watcher.closeCode !== undefined) end(`close ${client.watcher.closeCode}`);
  });
  socket.on('error', (error: NodeJS.ErrnoException) => end(error.code ?? 'error'));
  socket.on('close', () => end('closed'));
  if (options.read === false) socket.pause();
  if (client.watcher.closeCode !== undefined) end(`close ${client.watcher.closeCode}`);
  return client;
}

/** Resolves when `socket` can take more data (or closed, or `deadline` passed). */
export function drained(socket: net.Socket, deadline: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const wake = (): void => {
      clearTimeout(timer);
      socket.off('drain', wake);
      socket.off('close', wake);
      resolve();
    };
    const timer = setTimeout(wake, Math.max(0, deadline - performance.now()));
    socket.once('drain', wake);
    socket.once('close', wake);
  });
}

/** `close 1009 after 120 ms`, or `open at the end`. */
export function endingText(client: Pick<RawClient, 'ended' | 'endedAtMs'>): string {
  return client.ended === undefined
    ? 'open at the end'
    : `${client.ended} after ${formatMs(client.endedAtMs ?? NaN)}`;
}
