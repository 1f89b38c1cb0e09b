/**
 * What the load generator writes: the HTTP upgrade request, masked client
 * frames, and the publisher's message template with the scheduled send time
 * and a sequence number stamped into its first payload bytes.
 *
 * Masking: every connection picks one random 4-byte mask and uses it for all
 * its frames. RFC 6455 asks for a fresh mask per frame to protect proxies
 * from cache poisoning; for a loopback load generator a fixed mask keeps the
 * per-message cost to re-masking the few stamped bytes, and servers cannot
 * tell the difference.
 *
 * Payload layouts:
 * - `ws` targets, binary frames: bytes 0–7 the scheduled send time as a
 *   float64 LE in ms (`performance.timeOrigin + performance.now()` scale),
 *   bytes 8–11 the sequence number as uint32 LE, then filler.
 * - `socketio` targets carry text only: `42["m","<16 digits: send time in
 *   µs><10 digits: sequence><filler>"]`, where payloadBytes counts the
 *   string's characters (at least 26).
 */
import { randomBytes } from 'node:crypto';

export const OPCODE_TEXT = 1;
export const OPCODE_BINARY = 2;
export const OPCODE_CLOSE = 8;
export const OPCODE_PING = 9;
export const OPCODE_PONG = 10;

/** Bytes of a Socket.IO event frame before the stamped digits: `42["m","`. */
export const SIO_PREFIX = '42["m","';
/** Digits stamped at the start of a Socket.IO payload string (16 time + 10 sequence). */
export const SIO_STAMP_DIGITS = 26;
/** Bytes stamped at the start of a binary payload (float64 time + uint32 sequence). */
export const BINARY_STAMP_BYTES = 12;

/** A fresh random 4-byte mask. */
export function newMask(): Buffer {
  return randomBytes(4);
}

/** Returns a masked client frame (FIN set) carrying `payload`, masked with `mask`. */
export function maskedFrame(opcode: number, payload: Buffer, mask: Buffer): Buffer {
  const n = payload.length;
  const ext = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const head = 2 + ext + 4;
  const frame = Buffer.allocUnsafe(head + n);
  frame[0] = 0x80 | opcode;
  if (ext === 0) frame[1] = 0x80 | n;
  else if (ext === 2) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(Math.floor(n / 0x100000000), 2);
    frame.writeUInt32BE(n >>> 0, 6);
  }
  mask.copy(frame, head - 4);
  for (let i = 0; i < n; i++) frame[head + i] = payload[i]! ^ mask[i & 3]!;
  return frame;
}

/** A masked close frame with status 1000. */
export function closeFrame(mask: Buffer): Buffer {
  const body = Buffer.alloc(2);
  body.writeUInt16BE(1000, 0);
  return maskedFrame(OPCODE_CLOSE, body, mask);
}

/** The HTTP/1.1 upgrade request for `path` (with query), plus any extra headers. */
export function upgradeRequest(
  host: string,
  port: number,
  path: string,
  headers?: Record<string, string>,
): Buffer {
  let text =
    `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n`;
  for (const [name, value] of Object.entries(headers ?? {})) text += `${name}: ${value}\r\n`;
  return Buffer.from(text + '\r\n', 'latin1');
}

/**
 * Request path for a room: `/ws?room=NAME` style, the Engine.IO v4 WebSocket URL for Socket.IO,
 * or the path as given for the channel protocol (whose channel is named in its subscribe command).
 */
export function roomPath(protocol: 'ws' | 'socketio' | 'centrifuge', path: string, room: string): string {
  if (protocol === 'centrifuge') return path;
  const r = encodeURIComponent(room);
  if (protocol === 'socketio') {
    const base = path === '/ws' ? '/socket.io/' : path;
    return `${base}?EIO=4&transport=websocket&room=${r}`;
  }
  return `${path}${path.includes('?') ? '&' : '?'}room=${r}`;
}

/**
 * A publisher's message: a pre-built masked frame whose stamp bytes are
 * rewritten per message by `stamp`. `stampOffset` is where, in the frame,
 * the stamp begins; the payload offset within the frame is `payloadOffset`.
 */
export class MessageTemplate {
  readonly frame: Buffer;
  private readonly mask: Buffer;
  private readonly payloadOffset: number;
  private readonly stampAt: number; // offset of the stamp inside the payload
  private readonly text: boolean;
  private readonly scratch = Buffer.alloc(SIO_STAMP_DIGITS);

  /** `payloadBytes` ≥ 16 (≥ 26 characters are used for Socket.IO). */
  constructor(protocol: 'ws' | 'socketio', payloadBytes: number, mask: Buffer) {
    this.mask = mask;
    this.text = protocol === 'socketio';
    let payload: Buffer;
    if (this.text) {
      const chars = Math.max(payloadBytes, SIO_STAMP_DIGITS);
      payload = Buffer.from(
        `${SIO_PREFIX}${'0'.repeat(SIO_STAMP_DIGITS)}${'x'.repeat(chars - SIO_STAMP_DIGITS)}"]`,
      );
      this.stampAt = SIO_PREFIX.length;
    } else {
      payload = Buffer.alloc(Math.max(payloadBytes, 16), 0x78);
      this.stampAt = 0;
    }
    this.frame = maskedFrame(this.text ? OPCODE_TEXT : OPCODE_BINARY, payload, mask);
    this.payloadOffset = this.frame.length - payload.length;
  }

  /** Writes the template into `out` at `at` with `timeMs` and `seq` stamped (masked). */
  writeTo(out: Buffer, at: number, timeMs: number, seq: number): void {
    this.frame.copy(out, at);
    const s = this.scratch;
    let n: number;
    if (this.text) {
      writeDigits(s, 0, 16, Math.round(timeMs * 1000));
      writeDigits(s, 16, 10, seq);
      n = SIO_STAMP_DIGITS;
    } else {
      s.writeDoubleLE(timeMs, 0);
      s.writeUInt32LE(seq >>> 0, 8);
      n = BINARY_STAMP_BYTES;
    }
    const base = at + this.payloadOffset + this.stampAt;
    const mask = this.mask;
    // mask index counts from the payload start
    for (let i = 0; i < n; i++) out[base + i] = s[i]! ^ mask[(this.stampAt + i) & 3]!;
  }
}

/** Writes `value` as exactly `width` decimal digits (zero-padded) into `buf` at `at`. */
function writeDigits(buf: Buffer, at: number, width: number, value: number): void {
  let v = value;
  for (let i = width - 1; i >= 0; i--) {
    const q = Math.floor(v / 10);
    buf[at + i] = 48 + (v - q * 10);
    v = q;
  }
}

/** Reads `width` decimal digits from `buf` at `at`; NaN if a byte is not a digit. */
export function readDigits(buf: Buffer, at: number, width: number): number {
  let v = 0;
  for (let i = 0; i < width; i++) {
    const d = buf[at + i]! - 48;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  return v;
}
