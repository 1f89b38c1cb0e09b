/**
 * Frame encoding (RFC 6455 §5.2). Server frames are unmasked; the client side
 * (dial(), tests) passes a masking key. A message is encoded into one Buffer
 * that can be written unchanged to any number of sockets.
 */
import { randomFillSync } from 'node:crypto';
import { MAX_CLOSE_REASON_BYTES, isValidCloseCode } from './close.ts';

export const Opcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

/** Opcodes an application message can carry. */
export type DataOpcode = typeof Opcode.TEXT | typeof Opcode.BINARY;

/** Longest payload a control frame may carry. */
export const MAX_CONTROL_PAYLOAD = 125;

export interface FrameOptions {
  /** Final fragment of the message (default true). */
  fin?: boolean;
  /** Masking key (4 bytes) for client frames; omitted for server frames. */
  mask?: Uint8Array;
  /** RSV1: the message is compressed (RFC 7692); only on a message's first frame. */
  rsv1?: boolean;
}

/** The RSV1 bit of the first header byte. */
export const RSV1 = 0x40;

/** Header size for a payload of `length` bytes, using the minimal length form. */
export function headerSize(length: number, masked: boolean): number {
  const base = length < 126 ? 2 : length < 65536 ? 4 : 10;
  return masked ? base + 4 : base;
}

/**
 * Writes a frame header into `target` at `offset` and returns the offset
 * where the payload starts.
 */
function writeHeader(
  target: Buffer,
  offset: number,
  opcode: number,
  length: number,
  fin: boolean,
  mask: Uint8Array | undefined,
  rsv1 = false,
): number {
  target[offset] = (fin ? 0x80 : 0) | (rsv1 ? RSV1 : 0) | opcode;
  const maskBit = mask ? 0x80 : 0;
  let pos = offset + 2;
  if (length < 126) {
    target[offset + 1] = maskBit | length;
  } else if (length < 65536) {
    target[offset + 1] = maskBit | 126;
    target.writeUInt16BE(length, pos);
    pos += 2;
  } else {
    target[offset + 1] = maskBit | 127;
    target.writeUInt32BE(Math.floor(length / 0x100000000), pos);
    target.writeUInt32BE(length >>> 0, pos + 4);
    pos += 8;
  }
  if (mask) {
    target[pos] = mask[0]!;
    target[pos + 1] = mask[1]!;
    target[pos + 2] = mask[2]!;
    target[pos + 3] = mask[3]!;
    pos += 4;
  }
  return pos;
}

/**
 * XORs `data[start, end)` in place with the 4-byte `mask`, where
 * `maskOffset` is the payload position of `data[start]` modulo 4.
 */
export function applyMask(
  data: Uint8Array,
  mask: Uint8Array,
  start = 0,
  end = data.length,
  maskOffset = 0,
): void {
  const m0 = mask[maskOffset & 3]!;
  const m1 = mask[(maskOffset + 1) & 3]!;
  const m2 = mask[(maskOffset + 2) & 3]!;
  const m3 = mask[(maskOffset + 3) & 3]!;
  let i = start;
  const fast = end - 3;
  for (; i < fast; i += 4) {
    data[i] = data[i]! ^ m0;
    data[i + 1] = data[i + 1]! ^ m1;
    data[i + 2] = data[i + 2]! ^ m2;
    data[i + 3] = data[i + 3]! ^ m3;
  }
  if (i < end) data[i] = data[i]! ^ m0;
  if (i + 1 < end) data[i + 1] = data[i + 1]! ^ m1;
  if (i + 2 < end) data[i + 2] = data[i + 2]! ^ m2;
}

/** Encodes one frame carrying `payload`. */
export function encodeFrame(opcode: number, payload: Uint8Array, options: FrameOptions = {}): Buffer {
  const { fin = true, mask, rsv1 = false } = options;
  const length = payload.length;
  const frame = Buffer.allocUnsafe(headerSize(length, mask !== undefined) + length);
  const start = writeHeader(frame, 0, opcode, length, fin, mask, rsv1);
  frame.set(payload, start);
  if (mask) applyMask(frame, mask, start);
  return frame;
}

/**
 * Encodes a whole message into one Buffer. Payloads longer than
 * `fragmentSize` (when > 0) are split into continuation frames. Strings are
 * written as UTF-8 directly into the frame, without an intermediate copy.
 * `compressed` sets RSV1 on the first frame (the payload is already deflated).
 */
export function encodeMessage(
  opcode: DataOpcode,
  payload: Uint8Array | string,
  fragmentSize = 0,
  mask?: () => Uint8Array,
  compressed = false,
): Buffer {
  const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  if (typeof payload === 'string' && (fragmentSize <= 0 || length <= fragmentSize) && !mask) {
    const frame = Buffer.allocUnsafe(headerSize(length, false) + length);
    frame.write(payload, writeHeader(frame, 0, opcode, length, true, undefined), 'utf8');
    return frame;
  }
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  if (fragmentSize <= 0 || length <= fragmentSize) {
    return encodeFrame(opcode, bytes, { mask: mask?.(), rsv1: compressed });
  }
  const frames: Buffer[] = [];
  for (let offset = 0; offset < length; offset += fragmentSize) {
    const end = Math.min(offset + fragmentSize, length);
    frames.push(
      encodeFrame(offset === 0 ? opcode : Opcode.CONTINUATION, bytes.subarray(offset, end), {
        fin: end === length,
        mask: mask?.(),
        rsv1: compressed && offset === 0,
      }),
    );
  }
  return Buffer.concat(frames);
}

/**
 * Builds a close frame payload: empty when `code` is undefined, otherwise
 * the code followed by the UTF-8 reason. Throws RangeError for a code that
 * may not be sent or a reason longer than 123 bytes.
 */
export function closePayload(code?: number, reason = ''): Buffer {
  if (code === undefined) {
    if (reason !== '') throw new RangeError('a close reason needs a close code');
    return Buffer.alloc(0);
  }
  if (!isValidCloseCode(code)) throw new RangeError(`invalid close code ${code}`);
  const reasonLength = Buffer.byteLength(reason);
  if (reasonLength > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(`close reason is ${reasonLength} bytes; at most ${MAX_CLOSE_REASON_BYTES}`);
  }
  const payload = Buffer.allocUnsafe(2 + reasonLength);
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2, 'utf8');
  return payload;
}

/** A fresh random 4-byte masking key. */
export function randomMask(): Buffer {
  return randomFillSync(Buffer.allocUnsafe(4));
}

/** Pre-encoded frames the server sends often. */
export const EMPTY_PING = encodeFrame(Opcode.PING, Buffer.alloc(0));
