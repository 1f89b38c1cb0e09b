/**
 * permessage-deflate decompression (RFC 7692 §7.2.2) under bounds.
 *
 * - Size: the read limit applies to the inflated bytes as they come out of
 *   zlib; past it inflation stops at once (the stream is closed, its
 *   buffers dropped) and the message fails with 1009.
 * - Concurrency: inflation runs on zlib's thread pool, at most
 *   `InflateGate.slots` messages at a time for the whole process. A
 *   connection whose message waits for a slot stops reading (its parser and
 *   socket are paused), so the wait list holds at most one entry per
 *   connection and never a queue of jobs.
 * - Memory: no inflate context exists while a connection is idle. One is
 *   created for a message and closed after it, unless the peer compresses
 *   with context takeover, in which case it must live as long as the
 *   connection (RFC 7692 §7.2.3).
 */
import { availableParallelism } from 'node:os';
import { constants, createInflateRaw, type InflateRaw } from 'node:zlib';
import { CloseCode, ProtocolError } from './close.ts';
import { DEFLATE_TAIL } from './deflate.ts';
import type { InboundAccounting } from './parser.ts';

/** Output chunk of the inflater: also the most a bomb gets past the limit before it is stopped. */
const INFLATE_CHUNK = 16 * 1024;

/**
 * A process-wide bound on messages being inflated at once. Waiters are
 * served first come, first served; each connection waits with at most one
 * message.
 */
export class InflateGate {
  private running = 0;
  private readonly waiting: Array<(() => void) | null> = [];
  private head = 0;

  constructor(readonly slots: number) {}

  /** Messages being inflated now. */
  get active(): number {
    return this.running;
  }

  /** Connections waiting for a slot. */
  get queued(): number {
    return this.waiting.length - this.head;
  }

  /**
   * Runs `start` now or once a slot is free. Returns a cancel function for
   * when the waiter goes away first (it is then never started).
   */
  acquire(start: () => void): () => void {
    if (this.running < this.slots) {
      this.running++;
      start();
      return noop;
    }
    const index = this.waiting.length;
    this.waiting.push(start);
    return () => {
      if (this.waiting[index] === start) this.waiting[index] = null;
    };
  }

  /** Gives a slot back and starts the next waiter. */
  release(): void {
    this.running--;
    while (this.head < this.waiting.length) {
      const next = this.waiting[this.head];
      this.waiting[this.head++] = null;
      if (this.head === this.waiting.length) {
        this.waiting.length = 0;
        this.head = 0;
      }
      if (next !== null && next !== undefined) {
        this.running++;
        next();
        return;
      }
    }
  }
}

function noop(): void {}

/** Slots of the default gate: zlib's work runs on libuv's pool (4 threads unless configured). */
export const DEFAULT_INFLATE_SLOTS = Math.max(2, Math.min(4, availableParallelism()));

/** The gate every connection shares unless given another. */
export const defaultInflateGate = new InflateGate(DEFAULT_INFLATE_SLOTS);

/** Called once per message: the inflated bytes, or the protocol error that ends the connection. */
export type InflateCallback = (error: ProtocolError | null, data: Buffer | null) => void;

type Inflating = InflateRaw & { [STATE]?: MessageInflater };
const STATE = Symbol('wshub.inflater');

/**
 * Inflates the messages of one connection, one at a time. Holds no zlib
 * context between messages unless the peer uses context takeover.
 */
export class MessageInflater {
  private stream: Inflating | null = null;
  private chunks: Buffer[] = [];
  private total = 0;
  private limit = 0;
  private callback: InflateCallback | null = null;
  private cancelWait: (() => void) | null = null;
  private holdsSlot = false;
  /** Bytes handed to the current stream; zlib's `bytesWritten` falls short when a final block ended it. */
  private written = 0;
  /** Bytes of the compressed message reserved from `accounting` until it is inflated or dropped. */
  private reserved = 0;
  private accounting: InboundAccounting | undefined = undefined;

  constructor(
    private readonly windowBits: number,
    private readonly noContextTakeover: boolean,
    private readonly gate: InflateGate = defaultInflateGate,
  ) {}

  /** Whether a zlib context is held now (for tests and memory accounting). */
  get holdsContext(): boolean {
    return this.stream !== null;
  }

  /** Whether a message is waiting for a slot or being inflated. */
  get busy(): boolean {
    return this.callback !== null;
  }

  /**
   * Inflates one message's payload (without the removed tail). `limit` bounds
   * the inflated size (0 = none). `done` is called exactly once, unless
   * `dispose` comes first. The payload's bytes are reserved from
   * `accounting` while it waits and inflates; false (nothing started) when
   * the budget cannot take them.
   */
  inflate(payload: Buffer, limit: number, done: InflateCallback, accounting?: InboundAccounting): boolean {
    if (accounting !== undefined) {
      if (!accounting.reserve(payload.length)) return false;
      this.accounting = accounting;
      this.reserved = payload.length;
    }
    this.callback = done;
    this.limit = limit;
    this.total = 0;
    this.cancelWait = this.gate.acquire(() => {
      this.cancelWait = null;
      this.holdsSlot = true;
      this.run(payload);
    });
    return true;
  }

  private run(payload: Buffer): void {
    let stream = this.stream;
    if (stream === null) {
      stream = createInflateRaw({
        // An 8-bit window is read with 9: a superset, and what zlib's raw inflate accepts everywhere.
        windowBits: Math.max(this.windowBits, 9),
        chunkSize: INFLATE_CHUNK,
      });
      stream[STATE] = this;
      stream.on('data', onInflateData);
      stream.on('error', onInflateError);
      this.stream = stream;
      this.written = 0;
    }
    this.written += payload.length + DEFLATE_TAIL.length;
    stream.write(payload);
    stream.write(DEFLATE_TAIL);
    stream.flush(constants.Z_SYNC_FLUSH, () => this.flushed(stream));
  }

  /** @internal zlib output. */
  data(chunk: Buffer): void {
    if (this.callback === null) return;
    this.total += chunk.length;
    if (this.limit > 0 && this.total > this.limit) {
      this.finish(
        new ProtocolError(CloseCode.MESSAGE_TOO_BIG, `inflated message exceeds ${this.limit} bytes`),
      );
      return;
    }
    this.chunks.push(chunk);
  }

  /** @internal zlib error: the compressed data is invalid. */
  failed(error: Error): void {
    if (this.callback === null) return;
    this.finish(new ProtocolError(CloseCode.INVALID_PAYLOAD, `invalid compressed data: ${error.message}`));
  }

  private flushed(stream: Inflating): void {
    if (this.callback === null || stream !== this.stream) return;
    // A block with BFINAL set ends zlib's stream (RFC 7692 §7.2.3.4 allows it):
    // the appended tail stays unread, and the next message needs a new stream.
    // Anything more than the tail unread is data after the end: invalid.
    const unread = this.written - stream.bytesWritten;
    if (unread > DEFLATE_TAIL.length) {
      this.finish(
        new ProtocolError(CloseCode.INVALID_PAYLOAD, 'compressed data after a final DEFLATE block'),
      );
      return;
    }
    if (unread > 0) this.closeStream();
    this.finish(null);
  }

  private finish(error: ProtocolError | null): void {
    const done = this.callback!;
    this.callback = null;
    const chunks = this.chunks;
    this.chunks = [];
    const data =
      error === null ? (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.total)) : null;
    if (error !== null || this.noContextTakeover) this.closeStream();
    this.releaseSlot();
    done(error, data);
  }

  private releaseSlot(): void {
    if (this.reserved > 0) {
      this.accounting?.release(this.reserved);
      this.reserved = 0;
    }
    if (!this.holdsSlot) return;
    this.holdsSlot = false;
    this.gate.release();
  }

  private closeStream(): void {
    const stream = this.stream;
    if (stream === null) return;
    this.stream = null;
    stream[STATE] = undefined;
    // Errors from a stream being torn down mid-write are no longer anyone's.
    stream.removeListener('data', onInflateData);
    stream.close();
  }

  /** Drops everything: a waiting or running message is abandoned (its callback never runs). */
  dispose(): void {
    this.callback = null;
    this.chunks = [];
    this.cancelWait?.();
    this.cancelWait = null;
    this.closeStream();
    this.releaseSlot();
  }
}

function onInflateData(this: Inflating, chunk: Buffer): void {
  this[STATE]?.data(chunk);
}

function onInflateError(this: Inflating, error: Error): void {
  this[STATE]?.failed(error);
}
