/**
 * Frames shared by every recipient of a broadcast: the plain encoding,
 * made at once, and a compressed encoding per compressor (one per distinct
 * permessage-deflate parameter set), made the first time a recipient that
 * agreed on it is met. A broadcast is therefore deflated at most once per
 * parameter set, never once per recipient, and not at all when no
 * recipient agreed on deflate.
 */
import type { MessageCompressor } from '../protocol/deflate.ts';
import { encodeMessage, type DataOpcode } from '../protocol/frame.ts';

/** One message of a broadcast, kept so that it can be compressed later. */
export interface SharedMessage {
  opcode: DataOpcode;
  /** The payload, a view of `frame` (or a copy when it was fragmented): later changes by the caller do not show. */
  payload: Buffer;
  /** Its plain frame(s). */
  frame: Buffer;
}

/** Encodes a message once, plain, keeping the payload for compressed encodings. */
export function sharedMessage(
  opcode: DataOpcode,
  data: Uint8Array | string,
  fragmentSize: number,
): SharedMessage {
  const frame = encodeMessage(opcode, data, fragmentSize);
  const length = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  const payload =
    fragmentSize > 0 && length > fragmentSize
      ? Buffer.from(data as Uint8Array)
      : frame.subarray(frame.length - length);
  return { opcode, payload, frame };
}

/** The frames of one or more messages, written as one Buffer, in each encoding asked for. */
export class SharedFrames {
  /** Every message's frames, plain. */
  readonly plain: Buffer;
  /** Compressed encodings made so far: compressor, frames, compressor, frames… */
  private variants: Array<MessageCompressor | Buffer> | null = null;

  constructor(
    private readonly messages: readonly SharedMessage[],
    private readonly fragmentSize: number,
  ) {
    this.plain = messages.length === 1 ? messages[0]!.frame : Buffer.concat(messages.map((m) => m.frame));
  }

  /** Messages carried. */
  get count(): number {
    return this.messages.length;
  }

  /** The frames for a recipient using `compressor` (null or undefined: the plain frames). */
  for(compressor: MessageCompressor | null | undefined): Buffer {
    if (compressor === null || compressor === undefined) return this.plain;
    const variants = this.variants;
    if (variants !== null) {
      for (let i = 0; i < variants.length; i += 2) {
        if (variants[i] === compressor) return variants[i + 1] as Buffer;
      }
    }
    const frames = this.compress(compressor);
    (this.variants ??= []).push(compressor, frames);
    return frames;
  }

  /** Deflated frames of every message that reaches the threshold; the others stay plain. */
  private compress(compressor: MessageCompressor): Buffer {
    let changed = false;
    const parts = this.messages.map((m) => {
      if (!compressor.wants(m.payload.length)) return m.frame;
      changed = true;
      return encodeMessage(m.opcode, compressor.compress(m.payload), this.fragmentSize, undefined, true);
    });
    if (!changed) return this.plain;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}
