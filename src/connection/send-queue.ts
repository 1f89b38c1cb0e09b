/**
 * The bounded send queue of one connection, and the only place that decides
 * what a full queue means (block, drop or close). The connection creates it
 * on the first message that cannot go straight to the socket, so an idle
 * connection holds none.
 */
import type { Writable } from 'node:stream';
import { ConnectionClosedError, QueueFullError, SendTimeoutError } from '../errors.ts';
import type { LatencyHistogram } from '../metrics/latency-histogram.ts';

/** What to do with a message when the connection's send queue is full. */
export type SendBehavior = 'block' | 'drop' | 'close';

/** The settings the queue reads (a subset of ConnectionOptions). */
export interface SendQueueLimits {
  /** Outgoing messages that may wait in the queue. */
  sendQueueSize: number;
  /** Outgoing bytes that may wait in the queue. */
  sendQueueBytes: number;
  sendBehavior: SendBehavior;
}

/**
 * What became of a message handed to a connection, as the hub sees it.
 * QUEUED, DROPPED and CLOSED have the values of SendStatus QUEUED, FULL and CLOSED.
 */
export const Delivery = {
  /** Written or queued. */
  QUEUED: 0,
  /** Not queued: the queue was full and its policy drops (or closes the connection). */
  DROPPED: 1,
  /** The connection is closing or closed. */
  CLOSED: 2,
  /** Not queued: the queue is full and its policy lets the sender wait (`waitAndSend`). */
  WAIT: 3,
} as const;
export type Delivery = (typeof Delivery)[keyof typeof Delivery];

/** The policy's answer for a message a full queue cannot take. */
export const FullAction = { WAIT: 0, DROP: 1, CLOSE: 2 } as const;
export type FullAction = (typeof FullAction)[keyof typeof FullAction];

/** A block-mode send waiting for room in the queue. */
interface Waiter {
  frames: Buffer;
  count: number;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class SendQueue {
  /** Messages waiting. */
  count = 0;
  /** Bytes waiting. */
  bytes = 0;
  /** Messages this queue did not deliver: refused, timed out, or discarded at close. */
  dropped = 0;
  private buffers: Buffer[] = [];
  /** Messages carried by each queued Buffer (a broadcast batch carries several). */
  private counts: number[] = [];
  private waiters: Waiter[] | null = null;
  /** When each queued Buffer joined (performance.now()), kept only while delays are recorded. */
  private readonly since: number[] | null;

  /** `delays`, when given, records how long each queued message waited before reaching the socket. */
  constructor(
    private readonly limits: SendQueueLimits,
    private readonly delays: LatencyHistogram | null = null,
  ) {
    this.since = delays === null ? null : [];
  }

  /** Whether a message may join the queue now: it fits, and no earlier send is waiting. */
  accepts(length: number, count: number): boolean {
    return (this.waiters === null || this.waiters.length === 0) && this.hasRoom(length, count);
  }

  /** An empty queue takes one message of any size; otherwise both bounds apply. */
  private hasRoom(length: number, count: number): boolean {
    if (this.count === 0) return true;
    return (
      this.count + count <= this.limits.sendQueueSize && this.bytes + length <= this.limits.sendQueueBytes
    );
  }

  push(frames: Buffer, count: number): void {
    this.buffers.push(frames);
    this.counts.push(count);
    this.since?.push(performance.now());
    this.count += count;
    this.bytes += frames.length;
  }

  /**
   * The full-queue policy: "drop" and "close" count the message as dropped
   * (the caller closes the connection on CLOSE); "block" leaves it to the
   * sender, which may wait.
   */
  refuse(count: number): FullAction {
    switch (this.limits.sendBehavior) {
      case 'drop':
        this.dropped += count;
        return FullAction.DROP;
      case 'close':
        this.dropped += count;
        return FullAction.CLOSE;
      case 'block':
        return FullAction.WAIT;
    }
  }

  /**
   * Waits up to `timeoutMs` for room, then queues `frames` (once the
   * connection calls `admitOne`). Waiting sends keep their order. Rejects
   * with SendTimeoutError (counted as dropped), QueueFullError when too many
   * sends already wait, or ConnectionClosedError (from `discard`).
   */
  wait(frames: Buffer, timeoutMs: number, count: number): Promise<void> {
    const waiters = (this.waiters ??= []);
    if (waiters.length >= this.limits.sendQueueSize) {
      this.dropped += count;
      return Promise.reject(new QueueFullError());
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        frames,
        count,
        resolve,
        reject,
        timer: setTimeout(() => {
          const index = waiters.indexOf(waiter);
          if (index >= 0) waiters.splice(index, 1);
          this.dropped += count;
          reject(new SendTimeoutError(timeoutMs));
        }, timeoutMs),
      };
      waiters.push(waiter);
    });
  }

  /** Moves the first waiting send into the queue if it fits; returns whether it did. */
  admitOne(): boolean {
    const waiters = this.waiters;
    if (waiters === null || waiters.length === 0) return false;
    const first = waiters[0]!;
    if (!this.hasRoom(first.frames.length, first.count)) return false;
    waiters.shift();
    clearTimeout(first.timer);
    this.push(first.frames, first.count);
    first.resolve();
    return true;
  }

  /**
   * Hands queued Buffers to `socket` until it asks to wait for 'drain';
   * returns true when it did (the socket is stalled).
   */
  writeTo(socket: Writable): boolean {
    const buffers = this.buffers;
    const counts = this.counts;
    let stalled = false;
    let i = 0;
    while (i < buffers.length) {
      const frames = buffers[i]!;
      this.bytes -= frames.length;
      this.count -= counts[i]!;
      i++;
      if (!socket.write(frames)) {
        stalled = true;
        break;
      }
    }
    const since = this.since;
    const delays = this.delays;
    if (since !== null && delays !== null && i > 0) {
      // One clock read per flush; each Buffer counts for the messages it carries.
      const now = performance.now();
      for (let k = 0; k < i; k++) delays.observe((now - since[k]!) / 1000, counts[k] ?? 1);
      since.splice(0, i);
    }
    buffers.splice(0, i);
    counts.splice(0, i);
    return stalled;
  }

  /** Drops everything queued (counted) and rejects every waiting send. */
  discard(): void {
    this.dropped += this.count;
    this.buffers = [];
    this.counts = [];
    this.since?.splice(0);
    this.count = 0;
    this.bytes = 0;
    this.rejectWaiters();
  }

  /** Rejects every waiting send with ConnectionClosedError. */
  rejectWaiters(): void {
    const waiters = this.waiters;
    if (waiters === null) return;
    this.waiters = null;
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new ConnectionClosedError());
    }
  }
}
