/**
 * One WebSocket connection over an upgraded `net.Socket`: the frame parser,
 * the bounded send queue, the heartbeat and the close handshake.
 *
 * Memory matters here (tens of thousands of idle connections): socket
 * listeners are shared functions that find the connection through a symbol
 * on the socket, the parser and queue are created on first use, and the
 * heartbeat is a shared sweep rather than a timer per connection.
 */
import type { Socket } from 'node:net';
import type { UserInfo } from '../auth/user.ts';
import { DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_PING_RATE } from '../config.ts';
import { CloseError, ConnectionClosedError, QueueFullError } from '../errors.ts';
import { joinSweep, type Sweeper } from './heartbeat.ts';
import { CloseCode, ProtocolError } from '../protocol/close.ts';
import {
  EMPTY_PING,
  Opcode,
  closePayload,
  encodeFrame,
  encodeMessage,
  randomMask,
  type DataOpcode,
} from '../protocol/frame.ts';
import { FrameParser, type ParserHandlers } from '../protocol/parser.ts';
import type { DeflateSession } from '../protocol/deflate.ts';
import { MessageInflater, type InflateGate } from '../protocol/inflate.ts';
import { Utf8Validator } from '../protocol/utf8.ts';
import type { ResourceGuard } from './resource-guard.ts';
import { InboundRate, type InboundRateLimit } from './inbound-rate.ts';
import { Delivery, FullAction, SendQueue, type SendBehavior } from './send-queue.ts';

export type { SendBehavior } from './send-queue.ts';
export {
  DEFAULT_MAX_FRAGMENTS,
  DEFAULT_MAX_PING_RATE,
  MAX_READ_LIMIT,
  defaultConnectionOptions,
} from '../config.ts';

/** Close code used when a slow consumer is disconnected under `sendBehavior: 'close'`. */
export const SLOW_CONSUMER_CLOSE_CODE = CloseCode.SLOW_CONSUMER;

export interface ConnectionOptions {
  /** Largest incoming message in bytes (across fragments). */
  readLimit: number;
  /** Outgoing messages that may wait in the send queue. */
  sendQueueSize: number;
  /** Outgoing bytes that may wait in the send queue. */
  sendQueueBytes: number;
  sendBehavior: SendBehavior;
  /** How long a "block" send waits for room in the queue (ms). */
  sendTimeout: number;
  /** How long the socket may stay unable to take more data before it is dropped (ms, 0 = no bound). */
  writeTimeout: number;
  /** Interval between pings (ms, 0 = never ping). */
  pingPeriod: number;
  /** How long to wait for the pong (ms). */
  pongWait: number;
  /** How long to wait for the peer's close frame after sending ours (ms). */
  closeTimeout: number;
  /** Messages larger than this are sent as several frames (0 = never fragment). */
  fragmentSize: number;
  /** Most frames one incoming message may be split into; more closes with 1009 (0 = no limit). */
  maxFragments?: number;
  /** Pings the peer may send per second; more closes with 1008 (0 = no limit). */
  maxPingRate?: number;
  /**
   * Bytes that may wait to go out (send queue plus socket buffer) before the
   * connection is destroyed at once (0 = no cap; unset = 2 × sendQueueBytes).
   */
  maxOutboundBytes?: number;
  /** Budget for incomplete messages and abuse counters shared by a server's connections. */
  guard?: ResourceGuard | undefined;
  /** Close code and reason for a full queue under sendBehavior "close" (default 1008 "send queue full"). */
  slowConsumerClose?: { code: number; reason: string } | undefined;
  /** Where compressed messages wait for a zlib slot (default: the process-wide gate). */
  inflateGate?: InflateGate | undefined;
  /** Messages the peer may send per second; more closes the connection (0 or unset = no limit). */
  maxMessagesPerSec?: number;
  /** Bytes the peer may send per second, frame headers included; more closes it (0 or unset = no limit). */
  maxBytesPerSec?: number;
  /** Close code and reason when an inbound rate is passed (default 1008 "message rate exceeded"). */
  rateLimitClose?: { code: number; reason: string } | undefined;
}

/** Length of the window pings are counted in (ms). */
const PING_WINDOW_MS = 1_000;

/**
 * Callbacks shared by many connections (one object, not one per connection).
 * `message` may return a promise; a thrown or rejected CloseError closes the
 * connection with its code, any other error with 1011.
 */
export interface ConnectionHandlers {
  message?(conn: Connection, data: Buffer, binary: boolean): void | Promise<void>;
  /** Called once, after the TCP connection is gone. */
  close?(conn: Connection, code: number, reason: string): void;
  /** Protocol errors, handler errors and socket errors, for logging. */
  error?(conn: Connection, error: Error): void;
}

/** Result of a non-blocking send. */
export const SendStatus = {
  QUEUED: 0,
  /** Queue full: the message was not queued (and under "close" the connection is closing). */
  FULL: 1,
  /** The connection is closing or closed. */
  CLOSED: 2,
} as const;
export type SendStatus = (typeof SendStatus)[keyof typeof SendStatus];

const OPEN = 0;
const CLOSING = 1;
const CLOSED = 2;

/** Bytes a peer may still send after its close frame or a protocol error before reading stops. */
const MAX_IGNORED_BYTES = 64 * 1024;

/** Connection state as seen from outside. */
export type ConnectionState = 'open' | 'closing' | 'closed';

const CONN = Symbol('wshub.connection');
type ConnSocket = Socket & { [CONN]?: Connection };

let nextId = 1;
const EMPTY = Buffer.alloc(0);

export class Connection implements ParserHandlers {
  /** Process-unique id. */
  readonly id = nextId++;
  /** The user the connection authenticated as, if any. */
  user: UserInfo | undefined = undefined;
  /** The room the hub put this connection in, if any. */
  room: string | undefined = undefined;
  /**
   * The client's address as the server's limits count it: the peer, or the
   * address a trusted proxy forwarded (see `trustedProxies`). Unset for
   * connections not made by a server's upgrade.
   */
  clientAddress: string | undefined = undefined;
  /**
   * Set by the hub this connection joined: writes the hub's broadcasts of
   * this turn, so a direct send or a close never overtakes a broadcast
   * issued earlier in the same turn.
   */
  beforeDirectWrite: (() => void) | null = null;

  private state = OPEN;
  private parser: FrameParser | null = null;
  /** Created when the first message cannot go straight to the socket. */
  private queue: SendQueue | null = null;
  private flushScheduled = false;
  private stalledSince = 0;
  private nextPingAt: number;
  private pongDeadline = 0;
  private closeTimer: NodeJS.Timeout | null = null;
  private sentCloseCode: number | undefined = undefined;
  private receivedClose = false;
  private closeCode: number = CloseCode.ABNORMAL;
  private closeReason = '';
  /** Start of the current ping counting window, and pings seen in it. */
  private pingWindowStart = 0;
  private pingCount = 0;
  /** Payload of the latest ping still owed a pong (only the latest is answered). */
  private pendingPong: Buffer | null = null;
  private sweeper: Sweeper | null;
  private meta: Map<string, unknown> | null = null;
  private closedWaiters: Array<(info: { code: number; reason: string }) => void> | null = null;
  /** Inflates the peer's compressed messages; exists only while one is inflated, or for context takeover. */
  private inflater: MessageInflater | null = null;
  /** Inbound message and byte rates; null when neither is limited. */
  private rate: InboundRate | null;

  /**
   * Takes over an upgraded socket. `head` is any data that arrived after the
   * handshake request; `protocol` the selected subprotocol.
   */
  constructor(
    readonly socket: Socket,
    readonly options: ConnectionOptions,
    readonly handlers: ConnectionHandlers,
    readonly protocol: string | undefined = undefined,
    head?: Buffer,
    /** A client masks every frame it sends and expects unmasked frames. */
    readonly role: 'server' | 'client' = 'server',
    /**
     * permessage-deflate as agreed in the handshake (shared by every
     * connection with the same agreement), or null.
     */
    readonly deflate: DeflateSession | null = null,
  ) {
    const s = socket as ConnSocket;
    s[CONN] = this;
    socket.setTimeout(0);
    socket.setNoDelay(true);
    socket.on('data', onSocketData);
    socket.on('drain', onSocketDrain);
    socket.on('error', onSocketError);
    socket.on('end', onSocketEnd);
    socket.on('close', onSocketClose);
    // An upgrade path may have paused the socket to keep early bytes for us.
    socket.resume();
    this.nextPingAt = performance.now() + options.pingPeriod;
    const messages = options.maxMessagesPerSec ?? 0;
    const bytes = options.maxBytesPerSec ?? 0;
    this.rate = messages > 0 || bytes > 0 ? new InboundRate(messages, bytes) : null;
    this.sweeper = joinSweep(this, options);
    if (head !== undefined && head.length > 0) this.receive(head);
  }

  /** Free-form per-connection data for the application. */
  get metadata(): Map<string, unknown> {
    return (this.meta ??= new Map());
  }

  get readyState(): ConnectionState {
    return this.state === OPEN ? 'open' : this.state === CLOSING ? 'closing' : 'closed';
  }

  get isOpen(): boolean {
    return this.state === OPEN;
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  /** Messages waiting in the send queue (not yet handed to the socket). */
  get queuedMessages(): number {
    return this.queue === null ? 0 : this.queue.count;
  }

  /** Bytes waiting in the send queue plus bytes buffered by the socket. */
  get bufferedBytes(): number {
    return (this.queue === null ? 0 : this.queue.bytes) + this.socket.writableLength;
  }

  /** Messages not delivered: refused by a full queue, timed out waiting, or discarded at close. */
  get dropped(): number {
    return this.queue === null ? 0 : this.queue.dropped;
  }

  // ---- sending -----------------------------------------------------------

  /** Sends a text message. Resolves once queued; see `sendBehavior` for a full queue. */
  sendText(text: string): Promise<void> {
    return this.sendEncoded(this.encode(Opcode.TEXT, text));
  }

  /** Sends a binary message (the bytes are copied; the caller may reuse its buffer). */
  sendBinary(data: Uint8Array): Promise<void> {
    return this.sendEncoded(this.encode(Opcode.BINARY, data));
  }

  /** Sends `value` as JSON text. */
  sendJSON(value: unknown): Promise<void> {
    return this.sendText(JSON.stringify(value));
  }

  /** Sends a message with the given opcode. */
  send(opcode: DataOpcode, data: Uint8Array | string): Promise<void> {
    return this.sendEncoded(this.encode(opcode, data));
  }

  /**
   * Encodes a message for this side of the connection (clients mask every
   * frame), compressed when deflate was agreed and it reaches the threshold.
   */
  private encode(opcode: DataOpcode, data: Uint8Array | string): Buffer {
    const mask = this.role === 'client' ? randomMask : undefined;
    const deflate = this.deflate;
    if (deflate !== null) {
      const compressor = deflate.compressor;
      const length = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
      if (compressor.wants(length)) {
        return encodeMessage(opcode, compressor.compress(data), this.options.fragmentSize, mask, true);
      }
    }
    return encodeMessage(opcode, data, this.options.fragmentSize, mask);
  }

  /** Encodes a control frame for this side of the connection. */
  private control(opcode: number, payload: Uint8Array): Buffer {
    return this.role === 'client'
      ? encodeFrame(opcode, payload, { mask: randomMask() })
      : encodeFrame(opcode, payload);
  }

  /** Queues an encoded frame; a full queue answers as its policy says. */
  private sendEncoded(frame: Buffer): Promise<void> {
    this.beforeDirectWrite?.();
    const delivery = this.deliver(frame, 1, false);
    if (delivery === Delivery.QUEUED) return Promise.resolve();
    if (delivery === Delivery.CLOSED) return Promise.reject(new ConnectionClosedError());
    if (delivery === Delivery.WAIT) return this.waitAndSend(frame, this.options.sendTimeout);
    return Promise.reject(new QueueFullError());
  }

  /**
   * Queues an already encoded frame without copying it; the same Buffer may
   * be passed to many connections and must not be modified afterwards.
   * Never waits: under "block" a full queue returns FULL and the caller may
   * `waitAndSend`; under "drop" the message is counted as dropped; under
   * "close" the connection is closed with SLOW_CONSUMER_CLOSE_CODE.
   */
  sendFrame(frame: Buffer): SendStatus {
    return this.sendFrames(frame, 1, false);
  }

  /**
   * Like sendFrame, for a Buffer holding `count` complete frames (a
   * broadcast batch). With `whole` set, the Buffer is everything this tick
   * has for the connection, so it is written at once without corking.
   */
  sendFrames(frames: Buffer, count: number, whole: boolean): SendStatus {
    const delivery = this.deliver(frames, count, whole);
    return delivery === Delivery.WAIT ? SendStatus.FULL : delivery;
  }

  /**
   * The send path shared by every sender (the hub calls it directly): the
   * socket directly when nothing waits, else the queue, else the queue's
   * full-queue policy.
   */
  deliver(frames: Buffer, count: number, whole: boolean): Delivery {
    if (this.state !== OPEN) return Delivery.CLOSED;
    const socket = this.socket;
    const queue = this.queue;
    if ((queue === null || queue.count === 0) && !socket.writableNeedDrain) {
      if (!whole) this.cork();
      // Not checked against maxOutboundBytes: the socket was not backed up, so
      // this adds one message (or one turn's batch) past its high-water mark,
      // as an empty queue takes one message of any size; what follows is queued.
      if (!socket.write(frames)) this.stalledSince = performance.now();
      return Delivery.QUEUED;
    }
    const q = queue ?? (this.queue = this.newQueue());
    if (q.accepts(frames.length, count)) {
      q.push(frames, count);
      return this.overflowed() ? Delivery.CLOSED : Delivery.QUEUED;
    }
    const action = q.refuse(count);
    if (action === FullAction.WAIT) return Delivery.WAIT;
    // Messages already accepted still go out, ahead of the close frame.
    if (action === FullAction.CLOSE) {
      const slow = this.options.slowConsumerClose;
      this.close(slow?.code ?? SLOW_CONSUMER_CLOSE_CODE, slow?.reason ?? 'send queue full');
    }
    return Delivery.DROPPED;
  }

  /**
   * Destroys the connection, without a close handshake, when the bytes
   * waiting to go out pass `maxOutboundBytes`: whatever got them there, a
   * peer that does not read must not make the server hold more. Called
   * only where bytes were just added to a socket that is backed up.
   */
  private overflowed(): boolean {
    const options = this.options;
    const cap = options.maxOutboundBytes ?? 2 * options.sendQueueBytes;
    if (cap <= 0) return false;
    const waiting = this.bufferedBytes;
    if (waiting <= cap || this.socket.destroyed) return false;
    if (options.guard !== undefined) options.guard.outboundOverflowCloses++;
    this.handlers.error?.(this, new Error(`outbound bytes ${waiting} over the cap of ${cap}`));
    // No close frame: it would only wait behind the bytes the peer does not read.
    if (this.state === OPEN) this.state = CLOSING;
    this.discardQueue();
    this.pendingPong = null;
    this.socket.destroy();
    return true;
  }

  /**
   * Waits up to `timeoutMs` for room in the queue, then queues `frame`.
   * Waiting sends keep their order. Rejects with SendTimeoutError (counted as
   * dropped), QueueFullError when too many sends already wait, or
   * ConnectionClosedError.
   */
  waitAndSend(frame: Buffer, timeoutMs: number, count = 1): Promise<void> {
    if (this.state !== OPEN) return Promise.reject(new ConnectionClosedError());
    return (this.queue ??= this.newQueue()).wait(frame, timeoutMs, count);
  }

  /** The send queue, recording its delays when the server's metrics ask for them. */
  private newQueue(): SendQueue {
    return new SendQueue(this.options, this.options.guard?.queueDelay ?? null);
  }

  /** Moves waiting block-mode sends into the queue while there is room. */
  private admitWaiters(queue: SendQueue): void {
    while (queue.admitOne()) if (this.overflowed()) return;
  }

  /** Batches every write of this tick into one syscall. */
  private cork(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.socket.cork();
    process.nextTick(uncork, this);
  }

  /** @internal Ends the tick's batch. */
  uncork(): void {
    this.flushScheduled = false;
    this.socket.uncork();
  }

  /** Hands queued frames to the socket until it asks us to wait for 'drain'. */
  private flush(): void {
    this.stalledSince = 0;
    const queue = this.queue;
    if (queue !== null) {
      if (queue.count > 0) {
        this.cork();
        if (queue.writeTo(this.socket)) this.stalledSince = performance.now();
      }
      this.admitWaiters(queue);
    }
    if (this.state === CLOSING && this.queuedMessages === 0 && this.pendingCloseFrame !== null) {
      const frame = this.pendingCloseFrame;
      this.pendingCloseFrame = null;
      this.writeNow(frame);
    }
  }

  /** @internal Socket drained. */
  drained(): void {
    if (this.state === CLOSED) return;
    const pong = this.pendingPong;
    if (pong !== null) {
      this.pendingPong = null;
      if (this.state === OPEN) this.writeNow(this.control(Opcode.PONG, pong));
    }
    this.flush();
  }

  /** Writes a control frame ahead of the send queue. */
  private writeNow(frame: Buffer): void {
    if (this.socket.destroyed) return;
    this.cork();
    if (!this.socket.write(frame)) {
      if (this.stalledSince === 0) this.stalledSince = performance.now();
      this.overflowed();
    }
  }

  private discardQueue(): void {
    this.queue?.discard();
  }

  /** Sends a ping (payload ≤ 125 bytes). */
  ping(payload: Uint8Array = Buffer.alloc(0)): void {
    if (this.state !== OPEN) return;
    this.writeNow(
      payload.length === 0 && this.role === 'server' ? EMPTY_PING : this.control(Opcode.PING, payload),
    );
  }

  // ---- closing -----------------------------------------------------------

  private pendingCloseFrame: Buffer | null = null;

  /**
   * Starts the close handshake: queued messages are sent first, then a close
   * frame; the TCP connection ends when the peer answers or after
   * `closeTimeout`. Throws RangeError for an invalid code or a reason over 123 bytes.
   */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    const payload = closePayload(code, reason);
    if (this.state !== OPEN) return;
    this.beforeDirectWrite?.();
    this.startClosing(code, this.control(Opcode.CLOSE, payload));
  }

  /** Resolves with the close code and reason once the connection is closed. */
  closed(): Promise<{ code: number; reason: string }> {
    if (this.state === CLOSED) return Promise.resolve({ code: this.closeCode, reason: this.closeReason });
    return new Promise((resolve) => (this.closedWaiters ??= []).push(resolve));
  }

  /**
   * Gives the socket back untouched (used when a join fails after the
   * Connection was created but before the 101 was written).
   */
  detach(): void {
    const socket = this.socket as ConnSocket;
    socket.off('data', onSocketData);
    socket.off('drain', onSocketDrain);
    socket.off('error', onSocketError);
    socket.off('end', onSocketEnd);
    socket.off('close', onSocketClose);
    delete socket[CONN];
    this.state = CLOSED;
    this.parser?.dispose();
    this.parser = null;
    this.dropInflater();
    this.sweeper?.delete(this);
  }

  /** Destroys the TCP connection at once, without a close handshake. */
  terminate(): void {
    this.socket.destroy();
  }

  private startClosing(code: number | undefined, frame: Buffer): void {
    this.state = CLOSING;
    this.sentCloseCode = code;
    this.queue?.rejectWaiters();
    if (this.queuedMessages > 0) this.pendingCloseFrame = frame;
    else this.writeNow(frame);
    if (this.receivedClose) {
      if (!this.socket.writableEnded) this.socket.end();
    }
    this.armCloseTimer();
  }

  private armCloseTimer(): void {
    if (this.closeTimer !== null || this.socket.destroyed) return;
    this.closeTimer = setTimeout(destroySocket, this.options.closeTimeout, this.socket);
    this.closeTimer.unref();
  }

  /** Fails the connection: close frame with `code`, then end TCP without waiting for the peer. */
  private fail(code: number, reason: string): void {
    if (this.state === CLOSED) return;
    if (this.state === OPEN) {
      this.discardQueue();
      this.state = CLOSING;
      this.sentCloseCode = code;
      this.writeNow(this.control(Opcode.CLOSE, closePayload(code, truncateReason(reason))));
    }
    // Nothing the peer sends from now on changes the outcome: a flooding peer
    // must not keep the parser busy (or holding a partial message) until the socket closes.
    this.parser?.dispose();
    this.dropInflater();
    if (!this.socket.writableEnded) this.socket.end();
    this.armCloseTimer();
  }

  // ---- receiving ---------------------------------------------------------

  /** @internal Feeds socket data to the parser. */
  receive(chunk: Buffer): void {
    const parser = (this.parser ??= new FrameParser(this, {
      maxMessageSize: this.options.readLimit,
      expectMasked: this.role === 'server',
      maxFragments: this.options.maxFragments ?? DEFAULT_MAX_FRAGMENTS,
      accounting: this.options.guard,
      allowCompressed: this.deflate !== null,
    }));
    if (this.rate !== null && this.state === OPEN && this.rate.received(chunk.length) !== null) {
      this.rateExceeded('bytes');
      return;
    }
    parser.push(chunk);
    // A message is being inflated: whoever resumed the socket meanwhile, nothing more is read until it is done.
    if (parser.isPaused) this.socket.pause();
    // After a close frame or a protocol error the peer has nothing more to
    // say; one that keeps sending would have us read and discard at line
    // rate until closeTimeout destroys the socket. Reading stops instead
    // (destroying now could reset the connection before our close frame is read).
    if (parser.ignoredBytes > MAX_IGNORED_BYTES) this.socket.pause();
  }

  /** @internal ParserHandlers */
  onMessage(opcode: DataOpcode, data: Buffer, compressed = false): void {
    const handlers = this.handlers;
    if (handlers.message === undefined || this.state === CLOSED) return;
    // Counted before any inflation: a flood of compressed messages costs no zlib work past the rate.
    if (this.rate !== null && this.state === OPEN && this.rate.message() !== null) {
      this.rateExceeded('messages');
      return;
    }
    if (compressed) return this.inflate(opcode, data);
    this.handOver(opcode, data);
  }

  /** Gives a complete (inflated) message to the application handler. */
  private handOver(opcode: DataOpcode, data: Buffer): void {
    const handlers = this.handlers;
    if (handlers.message === undefined || this.state === CLOSED) return;
    try {
      const result = handlers.message(this, data, opcode === Opcode.BINARY);
      if (result !== undefined) result.catch((error: unknown) => this.handlerFailed(error));
    } catch (error) {
      this.handlerFailed(error);
    }
  }

  /**
   * Inflates a compressed message: the parser and the socket wait (no
   * further reading) until it is done, so a connection has at most one
   * message in zlib or waiting for it.
   */
  private inflate(opcode: DataOpcode, data: Buffer): void {
    const session = this.deflate;
    const parser = this.parser;
    if (session === null || parser === null || this.state === CLOSED) return;
    const inflater = (this.inflater ??= new MessageInflater(
      session.inflateWindowBits,
      session.inflateNoContextTakeover,
      this.options.inflateGate,
    ));
    parser.pause();
    this.socket.pause();
    const started = inflater.inflate(
      data,
      this.options.readLimit,
      (error, out) => this.inflated(parser, opcode, error, out),
      this.options.guard,
    );
    if (!started) {
      this.handlers.error?.(this, new ProtocolError(CloseCode.BUDGET_EXHAUSTED, 'inflate budget spent'));
      this.fail(CloseCode.BUDGET_EXHAUSTED, 'server is short of memory for incomplete messages');
    }
  }

  private inflated(
    parser: FrameParser,
    opcode: DataOpcode,
    error: ProtocolError | null,
    data: Buffer | null,
  ): void {
    if (this.parser !== parser) return;
    if (this.deflate?.inflateNoContextTakeover === true) this.inflater = null;
    if (error === null && opcode === Opcode.TEXT && !Utf8Validator.validate(data!)) {
      error = new ProtocolError(CloseCode.INVALID_PAYLOAD, 'invalid UTF-8 in text message');
    }
    if (error !== null) this.onError(error);
    else {
      this.handOver(opcode, data!);
      if (this.parser === parser) parser.resume();
    }
    // Reading goes on (the peer's close frame and FIN must be seen) unless another message waits for zlib.
    if (!parser.isPaused && this.state !== CLOSED) this.socket.resume();
  }

  /** Abandons any message in zlib and frees the inflate context. */
  private dropInflater(): void {
    const inflater = this.inflater;
    if (inflater === null) return;
    this.inflater = null;
    inflater.dispose();
  }

  /** The peer passed an inbound rate: counted, then the connection fails with the configured code. */
  private rateExceeded(limit: InboundRateLimit): void {
    const guard = this.options.guard;
    if (guard !== undefined) {
      if (limit === 'messages') guard.messageRateCloses++;
      else guard.byteRateCloses++;
    }
    const per = limit === 'messages' ? this.options.maxMessagesPerSec : this.options.maxBytesPerSec;
    this.handlers.error?.(this, new Error(`inbound rate: more than ${per} ${limit} in a second`));
    const close = this.options.rateLimitClose;
    this.fail(close?.code ?? CloseCode.POLICY_VIOLATION, close?.reason ?? `${limit} rate exceeded`);
  }

  private handlerFailed(error: unknown): void {
    if (error instanceof CloseError) {
      this.closeWith(error.closeCode, error.reason);
      return;
    }
    this.handlers.error?.(this, error instanceof Error ? error : new Error(String(error)));
    this.closeWith(CloseCode.INTERNAL_ERROR, 'internal error');
  }

  /** Closes with a code from application code, falling back to 1011 for an invalid one. */
  private closeWith(code: number, reason: string): void {
    try {
      this.close(code, truncateReason(reason));
    } catch {
      this.close(CloseCode.INTERNAL_ERROR, '');
    }
  }

  /** @internal */
  onPing(payload: Buffer): void {
    if (this.state !== OPEN) return;
    const rate = this.options.maxPingRate ?? DEFAULT_MAX_PING_RATE;
    if (rate > 0) {
      const now = performance.now();
      if (now - this.pingWindowStart >= PING_WINDOW_MS) {
        this.pingWindowStart = now;
        this.pingCount = 0;
      }
      if (++this.pingCount > rate) {
        const guard = this.options.guard;
        if (guard !== undefined) guard.pingFloodCloses++;
        this.handlers.error?.(this, new Error(`ping flood: more than ${rate} pings in a second`));
        this.fail(CloseCode.POLICY_VIOLATION, 'too many pings');
        return;
      }
    }
    // Only the latest ping needs an answer (RFC 6455 §5.5.3), and a pong
    // written into a socket the peer does not read would pile up unbounded.
    if (this.pendingPong !== null || this.socket.writableNeedDrain) {
      this.pendingPong = Buffer.from(payload);
      return;
    }
    this.writeNow(this.control(Opcode.PONG, payload));
  }

  /** @internal */
  onPong(_payload: Buffer): void {
    this.pongDeadline = 0;
  }

  /** @internal The peer's close frame. */
  onClose(code: number | undefined, reason: string): void {
    this.receivedClose = true;
    this.closeCode = code ?? CloseCode.NO_STATUS;
    this.closeReason = reason;
    if (this.state === OPEN) {
      // Echo the peer's code and reason (an empty close is answered with an empty close).
      this.discardQueue();
      this.startClosing(code, this.control(Opcode.CLOSE, closePayload(code, reason)));
    } else {
      if (!this.socket.writableEnded) this.socket.end();
    }
  }

  /** @internal */
  onError(error: ProtocolError): void {
    this.handlers.error?.(this, error);
    this.fail(error.closeCode, error.message);
  }

  // ---- heartbeat ---------------------------------------------------------

  /** @internal Called by the shared sweep. */
  sweep(now: number): void {
    const { pingPeriod, pongWait, writeTimeout } = this.options;
    if (writeTimeout > 0 && this.stalledSince > 0 && now - this.stalledSince > writeTimeout) {
      this.handlers.error?.(this, new Error(`write timed out after ${writeTimeout} ms`));
      this.socket.destroy();
      return;
    }
    if (pingPeriod <= 0 || this.state !== OPEN) return;
    if (this.pongDeadline > 0) {
      if (now > this.pongDeadline) {
        this.handlers.error?.(this, new Error(`no pong within ${pongWait} ms`));
        this.socket.destroy();
      }
      return;
    }
    if (now >= this.nextPingAt) {
      this.nextPingAt = now + pingPeriod;
      this.pongDeadline = now + pongWait;
      this.writeNow(this.role === 'server' ? EMPTY_PING : this.control(Opcode.PING, EMPTY));
    }
  }

  // ---- socket events -----------------------------------------------------

  /** @internal The socket is gone: settle everything exactly once. */
  socketClosed(): void {
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    this.sweeper?.delete(this);
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.discardQueue();
    this.pendingPong = null;
    this.parser?.dispose();
    this.parser = null;
    this.dropInflater();
    if (!this.receivedClose && this.sentCloseCode !== undefined && this.closeCode === CloseCode.ABNORMAL) {
      this.closeCode = this.sentCloseCode;
    }
    const waiters = this.closedWaiters;
    this.closedWaiters = null;
    const info = { code: this.closeCode, reason: this.closeReason };
    this.handlers.close?.(this, info.code, info.reason);
    if (waiters !== null) for (const resolve of waiters) resolve(info);
  }
}

function truncateReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason;
  let out = reason.slice(0, 123);
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}

// Shared socket listeners: `this` is the socket; no closure per connection.

function onSocketData(this: ConnSocket, chunk: Buffer): void {
  this[CONN]?.receive(chunk);
}

function onSocketDrain(this: ConnSocket): void {
  this[CONN]?.drained();
}

function onSocketError(this: ConnSocket, error: Error): void {
  const conn = this[CONN];
  if (conn !== undefined) conn.handlers.error?.(conn, error);
  this.destroy();
}

function onSocketEnd(this: ConnSocket): void {
  // The peer half-closed: finish our side too (ending twice would build an error object).
  if (!this.writableEnded) this.end();
}

function onSocketClose(this: ConnSocket): void {
  this[CONN]?.socketClosed();
}

function uncork(conn: Connection): void {
  conn.uncork();
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}
