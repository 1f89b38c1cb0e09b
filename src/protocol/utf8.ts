/**
 * Incremental UTF-8 validation that fails as soon as an invalid byte arrives,
 * even when a code point is split across frames or TCP chunks.
 *
 * The bulk of each chunk is checked by Node's native `isUtf8`; a small DFA
 * (Unicode Table 3-7, well-formed byte sequences) handles the at most three
 * bytes of a code point that straddles a chunk boundary.
 */
import { isUtf8 } from 'node:buffer';

/** Streaming validator: feed chunks with `push`; at the end of the message, `complete` must be true. */
export class Utf8Validator {
  /** Continuation bytes still needed for the pending code point. */
  private needed = 0;
  /** Allowed range for the next continuation byte (narrowed after E0, ED, F0, F4). */
  private lower = 0x80;
  private upper = 0xbf;

  /** Resets to the start of a new message. */
  reset(): void {
    this.needed = 0;
    this.lower = 0x80;
    this.upper = 0xbf;
  }

  /** Whether the input so far ends on a code point boundary. */
  get complete(): boolean {
    return this.needed === 0;
  }

  /**
   * Validates the next chunk. Returns false as soon as the bytes seen so far
   * cannot be the prefix of valid UTF-8.
   */
  push(chunk: Uint8Array): boolean {
    const length = chunk.length;
    let i = 0;
    // Finish a code point begun in an earlier chunk.
    while (this.needed > 0 && i < length) {
      if (!this.step(chunk[i]!)) return false;
      i++;
    }
    if (i === length) return true;
    // Find where an incomplete trailing code point begins, if any.
    const end = incompleteTailStart(chunk, i);
    if (end > i && !isUtf8(chunk.subarray(i, end))) return false;
    for (let j = end; j < length; j++) {
      if (!this.step(chunk[j]!)) return false;
    }
    return true;
  }

  /** Validates a whole message at once (no state kept). */
  static validate(data: Uint8Array): boolean {
    return isUtf8(data);
  }

  /** Feeds one byte to the DFA; false when it cannot continue valid UTF-8. */
  private step(byte: number): boolean {
    if (this.needed === 0) {
      if (byte < 0x80) return true;
      if (byte >= 0xc2 && byte <= 0xdf) {
        this.needed = 1;
      } else if (byte >= 0xe0 && byte <= 0xef) {
        this.needed = 2;
        if (byte === 0xe0) this.lower = 0xa0;
        else if (byte === 0xed) this.upper = 0x9f;
      } else if (byte >= 0xf0 && byte <= 0xf4) {
        this.needed = 3;
        if (byte === 0xf0) this.lower = 0x90;
        else if (byte === 0xf4) this.upper = 0x8f;
      } else {
        return false;
      }
      return true;
    }
    if (byte < this.lower || byte > this.upper) return false;
    this.lower = 0x80;
    this.upper = 0xbf;
    this.needed--;
    return true;
  }
}

/**
 * Index in `chunk` (≥ from) where a trailing, not yet complete, multi-byte
 * sequence starts; `chunk.length` when the chunk ends on a boundary or with
 * bytes that are invalid anyway (`isUtf8` over the whole chunk then reports them).
 */
function incompleteTailStart(chunk: Uint8Array, from: number): number {
  const length = chunk.length;
  const limit = Math.max(from, length - 3);
  for (let k = length - 1; k >= limit; k--) {
    const byte = chunk[k]!;
    if (byte < 0x80) return length;
    if (byte >= 0xc0) {
      const size = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
      return length - k < size ? k : length;
    }
  }
  return length;
}
