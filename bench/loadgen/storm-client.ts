/**
 * One client of a reconnection storm: it connects from its own source
 * address at its scheduled time, sends the upgrade request for its room and
 * counts as joined when the join is acknowledged (the 101 for `ws` targets,
 * whose room is joined in the upgrade; Socket.IO's connect acknowledgement
 * `40` after the 101). A refused upgrade (any other HTTP status) is retried
 * after its `Retry-After` (plus jitter), a failure without an answer (reset,
 * timeout, closed) after an exponential backoff; attempts and the time to
 * retry in are bounded, then the client gives up. Joined clients stay
 * connected, answer pings and count the roll-call messages of their room.
 *
 * Every input is bounded: the response head to MAX_HEAD_BYTES, each attempt
 * to `attemptTimeoutMs`, Retry-After to `maxRetryAfterSec`.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { FrameParser } from './frame-parser.ts';
import {
  OPCODE_BINARY,
  OPCODE_CLOSE,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
  maskedFrame,
  newMask,
  roomPath,
  upgradeRequest,
} from './client-frames.ts';
import type { Target } from './index.ts';
import type { RetryPolicy } from './storm-messages.ts';

/** Largest response head read before the attempt counts as failed ("oversized head"). */
export const MAX_HEAD_BYTES = 8 * 1024;
const HEADER_END = Buffer.from('\r\n\r\n');
const SIO_CONNECT = Buffer.from('40');
const SIO_PONG = Buffer.from('3');
/** One read buffer for every socket of the process (`onread`): a read allocates nothing. */
const readBuffer = Buffer.allocUnsafe(64 * 1024);
const requests = new Map<string, Buffer>();

/**
 * The upgrade request of `room`, built once per process: every client of a
 * room sends the same bytes, Sec-WebSocket-Key included (servers check its
 * form, not that it differs between connections), so an attempt costs no
 * random bytes and no string building.
 */
function requestFor(t: Target, room: string): Buffer {
  const key = `${t.host}:${t.port}${t.path}#${room}`;
  let request = requests.get(key);
  if (request === undefined) {
    request = upgradeRequest(t.host, t.port, roomPath(t.protocol, t.path, room), t.headers);
    requests.set(key, request);
  }
  return request;
}

/** The status and Retry-After of a response head. */
export interface ResponseHead {
  status: number;
  /** Retry-After in whole seconds (delta-seconds form only), undefined when absent or not a number. */
  retryAfterSec: number | undefined;
}

/**
 * Parses an HTTP/1.x response head (status line and headers, without the
 * blank line). Returns null when the status line is not one.
 */
export function parseResponseHead(text: string): ResponseHead | null {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (status === null) return null;
  let retryAfterSec: number | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon).trim().toLowerCase() !== 'retry-after') continue;
    const value = line.slice(colon + 1).trim();
    // RFC 9110 also allows an HTTP date; the servers measured here send seconds.
    if (/^\d{1,9}$/.test(value)) retryAfterSec = Number(value);
  }
  return { status: Number(status[1]), retryAfterSec };
}

/**
 * The wait before retry number `retry` (1 = the first retry): the server's
 * Retry-After (clamped to `maxRetryAfterSec`) when it sent one, else
 * `backoffMs` doubled per retry up to `maxBackoffMs`; plus `random() ×
 * jitterMs` so that refused clients do not come back all at once.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  retry: number,
  retryAfterSec: number | undefined,
  random: () => number = Math.random,
): number {
  const base =
    retryAfterSec !== undefined
      ? Math.min(retryAfterSec, policy.maxRetryAfterSec) * 1000
      : Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** Math.max(0, retry - 1));
  return base + random() * policy.jitterMs;
}

/** Where a storm client reports what happens to it. */
export interface StormSink {
  /** No attempt starts at or after this absolute time (ms). */
  readonly deadlineAt: number;
  attempt(): void;
  refused(status: number, retryAfterSec: number | undefined): void;
  failed(kind: string): void;
  /** Joined: `attemptUs` from this attempt's connect(), `clientUs` from the scheduled start. */
  ready(client: StormClient, attemptUs: number, clientUs: number): void;
  gaveUp(client: StormClient): void;
  closedAfterJoin(client: StormClient): void;
  rollCall(): void;
}

/** Absolute time in ms on the scale every process of the generator shares. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** A storm client: see the module comment. */
export class StormClient extends FrameParser {
  phase: 'waiting' | 'connecting' | 'ready' | 'gave-up' | 'closed' = 'waiting';
  attempts = 0;
  /** Absolute ms of the scheduled first attempt. */
  scheduledAt = 0;
  readyAt = 0;
  private socket: net.Socket | null = null;
  private head: Buffer | null = null;
  private upgraded = false;
  private attemptStart = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly mask = newMask();
  private readonly sio: boolean;

  constructor(
    readonly target: Target,
    readonly room: string,
    readonly localAddress: string | undefined,
    private readonly policy: RetryPolicy,
    private readonly sink: StormSink,
  ) {
    super(8);
    this.sio = target.protocol === 'socketio';
  }

  /** Makes the first attempt now; `scheduledAt` is when it was due. */
  start(scheduledAt: number): void {
    this.scheduledAt = scheduledAt;
    this.attempt();
  }

  private attempt(): void {
    this.timer = null;
    if (this.phase !== 'waiting') return;
    if (nowMs() >= this.sink.deadlineAt) return this.giveUp();
    this.phase = 'connecting';
    this.attempts++;
    this.sink.attempt();
    this.head = Buffer.alloc(0);
    this.upgraded = false;
    this.attemptStart = nowMs();
    const t = this.target;
    const socket = net.connect({
      host: t.host,
      port: t.port,
      noDelay: true,
      ...(this.localAddress !== undefined ? { localAddress: this.localAddress } : {}),
      onread: {
        buffer: readBuffer,
        callback: (n: number, buf: Uint8Array) => {
          if (socket === this.socket) this.onData(buf as Buffer, n);
          return true;
        },
      },
    });
    this.socket = socket;
    this.timer = setTimeout(() => this.fail('timeout'), this.policy.attemptTimeoutMs);
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (socket === this.socket) this.fail(error.code ?? 'error');
    });
    socket.on('close', () => {
      if (socket === this.socket) this.fail('closed');
    });
    socket.write(requestFor(t, this.room));
  }

  /** Bytes [0, n) of `chunk` (the shared read buffer: nothing of it may be kept). */
  private onData(chunk: Buffer, n: number): void {
    if (this.upgraded) {
      this.feed(chunk, 0, n);
      return;
    }
    const head = Buffer.concat([this.head!, chunk.subarray(0, n)]);
    const end = head.indexOf(HEADER_END);
    if (end < 0) {
      if (head.length > MAX_HEAD_BYTES) return this.fail('oversized head');
      this.head = head;
      return;
    }
    this.head = null;
    if (end > MAX_HEAD_BYTES) return this.fail('oversized head');
    const parsed = parseResponseHead(head.toString('latin1', 0, end));
    if (parsed === null) return this.fail('not HTTP');
    if (parsed.status !== 101) return this.refuse(parsed.status, parsed.retryAfterSec);
    this.upgraded = true;
    if (!this.sio) this.joined();
    if (end + 4 < head.length) this.feed(head, end + 4, head.length);
  }

  protected override onFrame(opcode: number, _fin: boolean, prefixLen: number, length: number): void {
    const p = this.prefix;
    if (opcode === OPCODE_PING) {
      this.write(maskedFrame(OPCODE_PONG, Buffer.from(p.subarray(0, prefixLen)), this.mask));
    } else if (opcode === OPCODE_CLOSE) {
      this.fail('closed');
    } else if (opcode === OPCODE_BINARY) {
      if (this.phase === 'ready') this.sink.rollCall();
    } else if (opcode === OPCODE_TEXT) {
      if (!this.sio) {
        if (this.phase === 'ready') this.sink.rollCall();
        return;
      }
      // Engine.IO: 0 = open (answer with the Socket.IO connect), 2 = ping; Socket.IO: 40 = connected, 42 = event.
      if (p[0] === 0x30) this.write(maskedFrame(OPCODE_TEXT, SIO_CONNECT, this.mask));
      else if (p[0] === 0x32 && length === 1) this.write(maskedFrame(OPCODE_TEXT, SIO_PONG, this.mask));
      else if (p[0] === 0x34 && p[1] === 0x30) this.joined();
      else if (p[0] === 0x34 && p[1] === 0x32 && this.phase === 'ready') this.sink.rollCall();
    }
  }

  private joined(): void {
    if (this.phase !== 'connecting') return;
    this.clearTimer();
    this.phase = 'ready';
    const now = nowMs();
    this.readyAt = now;
    this.sink.ready(this, (now - this.attemptStart) * 1000, (now - this.scheduledAt) * 1000);
  }

  private refuse(status: number, retryAfterSec: number | undefined): void {
    this.sink.refused(status, retryAfterSec);
    this.endAttempt();
    this.retryLater(retryAfterSec);
  }

  /** The attempt ended without a join (or the joined connection was lost). */
  private fail(kind: string): void {
    if (this.phase === 'ready') {
      this.endAttempt();
      this.phase = 'closed';
      this.sink.closedAfterJoin(this);
      return;
    }
    if (this.phase !== 'connecting') return;
    this.sink.failed(kind);
    this.endAttempt();
    this.retryLater(undefined);
  }

  private retryLater(retryAfterSec: number | undefined): void {
    this.phase = 'waiting';
    if (this.attempts >= this.policy.maxAttempts) return this.giveUp();
    const delay = retryDelayMs(this.policy, this.attempts, retryAfterSec);
    if (nowMs() + delay >= this.sink.deadlineAt) return this.giveUp();
    this.timer = setTimeout(() => this.attempt(), delay);
  }

  private giveUp(): void {
    this.clearTimer();
    this.phase = 'gave-up';
    this.sink.gaveUp(this);
  }

  private endAttempt(): void {
    this.clearTimer();
    const socket = this.socket;
    this.socket = null;
    this.head = null;
    socket?.destroy();
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private write(frame: Buffer): void {
    if (this.socket !== null && !this.socket.destroyed) this.socket.write(frame);
  }

  /** Ends the client for good: closes its socket and cancels a pending retry. */
  close(): void {
    this.clearTimer();
    if (this.phase === 'waiting' || this.phase === 'connecting') this.phase = 'gave-up';
    else if (this.phase === 'ready') this.phase = 'closed';
    const socket = this.socket;
    this.socket = null;
    socket?.destroy();
  }
}
