/**
 * Protocol Buffers wire format, the parts the channel protocol uses:
 * varints (up to 64 bits, kept exact up to 2^53), length-delimited fields,
 * and skipping of unknown fields. The reader never reads past the bytes
 * it was given: every length is checked against what remains, and any
 * malformed input throws a WireError (a bad request to the caller).
 */
import { isUtf8 } from 'node:buffer';
import { WshubError } from '../errors.ts';

/** Wire types of the Protocol Buffers encoding. */
export const WireType = {
  VARINT: 0,
  FIXED64: 1,
  LEN: 2,
  START_GROUP: 3,
  END_GROUP: 4,
  FIXED32: 5,
} as const;

/** Groups nested deeper than this in a skipped field are refused. */
export const MAX_GROUP_DEPTH = 32;

/** Malformed Protocol Buffers input: truncated, an oversize varint, a wrong wire type, invalid UTF-8. */
export class WireError extends WshubError {
  constructor(message: string) {
    super('PROTOBUF_MALFORMED', message);
  }
}

const TWO_32 = 0x1_0000_0000;

/** A bounded reader over `buf[pos..end)`. */
export class ProtoReader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start = 0,
    public end = buf.length,
  ) {
    this.pos = start;
  }

  /** Whether bytes remain before `end`. */
  get more(): boolean {
    return this.pos < this.end;
  }

  /**
   * A varint as a number: exact below 2^53; larger values give NaN (no
   * field the channel protocol reads may hold them). At most 10 bytes, the
   * tenth holding a single bit, as the encoding allows.
   */
  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    const end = this.end;
    // Fast path: one byte.
    if (pos < end && buf[pos]! < 0x80) {
      this.pos = pos + 1;
      return buf[pos]!;
    }
    let low = 0;
    let shift = 0;
    // The low 28 bits with bit operations (4 bytes), the rest by arithmetic.
    for (; shift < 28; shift += 7) {
      if (pos >= end) throw new WireError('truncated varint');
      const b = buf[pos++]!;
      low |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return low >>> 0;
      }
    }
    let value = low >>> 0;
    let scale = 2 ** 28;
    for (let i = 4; i < 10; i++) {
      if (pos >= end) throw new WireError('truncated varint');
      const b = buf[pos++]!;
      if (i === 9 && b > 1) throw new WireError('varint longer than 64 bits');
      value += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) {
        this.pos = pos;
        return value <= Number.MAX_SAFE_INTEGER ? value : NaN;
      }
    }
    throw new WireError('varint longer than 10 bytes');
  }

  /** A varint truncated to its low 32 bits, unsigned (protobuf's uint32 rule). */
  uint32(): number {
    const start = this.pos;
    const v = this.varint();
    if (!Number.isNaN(v)) return v % TWO_32;
    // Above 2^53 only the low bits matter: read them again from the bytes.
    let low = 0;
    for (let i = 0; i < 5; i++) low += (this.buf[start + i]! & 0x7f) * 2 ** (7 * i);
    return low % TWO_32;
  }

  /** A varint truncated to its low 32 bits, signed (protobuf's int32 rule). */
  int32(): number {
    return this.uint32() | 0;
  }

  /**
   * A field key: field number × 8 + wire type (take them apart with
   * `key >>> 3` and `key & 7`). Field number 0 is malformed.
   */
  key(): number {
    const key = this.varint();
    if (Number.isNaN(key) || key > 0xffffffff) throw new WireError('field key out of range');
    if (key < 8) throw new WireError('field number 0');
    return key >>> 0;
  }

  /** The extent of a length-delimited field: [start, end) within the remaining bytes. */
  lengthDelimited(): [number, number] {
    const length = this.varint();
    if (Number.isNaN(length) || length > this.end - this.pos) throw new WireError('length past the end');
    const start = this.pos;
    this.pos += length;
    return [start, this.pos];
  }

  /** A length-delimited field as a view (no copy) of the input. */
  bytes(): Buffer {
    const [start, end] = this.lengthDelimited();
    return this.buf.subarray(start, end);
  }

  /** A length-delimited field as a string; invalid UTF-8 is malformed (proto3 strings are UTF-8). */
  string(): string {
    const [start, end] = this.lengthDelimited();
    if (start === end) return '';
    const view = this.buf.subarray(start, end);
    if (!isUtf8(view)) throw new WireError('string is not UTF-8');
    return view.toString('utf8');
  }

  /** Skips a field of an unknown number with the given wire type. */
  skip(wireType: number, field: number, depth = 0): void {
    switch (wireType) {
      case WireType.VARINT:
        this.varint();
        return;
      case WireType.FIXED64:
        this.advance(8);
        return;
      case WireType.LEN:
        this.lengthDelimited();
        return;
      case WireType.FIXED32:
        this.advance(4);
        return;
      case WireType.START_GROUP: {
        if (depth >= MAX_GROUP_DEPTH) throw new WireError('groups nested too deep');
        for (;;) {
          if (!this.more) throw new WireError('unterminated group');
          const inner = this.key();
          if ((inner & 7) === WireType.END_GROUP) {
            if (inner >>> 3 !== field) throw new WireError('mismatched end group');
            return;
          }
          this.skip(inner & 7, inner >>> 3, depth + 1);
        }
      }
      default:
        throw new WireError(`wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) throw new WireError('fixed field past the end');
    this.pos += n;
  }
}

/** Bytes a varint of `value` (a non-negative integer below 2^53) takes. */
export function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  if (value < 0x1000_0000) return 4;
  let n = 4;
  let v = Math.floor(value / 0x1000_0000);
  while (v > 0) {
    n++;
    v = Math.floor(v / 128);
  }
  return n;
}

/** Writes `value` (a non-negative integer below 2^53) as a varint at `pos`; returns the position after it. */
export function writeVarint(buf: Buffer, pos: number, value: number): number {
  while (value >= 0x80) {
    buf[pos++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[pos++] = value;
  return pos;
}

/** Writes a negative int32/int64 varint (ten bytes, two's complement over 64 bits) at `pos`. */
export function writeNegativeVarint(buf: Buffer, pos: number, value: number): number {
  // Low 32 bits, then the high 32 bits all ones for values down to -2^31.
  let low = value >>> 0;
  for (let i = 0; i < 4; i++) {
    buf[pos++] = (low & 0x7f) | 0x80;
    low >>>= 7;
  }
  // Bits 28..31 of low, then ones.
  buf[pos++] = (low & 0x0f) | 0x70 | 0x80;
  for (let i = 0; i < 4; i++) buf[pos++] = 0xff;
  buf[pos++] = 0x01;
  return pos;
}
