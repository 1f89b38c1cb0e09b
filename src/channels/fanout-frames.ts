/**
 * The pushes of one channel in one event-loop turn, and the frames they
 * become: at most one frame per encoding and kind of subscriber (with or
 * without join/leave pushes), each built only when a subscriber needs it
 * and shared by every subscriber that gets it.
 */
import { Opcode, encodeMessage } from '../protocol/frame.ts';

/** One push waiting for the end of the turn, in both encodings. */
export class PendingPush {
  private encoded: Buffer | null = null;

  constructor(
    /** A join or leave push: only for subscribers that asked for them. */
    readonly jl: boolean,
    /** The JSON line; null when the push has no JSON form (binary data): JSON subscribers skip it. */
    readonly json: string | null,
    private readonly encode: () => Buffer,
  ) {}

  /** The delimited protobuf Reply, encoded on first use. */
  protobuf(): Buffer {
    return (this.encoded ??= this.encode());
  }
}

/** Frame slots: JSON all, JSON without join/leave, protobuf all, protobuf without join/leave. */
const SLOTS = 4;

/** The frames of one channel's pending pushes, built lazily per encoding and join/leave choice. */
export class FanoutFrames {
  private readonly frames: Array<Buffer | null | undefined> = new Array<Buffer | null | undefined>(SLOTS);
  private readonly counts = [0, 0, 0, 0];

  constructor(private readonly pending: readonly PendingPush[]) {}

  /** The frame for a subscriber (null: nothing for it); `count` tells how many pushes it holds. */
  frame(protobuf: boolean, joinLeave: boolean): Buffer | null {
    const slot = (protobuf ? 2 : 0) + (joinLeave ? 0 : 1);
    const built = this.frames[slot];
    if (built !== undefined) return built;
    return (this.frames[slot] = this.build(slot, protobuf, joinLeave));
  }

  /** Pushes in the frame `frame(protobuf, joinLeave)` returned. */
  count(protobuf: boolean, joinLeave: boolean): number {
    return this.counts[(protobuf ? 2 : 0) + (joinLeave ? 0 : 1)]!;
  }

  private build(slot: number, protobuf: boolean, joinLeave: boolean): Buffer | null {
    if (protobuf) {
      const parts: Buffer[] = [];
      for (const p of this.pending) if (joinLeave || !p.jl) parts.push(p.protobuf());
      this.counts[slot] = parts.length;
      if (parts.length === 0) return null;
      return encodeMessage(Opcode.BINARY, parts.length === 1 ? parts[0]! : Buffer.concat(parts), 0);
    }
    const lines: string[] = [];
    for (const p of this.pending) if ((joinLeave || !p.jl) && p.json !== null) lines.push(p.json);
    this.counts[slot] = lines.length;
    if (lines.length === 0) return null;
    return encodeMessage(Opcode.TEXT, lines.length === 1 ? lines[0]! : lines.join('\n'), 0);
  }
}
