/**
 * Incremental frame parser (RFC 6455 §5). Bytes go in through `push` in
 * chunks of any size; complete messages and control frames come out through
 * the handlers. Every protocol violation is reported once through `onError`
 * with its close code, at the byte where it is detected, and the parser then
 * ignores all further input. So does a received close frame.
 *
 * Memory: a message that arrives as one frame inside one chunk is handed
 * over as a view of that chunk (no copy). Anything else (a fragmented
 * message, or a frame split across chunks) is copied into one buffer owned
 * by the message, so what the parser holds is the payload received so far
 * plus a constant, however the peer frames it, and no socket chunk stays
 * pinned by a tiny fragment. That buffer is reserved from an optional
 * shared budget and released when the message completes or fails.
 *
 * With permessage-deflate agreed, RSV1 on a data message's first frame
 * marks it compressed (anywhere else it is a protocol error), and such a
 * message is handed over still compressed. The receiver may `pause()` the
 * parser from `onMessage` while it inflates: the rest of the chunk is kept
 * (the caller stops reading the socket) until `resume()`.
 *
 * States: HEADER → PAYLOAD → HEADER … → DONE.
 */
import { CloseCode, ProtocolError, isValidCloseCode } from './close.ts';
import { MAX_CONTROL_PAYLOAD, Opcode, applyMask, type DataOpcode } from './frame.ts';
import { Utf8Validator } from './utf8.ts';

export interface ParserHandlers {
  /**
   * A complete text or binary message. Text is valid UTF-8 unless
   * `compressed` (RSV1 was set: permessage-deflate), in which case `data` is
   * the deflated payload and nothing about it has been checked yet.
   */
  onMessage(opcode: DataOpcode, data: Buffer, compressed: boolean): void;
  onPing(payload: Buffer): void;
  onPong(payload: Buffer): void;
  /** A valid close frame; `code` is undefined when the frame had no payload. */
  onClose(code: number | undefined, reason: string): void;
  /** A protocol violation; the connection must be failed with `error.closeCode`. */
  onError(error: ProtocolError): void;
}

/** Accounting shared by many parsers for the bytes their incomplete messages hold. */
export interface InboundAccounting {
  /** Takes `bytes` from the budget; false (nothing taken) when that would overspend it. */
  reserve(bytes: number): boolean;
  release(bytes: number): void;
  /** A message was refused for having more frames than `maxFragments`. */
  fragmentLimitHit(): void;
}

export interface ParserOptions {
  /** Largest message in bytes, summed over its fragments (0 = no limit). */
  maxMessageSize: number;
  /** Most frames one data message may be split into (0 = no limit). */
  maxFragments?: number;
  /** Where buffers of incomplete messages are reserved; none = unaccounted. */
  accounting?: InboundAccounting | undefined;
  /** Server side: every frame must be masked. Client side: none may be. */
  expectMasked: boolean;
  /** permessage-deflate was agreed: RSV1 may mark a data message's first frame as compressed. */
  allowCompressed?: boolean;
}

const HEADER = 0;
const PAYLOAD = 1;
const DONE = 2;

/** Longest possible frame header: 2 + 8 (length) + 4 (mask). */
const MAX_HEADER = 14;

const EMPTY = Buffer.alloc(0);

/**
 * Smallest buffer allocated for an incomplete message: tiny fragments then
 * cost a few reallocations instead of one per doubling from a single byte.
 */
const MIN_ASSEMBLY = 4096;

export class FrameParser {
  private state = HEADER;
  /** Header bytes left over from the previous chunk (< MAX_HEADER). */
  private pending: Buffer | null = null;

  // The frame being read.
  private fin = false;
  private opcode = 0;
  private readonly mask = Buffer.alloc(4);
  private masked = false;
  private remaining = 0;
  private frameOffset = 0;
  /** Payload of the control frame being read (a view, or a copy when it spans chunks). */
  private controlPayload: Buffer | null = null;

  // The data message being assembled.
  private messageOpcode: DataOpcode | 0 = 0;
  private messageBytes = 0;
  /** Frames of the current message so far. */
  private fragmentCount = 0;
  /** The current message had RSV1 on its first frame. */
  private compressed = false;
  /** Set by pause(): delivery stops after the current message. */
  private paused = false;
  /** Bytes received while paused, or left in the chunk when it paused. */
  private backlog: Buffer | null = null;
  /** A whole single-frame message that arrived in one chunk: a view, no copy. */
  private single: Buffer | null = null;
  /** Owned buffer of any other message; its length is what is reserved from the budget. */
  private assembly: Buffer | null = null;
  private readonly utf8 = new Utf8Validator();

  constructor(
    private readonly handlers: ParserHandlers,
    private readonly options: ParserOptions,
  ) {}

  /** True once a close frame arrived or a protocol error was reported. */
  get finished(): boolean {
    return this.state === DONE;
  }

  /** Bytes pushed after the parser finished (they are dropped unread). */
  ignoredBytes = 0;

  /** Bytes of buffer held for the incomplete message (what is reserved from the budget). */
  get heldBytes(): number {
    return this.assembly === null ? 0 : this.assembly.length;
  }

  /**
   * Stops parsing for good and gives back what an incomplete message held:
   * for when the connection failed or is gone, and nothing more it sends matters.
   */
  dispose(): void {
    this.state = DONE;
    this.releaseMessage();
    this.controlPayload = null;
    this.backlog = null;
  }

  /** Whether the parser waits for resume() (the receiver is inflating a message). */
  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Called from onMessage: stops delivering until resume(). What is left of
   * the chunk being parsed, and whatever is pushed meanwhile, is kept.
   */
  pause(): void {
    this.paused = true;
  }

  /** Continues with the bytes kept while paused. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const backlog = this.backlog;
    this.backlog = null;
    if (backlog !== null) this.push(backlog);
  }

  /** Keeps `data[pos…]` for resume(). */
  private keep(data: Buffer, pos: number): void {
    if (pos >= data.length || this.state === DONE) return;
    const rest = data.subarray(pos);
    this.backlog = this.backlog === null ? rest : Buffer.concat([this.backlog, rest]);
  }

  /**
   * Feeds the next chunk of bytes from the peer. The chunk is unmasked in
   * place and delivered messages may point into it, so the caller hands
   * over ownership: it must not reuse or share the buffer afterwards.
   */
  push(chunk: Buffer): void {
    if (this.state === DONE) {
      this.ignoredBytes += chunk.length;
      return;
    }
    if (this.paused) return this.keep(chunk, 0);
    let data = chunk;
    let pos = 0;
    if (this.pending !== null) {
      const joined = Buffer.concat([this.pending, chunk.subarray(0, MAX_HEADER)]);
      const used = this.readHeader(joined, 0);
      if (used === 0) {
        this.pending = joined;
        return;
      }
      pos = used - this.pending.length;
      this.pending = null;
      if (used < 0) return;
      data = chunk;
      if (this.remaining === 0 && !this.frameDone()) return this.keep(data, pos);
    }
    while (pos < data.length && this.state !== DONE) {
      if (this.state === PAYLOAD) {
        const take = Math.min(this.remaining, data.length - pos);
        if (!this.payload(data, pos, pos + take)) return;
        pos += take;
        if (this.remaining === 0 && !this.frameDone()) return this.keep(data, pos);
        continue;
      }
      const used = this.readHeader(data, pos);
      if (used < 0) return;
      if (used === 0) {
        this.pending = Buffer.from(data.subarray(pos));
        return;
      }
      pos += used;
      if (this.remaining === 0 && !this.frameDone()) return this.keep(data, pos);
    }
  }

  /**
   * Parses a frame header at `buf[pos]`. Returns the header length, 0 when
   * more bytes are needed, or -1 after reporting a protocol error.
   */
  private readHeader(buf: Buffer, pos: number): number {
    const available = buf.length - pos;
    if (available < 2) return 0;
    const b0 = buf[pos]!;
    const b1 = buf[pos + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    let length = b1 & 0x7f;
    const size = 2 + (length === 126 ? 2 : length === 127 ? 8 : 0) + (masked ? 4 : 0);
    if (available < size) return 0;

    // RSV2 and RSV3 belong to no extension wshub knows; RSV1 to permessage-deflate, when agreed.
    if ((b0 & 0x30) !== 0) return this.fail(CloseCode.PROTOCOL_ERROR, 'RSV bit set without an extension');
    const rsv1 = (b0 & 0x40) !== 0;
    if (rsv1 && this.options.allowCompressed !== true)
      return this.fail(CloseCode.PROTOCOL_ERROR, 'RSV bit set without an extension');
    if (masked !== this.options.expectMasked) {
      return this.fail(
        CloseCode.PROTOCOL_ERROR,
        this.options.expectMasked ? 'client frames must be masked' : 'server frames must not be masked',
      );
    }
    const control = opcode >= 0x8;
    if (rsv1 && (control || opcode === Opcode.CONTINUATION))
      return this.fail(
        CloseCode.PROTOCOL_ERROR,
        control ? 'RSV1 set on a control frame' : 'RSV1 set on a continuation frame',
      );
    if (control) {
      if (opcode > Opcode.PONG) return this.fail(CloseCode.PROTOCOL_ERROR, `reserved opcode ${opcode}`);
      if (!fin) return this.fail(CloseCode.PROTOCOL_ERROR, 'fragmented control frame');
      if (length > MAX_CONTROL_PAYLOAD)
        return this.fail(CloseCode.PROTOCOL_ERROR, 'control frame over 125 bytes');
    } else if (opcode === Opcode.CONTINUATION) {
      if (this.messageOpcode === 0)
        return this.fail(CloseCode.PROTOCOL_ERROR, 'continuation without a message');
      // Every frame costs a header parse and a copy call even when its payload
      // is empty or one byte, so the count is bounded as well as the bytes.
      const maxFragments = this.options.maxFragments ?? 0;
      if (++this.fragmentCount > maxFragments && maxFragments > 0) {
        this.options.accounting?.fragmentLimitHit();
        return this.fail(CloseCode.MESSAGE_TOO_BIG, `message split into more than ${maxFragments} frames`);
      }
    } else if (opcode === Opcode.TEXT || opcode === Opcode.BINARY) {
      if (this.messageOpcode !== 0)
        return this.fail(CloseCode.PROTOCOL_ERROR, 'new message inside a fragmented one');
    } else {
      return this.fail(CloseCode.PROTOCOL_ERROR, `reserved opcode ${opcode}`);
    }

    let offset = pos + 2;
    if (length === 126) {
      length = buf.readUInt16BE(offset);
      offset += 2;
      if (length < 126) return this.fail(CloseCode.PROTOCOL_ERROR, 'non-minimal 16-bit length');
    } else if (length === 127) {
      const high = buf.readUInt32BE(offset);
      const low = buf.readUInt32BE(offset + 4);
      offset += 8;
      if (high >= 0x80000000)
        return this.fail(CloseCode.PROTOCOL_ERROR, '64-bit length with the top bit set');
      if (high === 0 && low < 65536) return this.fail(CloseCode.PROTOCOL_ERROR, 'non-minimal 64-bit length');
      // Lengths past 2^53 cannot be represented; they exceed any read limit anyway.
      length = high > 0x1fffff ? Number.MAX_SAFE_INTEGER : high * 0x100000000 + low;
    }
    if (!control) {
      const limit = this.options.maxMessageSize;
      if (limit > 0 && this.messageBytes + length > limit) {
        return this.fail(CloseCode.MESSAGE_TOO_BIG, `message exceeds ${limit} bytes`);
      }
      if (opcode !== Opcode.CONTINUATION) {
        this.messageOpcode = opcode as DataOpcode;
        this.fragmentCount = 1;
        this.compressed = rsv1;
        this.utf8.reset();
      }
    }
    if (masked) {
      this.mask[0] = buf[offset]!;
      this.mask[1] = buf[offset + 1]!;
      this.mask[2] = buf[offset + 2]!;
      this.mask[3] = buf[offset + 3]!;
    }
    this.fin = fin;
    this.opcode = opcode;
    this.masked = masked;
    this.remaining = length;
    this.frameOffset = 0;
    this.state = PAYLOAD;
    return size;
  }

  /** Takes `data[start, end)` as the next payload bytes of the current frame. */
  private payload(data: Buffer, start: number, end: number): boolean {
    const offset = this.frameOffset;
    if (this.masked) applyMask(data, this.mask, start, end, offset);
    const length = end - start;
    this.frameOffset = offset + length;
    this.remaining -= length;
    const whole = offset === 0 && this.remaining === 0;
    if (this.opcode >= 0x8) {
      if (whole) {
        this.controlPayload = data.subarray(start, end);
      } else {
        // At most 125 bytes, copied so that no chunk stays pinned by them.
        if (offset === 0) this.controlPayload = Buffer.allocUnsafe(length + this.remaining);
        data.copy(this.controlPayload!, offset, start, end);
      }
      return true;
    }
    const piece = data.subarray(start, end);
    // Text is validated as it arrives so that invalid UTF-8 fails fast (compressed text once inflated).
    if (this.messageOpcode === Opcode.TEXT && !this.compressed && !this.utf8.push(piece)) {
      this.fail(CloseCode.INVALID_PAYLOAD, 'invalid UTF-8 in text message');
      return false;
    }
    if (whole && this.fin && this.assembly === null) {
      this.single = piece;
      this.messageBytes = length;
      return true;
    }
    const needed = this.messageBytes + length;
    if (this.assembly === null || needed > this.assembly.length) {
      if (!this.grow(needed)) return false;
    }
    data.copy(this.assembly!, this.messageBytes, start, end);
    this.messageBytes = needed;
    return true;
  }

  /**
   * Makes the message buffer hold at least `needed` bytes, doubling so that
   * many small fragments cost amortised O(1) copies each. Never past the
   * read limit, nor past the end of the message once its last frame is
   * being read. False after failing the connection when the budget is spent.
   */
  private grow(needed: number): boolean {
    const old = this.assembly;
    const oldSize = old === null ? 0 : old.length;
    let size = Math.max(needed, oldSize * 2, MIN_ASSEMBLY);
    const limit = this.options.maxMessageSize;
    if (limit > 0 && size > limit) size = limit;
    if (this.fin && size > needed + this.remaining) size = needed + this.remaining;
    const accounting = this.options.accounting;
    if (accounting !== undefined && !accounting.reserve(size - oldSize)) {
      this.fail(CloseCode.BUDGET_EXHAUSTED, 'server is short of memory for incomplete messages');
      return false;
    }
    const next = Buffer.allocUnsafe(size);
    if (old !== null) old.copy(next, 0, 0, this.messageBytes);
    this.assembly = next;
    return true;
  }

  /** Drops the incomplete message and gives its buffer back to the budget. */
  private releaseMessage(): void {
    const assembly = this.assembly;
    if (assembly !== null) {
      this.assembly = null;
      this.options.accounting?.release(assembly.length);
    }
    this.single = null;
    this.messageBytes = 0;
  }

  /** Called when the current frame's payload is complete; false when parsing must stop. */
  private frameDone(): boolean {
    this.state = HEADER;
    if (this.opcode >= 0x8) return this.controlDone();
    if (!this.fin) return true;
    const opcode = this.messageOpcode as DataOpcode;
    const compressed = this.compressed;
    if (opcode === Opcode.TEXT && !compressed && !this.utf8.complete) {
      this.fail(CloseCode.INVALID_PAYLOAD, 'text message ends inside a UTF-8 sequence');
      return false;
    }
    let data = this.single;
    if (data === null) {
      const assembly = this.assembly;
      data =
        assembly === null
          ? EMPTY
          : assembly.length === this.messageBytes
            ? assembly
            : assembly.subarray(0, this.messageBytes);
    }
    this.releaseMessage();
    this.messageOpcode = 0;
    this.compressed = false;
    this.handlers.onMessage(opcode, data, compressed);
    return this.state !== DONE && !this.paused;
  }

  private controlDone(): boolean {
    const payload = this.controlPayload ?? EMPTY;
    this.controlPayload = null;
    switch (this.opcode) {
      case Opcode.PING:
        this.handlers.onPing(payload);
        return this.state !== DONE;
      case Opcode.PONG:
        this.handlers.onPong(payload);
        return this.state !== DONE;
      default:
        return this.closeFrame(payload);
    }
  }

  private closeFrame(payload: Buffer): boolean {
    if (payload.length === 1) {
      this.fail(CloseCode.PROTOCOL_ERROR, 'close payload of 1 byte');
      return false;
    }
    let code: number | undefined;
    let reason = '';
    if (payload.length >= 2) {
      code = payload.readUInt16BE(0);
      if (!isValidCloseCode(code)) {
        this.fail(CloseCode.PROTOCOL_ERROR, `invalid close code ${code}`);
        return false;
      }
      const reasonBytes = payload.subarray(2);
      if (!Utf8Validator.validate(reasonBytes)) {
        this.fail(CloseCode.INVALID_PAYLOAD, 'close reason is not valid UTF-8');
        return false;
      }
      reason = reasonBytes.toString('utf8');
    }
    this.state = DONE;
    this.releaseMessage();
    this.handlers.onClose(code, reason);
    return false;
  }

  /** Reports a protocol error and stops parsing; returns -1 for readHeader. */
  private fail(closeCode: number, message: string): -1 {
    this.state = DONE;
    this.releaseMessage();
    this.controlPayload = null;
    this.handlers.onError(new ProtocolError(closeCode, message));
    return -1;
  }
}
