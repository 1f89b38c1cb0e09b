/**
 * The bytes a node publishes for one broadcast:
 *
 *   u8 version | u8 opcode | u8 originLength | origin | u32 sequence | payload
 *
 * The origin lets a node ignore its own echo; the sequence (per origin and
 * channel) lets receivers count messages lost in between.
 */
import type { DataOpcode } from '../protocol/frame.ts';

const VERSION = 1;
const FIXED = 3 + 4;

export interface Envelope {
  opcode: DataOpcode;
  origin: string;
  sequence: number;
  payload: Buffer;
}

/** Encodes a broadcast for the transport. `origin` must be at most 255 bytes of ASCII. */
export function encodeEnvelope(
  opcode: DataOpcode,
  origin: string,
  sequence: number,
  payload: Uint8Array,
): Buffer {
  const out = Buffer.allocUnsafe(FIXED + origin.length + payload.length);
  out[0] = VERSION;
  out[1] = opcode;
  out[2] = origin.length;
  out.write(origin, 3, 'latin1');
  out.writeUInt32BE(sequence >>> 0, 3 + origin.length);
  out.set(payload, FIXED + origin.length);
  return out;
}

/** Decodes an envelope; null for anything malformed (it is counted, never thrown). */
export function decodeEnvelope(data: Buffer): Envelope | null {
  if (data.length < FIXED || data[0] !== VERSION) return null;
  const opcode = data[1];
  if (opcode !== 1 && opcode !== 2) return null;
  const originLength = data[2]!;
  if (data.length < FIXED + originLength) return null;
  return {
    opcode,
    origin: data.toString('latin1', 3, 3 + originLength),
    sequence: data.readUInt32BE(3 + originLength),
    payload: data.subarray(FIXED + originLength),
  };
}
