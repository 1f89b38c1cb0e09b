/**
 * Pull-style receiving for one connection: `await queue.next()` instead of a
 * callback. Connection handlers are fixed when the connection is created, so
 * the queue is made first and its `handlers` are passed to `dial()`:
 *
 *   const queue = new MessageQueue();
 *   const conn = await dial(url, { handlers: queue.handlers });
 *   await conn.sendText('hi');
 *   const reply = await queue.next(1000); // { data, binary, text }
 *
 * Messages are buffered without bound until taken, so this suits tests and
 * request/response style clients, not firehose consumers.
 */
import type { Connection, ConnectionHandlers } from '../connection/connection.ts';
import { ConnectionClosedError, WshubError } from '../errors.ts';

/** One received message. */
export interface ReceivedMessage {
  data: Buffer;
  binary: boolean;
  /** `data` decoded as UTF-8. */
  readonly text: string;
}

/** `next()` waited `timeoutMs` without a message. */
export class ReceiveTimeoutError extends WshubError {
  constructor(timeoutMs: number) {
    super('RECEIVE_TIMEOUT', `no message within ${timeoutMs} ms`);
  }
}

interface Taker {
  resolve: (message: ReceivedMessage) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** Default wait of `next()`. */
export const DEFAULT_RECEIVE_TIMEOUT = 5_000;

/** Buffers the messages of one connection for `next()` and `for await`. */
export class MessageQueue implements AsyncIterable<ReceivedMessage> {
  private readonly buffered: ReceivedMessage[] = [];
  private readonly takers: Taker[] = [];
  private closeInfo: { code: number; reason: string } | null = null;

  /**
   * Handlers to pass to `dial()` (or a Connection). `forward` handlers, when
   * given, are called as well, after the queue has recorded the event.
   */
  readonly handlers: ConnectionHandlers;

  constructor(forward: ConnectionHandlers = {}) {
    this.handlers = {
      message: (conn, data, binary) => {
        this.push(data, binary);
        return forward.message?.(conn, data, binary);
      },
      close: (conn, code, reason) => {
        this.end(code, reason);
        forward.close?.(conn, code, reason);
      },
      error: (conn: Connection, error: Error) => forward.error?.(conn, error),
    };
  }

  /** Messages received and not yet taken. */
  get size(): number {
    return this.buffered.length;
  }

  /** Close code and reason once the connection is closed, else null. */
  get closed(): { code: number; reason: string } | null {
    return this.closeInfo;
  }

  /**
   * The next message. Rejects with ReceiveTimeoutError after `timeoutMs`, or
   * with ConnectionClosedError once the connection is closed and every
   * buffered message has been taken.
   */
  next(timeoutMs = DEFAULT_RECEIVE_TIMEOUT): Promise<ReceivedMessage> {
    const message = this.buffered.shift();
    if (message !== undefined) return Promise.resolve(message);
    if (this.closeInfo !== null) return Promise.reject(new ConnectionClosedError());
    return new Promise((resolve, reject) => {
      const taker: Taker = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.takers.splice(this.takers.indexOf(taker), 1);
          reject(new ReceiveTimeoutError(timeoutMs));
        }, timeoutMs),
      };
      this.takers.push(taker);
    });
  }

  /** Yields messages until the connection closes (each wait bounded by the default timeout). */
  async *[Symbol.asyncIterator](): AsyncIterator<ReceivedMessage> {
    for (;;) {
      if (this.buffered.length === 0 && this.closeInfo !== null) return;
      try {
        yield await this.next();
      } catch (error) {
        if (error instanceof ConnectionClosedError) return;
        throw error;
      }
    }
  }

  private push(data: Buffer, binary: boolean): void {
    const message: ReceivedMessage = {
      data,
      binary,
      get text() {
        return data.toString('utf8');
      },
    };
    const taker = this.takers.shift();
    if (taker === undefined) {
      this.buffered.push(message);
      return;
    }
    clearTimeout(taker.timer);
    taker.resolve(message);
  }

  private end(code: number, reason: string): void {
    this.closeInfo = { code, reason };
    for (const taker of this.takers.splice(0)) {
      clearTimeout(taker.timer);
      taker.reject(new ConnectionClosedError());
    }
  }
}

/** Shorthand for `new MessageQueue(forward)`. */
export function messageQueue(forward?: ConnectionHandlers): MessageQueue {
  return new MessageQueue(forward);
}
