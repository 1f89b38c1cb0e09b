// A deliberately small WebSocket client over a raw TCP socket. It exists so the
// conformance suite can put bytes on the wire that no well-behaved client
// library would ever send (reserved bits, bad opcodes, non-minimal lengths,
// unmasked frames, frames cut at arbitrary points) and can observe exactly what
// the server answers, frame by frame, including when it closes TCP.
import { connect, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { setImmediate as nextTick, setTimeout as sleep } from 'node:timers/promises';

const HANDSHAKE_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Frame opcodes defined by RFC 6455 section 5.2. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** Bit values for the `rsv` field of {@link FrameSpec}: RSV1 is the highest reserved bit. */
export const Rsv = { Rsv1: 4, Rsv2: 2, Rsv3: 1 } as const;

/** Everything the frame builder needs; every field except `opcode` has a conforming default. */
export interface FrameSpec {
  opcode: number;
  payload?: Uint8Array | string;
  /** Defaults to true. */
  fin?: boolean;
  /** Three reserved bits as a number 0..7 (4 = RSV1, 2 = RSV2, 1 = RSV3). Defaults to 0. */
  rsv?: number;
  /** Whether to mask the payload as a client must. Defaults to true. */
  masked?: boolean;
  /** Forces the length encoding: 7 (inline), 16 or 64 bits. Defaults to the minimal form. */
  lengthForm?: 7 | 16 | 64;
  /**
   * Length written into the header instead of the real payload length; lets a
   * test announce a body it never sends (or an impossible one). Only the 64-bit
   * form can carry values above 65535.
   */
  declaredLength?: bigint;
  /** Fixed masking key (4 bytes); random by default. */
  maskKey?: Uint8Array;
}

/** A frame as received from the server. */
export interface ServerFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
  /** performance.now() when the frame was complete. */
  at: number;
}

/** What {@link RawClient.waitClosed} observed. */
export interface CloseObservation {
  /** TCP was closed (by either side) before the timeout. */
  tcpClosed: boolean;
  /** Frames that were still unread when waitClosed was called or arrived afterwards, close frame excluded. */
  frames: ServerFrame[];
  /** The first close frame the server sent, if any (it may have been read earlier through nextFrame). */
  closeFrame: ServerFrame | undefined;
  /** Close code from the close frame; undefined when there was no close frame or its payload was empty. */
  code: number | undefined;
  /** Raw close reason bytes (may be invalid UTF-8). */
  reason: Buffer | undefined;
}

/** Options for {@link RawClient.connect}. */
export interface ConnectOptions {
  path?: string;
  protocols?: string[];
  timeoutMs?: number;
  /** Sec-WebSocket-Extensions offer (permessage-deflate cases). */
  extensions?: string;
}

/** Raised when a wait on the connection runs out of time. */
export class WaitTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`timed out after ${ms} ms waiting for ${what}`);
    this.name = 'WaitTimeoutError';
  }
}

/** Encodes a close frame payload: 2-byte code (if given) followed by the reason bytes. */
export function closePayload(code?: number, reason: string | Uint8Array = ''): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const head = Buffer.alloc(2);
  head.writeUInt16BE(code);
  const tail = typeof reason === 'string' ? Buffer.from(reason, 'utf8') : Buffer.from(reason);
  return Buffer.concat([head, tail]);
}

/** Builds one frame from `spec`; returns the exact bytes to write (header, mask key, masked payload). */
export function buildFrame(spec: FrameSpec): Buffer {
  const payload =
    typeof spec.payload === 'string' ? Buffer.from(spec.payload, 'utf8') : Buffer.from(spec.payload ?? []);
  const masked = spec.masked ?? true;
  const length = spec.declaredLength ?? BigInt(payload.length);
  const form = spec.lengthForm ?? (length <= 125n ? 7 : length <= 0xffffn ? 16 : 64);
  const extra = form === 7 ? 0 : form === 16 ? 2 : 8;
  const header = Buffer.alloc(2 + extra + (masked ? 4 : 0));
  header[0] = ((spec.fin ?? true) ? 0x80 : 0) | (((spec.rsv ?? 0) & 7) << 4) | (spec.opcode & 0x0f);
  const maskBit = masked ? 0x80 : 0;
  if (form === 7) {
    header[1] = maskBit | Number(length & 0x7fn);
  } else if (form === 16) {
    header[1] = maskBit | 126;
    header.writeUInt16BE(Number(length & 0xffffn), 2);
  } else {
    header[1] = maskBit | 127;
    header.writeBigUInt64BE(BigInt.asUintN(64, length), 2);
  }
  if (!masked) return Buffer.concat([header, payload]);
  const key = spec.maskKey ? Buffer.from(spec.maskKey) : randomBytes(4);
  key.copy(header, 2 + extra);
  const body = Buffer.allocUnsafe(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([header, body]);
}

/**
 * Incremental parser for server-to-client frames. Chunks are kept in a list
 * and only joined once a whole frame is present, so multi-megabyte echoes do
 * not cost quadratic copying.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Appends received bytes. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Number of bytes received but not yet part of a complete frame. */
  get pending(): number {
    return this.buffered;
  }

  /** Returns the next complete frame, or undefined when more bytes are needed. */
  take(): ServerFrame | undefined {
    if (this.buffered < 2) return undefined;
    const head = this.peek(Math.min(this.buffered, 14));
    const b0 = head[0]!;
    const b1 = head[1]!;
    const masked = (b1 & 0x80) !== 0;
    let length = b1 & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (head.length < 4) return undefined;
      length = head.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (head.length < 10) return undefined;
      const big = head.readBigUInt64BE(2);
      // A server never needs more than this; anything larger is reported as-is
      // and will simply never complete, so the caller's timeout ends the wait.
      length = big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(big);
      offset = 10;
    }
    const keyLength = masked ? 4 : 0;
    if (this.buffered < offset + keyLength + length) return undefined;
    const all = this.consume(offset + keyLength + length);
    let payload = all.subarray(offset + keyLength);
    if (masked) {
      const key = all.subarray(offset, offset + 4);
      payload = Buffer.from(payload.map((byte, i) => byte ^ key[i & 3]!));
    }
    return {
      fin: (b0 & 0x80) !== 0,
      rsv: (b0 >> 4) & 7,
      opcode: b0 & 0x0f,
      masked,
      payload,
      at: performance.now(),
    };
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    return Buffer.concat(this.chunks, Math.min(this.buffered, n + 64)).subarray(0, n);
  }

  private consume(n: number): Buffer {
    const parts: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const first = this.chunks[0]!;
      if (first.length <= need) {
        parts.push(first);
        this.chunks.shift();
        need -= first.length;
      } else {
        parts.push(first.subarray(0, need));
        this.chunks[0] = first.subarray(need);
        need = 0;
      }
    }
    this.buffered -= n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }
}

/**
 * One client connection after a successful opening handshake. Frames from the
 * server are queued as they arrive; tests pull them with {@link nextFrame} or
 * drain them with {@link waitClosed}.
 */
export class RawClient {
  /** Response headers of the opening handshake (lower-case names). */
  readonly headers: Record<string, string>;
  /** performance.now() when TCP closed, once it has. */
  closedAt: number | undefined;
  /** The first socket error seen (e.g. ECONNRESET), if any. */
  socketError: Error | undefined;
  private readonly socket: Socket;
  private readonly reader = new FrameReader();
  private readonly queue: ServerFrame[] = [];
  private readonly waiters = new Set<() => void>();
  private firstClose: ServerFrame | undefined;

  private constructor(socket: Socket, headers: Record<string, string>, leftover: Buffer) {
    this.socket = socket;
    this.headers = headers;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.socketError ??= err;
    });
    socket.on('close', () => {
      this.closedAt = performance.now();
      this.notify();
    });
    if (leftover.length > 0) this.onData(leftover);
  }

  /**
   * Opens a TCP connection to host:port and performs the opening handshake.
   * Resolves with a connected client; rejects if the server does not answer
   * 101 with the right Sec-WebSocket-Accept.
   */
  static async connect(host: string, port: number, options: ConnectOptions = {}): Promise<RawClient> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const key = randomBytes(16).toString('base64');
    const socket = connect({ host, port });
    socket.setNoDelay(true);
    const lines = [
      `GET ${options.path ?? '/'} HTTP/1.1`,
      `Host: ${host}:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`,
      'Sec-WebSocket-Version: 13',
    ];
    if (options.protocols?.length) lines.push(`Sec-WebSocket-Protocol: ${options.protocols.join(', ')}`);
    if (options.extensions !== undefined) lines.push(`Sec-WebSocket-Extensions: ${options.extensions}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);

    const { head, rest } = await new Promise<{ head: string; rest: Buffer }>((resolve, reject) => {
      let received = Buffer.alloc(0);
      const fail = (err: Error): void => {
        cleanup();
        socket.destroy();
        reject(err);
      };
      const onData = (chunk: Buffer): void => {
        received = Buffer.concat([received, chunk]);
        const end = received.indexOf('\r\n\r\n');
        if (end < 0) return;
        cleanup();
        resolve({ head: received.subarray(0, end).toString('latin1'), rest: received.subarray(end + 4) });
      };
      const onError = (err: Error): void => fail(err);
      const onClose = (): void => fail(new Error('connection closed during the opening handshake'));
      const timer = setTimeout(
        () => fail(new WaitTimeoutError('the handshake response', timeoutMs)),
        timeoutMs,
      );
      const cleanup = (): void => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
      };
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
    });

    const [statusLine = '', ...headerLines] = head.split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const expectedAccept = createHash('sha1')
      .update(key + HANDSHAKE_GUID)
      .digest('base64');
    const problem = !/^HTTP\/1\.1 101\b/.test(statusLine)
      ? `expected status 101, got "${statusLine}"`
      : headers['upgrade']?.toLowerCase() !== 'websocket'
        ? 'missing "Upgrade: websocket"'
        : !/\bupgrade\b/i.test(headers['connection'] ?? '')
          ? 'missing "Connection: Upgrade"'
          : headers['sec-websocket-accept'] !== expectedAccept
            ? `wrong Sec-WebSocket-Accept "${headers['sec-websocket-accept']}"`
            : undefined;
    if (problem) {
      socket.destroy();
      throw new Error(`opening handshake failed: ${problem}`);
    }
    return new RawClient(socket, headers, rest);
  }

  /** True once TCP is closed. */
  get closed(): boolean {
    return this.closedAt !== undefined;
  }

  /** Number of frames received and not yet read. */
  get queued(): number {
    return this.queue.length;
  }

  /** The first close frame received from the server, whether or not it was read yet. */
  get closeFrame(): ServerFrame | undefined {
    return this.firstClose;
  }

  /** Writes raw bytes; resolves once they are handed to the kernel (or immediately if TCP is gone). */
  write(bytes: Uint8Array): Promise<void> {
    if (this.socket.destroyed || !this.socket.writable) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.write(bytes, () => resolve());
    });
  }

  /** Builds and writes one frame. */
  sendFrame(spec: FrameSpec): Promise<void> {
    return this.write(buildFrame(spec));
  }

  /** Builds several frames and writes them in a single write. */
  sendFrames(specs: FrameSpec[]): Promise<void> {
    return this.write(Buffer.concat(specs.map(buildFrame)));
  }

  /**
   * Writes `bytes` in pieces of `chunkSize`, waiting `delayMs` between pieces
   * (0 still yields to the event loop, so each piece leaves in its own write).
   * Stops early if TCP closes.
   */
  async writeChopped(bytes: Uint8Array, chunkSize: number, delayMs = 0): Promise<void> {
    for (let at = 0; at < bytes.length && !this.closed; at += chunkSize) {
      if (at > 0) await (delayMs > 0 ? sleep(delayMs) : nextTick());
      await this.write(bytes.subarray(at, at + chunkSize));
    }
  }

  /**
   * Resolves when `predicate` holds (checked now and whenever a frame arrives
   * or TCP closes) with true, or with false after `timeoutMs`.
   */
  waitFor(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
    if (predicate()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (!predicate()) return;
        done(true);
      };
      const done = (result: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(result);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.waiters.add(check);
    });
  }

  /**
   * Returns the next frame from the server; null if TCP closed and no frame is
   * left. Rejects with {@link WaitTimeoutError} after `timeoutMs`.
   */
  async nextFrame(timeoutMs: number): Promise<ServerFrame | null> {
    const ready = await this.waitFor(() => this.queue.length > 0 || this.closed, timeoutMs);
    if (!ready) throw new WaitTimeoutError('a frame', timeoutMs);
    return this.queue.shift() ?? null;
  }

  /**
   * Waits until TCP is closed (or `timeoutMs` passes) and reports what came
   * before: every unread frame, and the server's close frame with its code and
   * reason. Never rejects.
   */
  async waitClosed(timeoutMs: number): Promise<CloseObservation> {
    const tcpClosed = await this.waitFor(() => this.closed, timeoutMs);
    const frames = this.queue.splice(0).filter((f) => f !== this.firstClose);
    const payload = this.firstClose?.payload;
    return {
      tcpClosed,
      frames,
      closeFrame: this.firstClose,
      code: payload && payload.length >= 2 ? payload.readUInt16BE(0) : undefined,
      reason: payload && payload.length > 2 ? payload.subarray(2) : undefined,
    };
  }

  /** Closes the socket at once; safe to call more than once. */
  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.reader.push(chunk);
    for (let frame = this.reader.take(); frame; frame = this.reader.take()) {
      if (frame.opcode === Opcode.Close) this.firstClose ??= frame;
      this.queue.push(frame);
    }
    this.notify();
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
