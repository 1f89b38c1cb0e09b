/** The line-rate peer's pre-built write buffer (bench/peers/line-rate.ts). */

const OPCODE_BINARY = 2;

/**
 * One write's worth of unmasked binary frames of `payloadBytes` each (as many
 * whole frames as fit in `writeBytes`, at least one), and their count.
 */
export function lineRateFrames(payloadBytes: number, writeBytes: number): { buffer: Buffer; frames: number } {
  const header = payloadBytes < 126 ? 2 : 4;
  const frameBytes = header + payloadBytes;
  const frames = Math.max(1, Math.floor(writeBytes / frameBytes));
  const buffer = Buffer.alloc(frames * frameBytes, 0x78);
  for (let i = 0; i < frames; i++) {
    const at = i * frameBytes;
    buffer[at] = 0x80 | OPCODE_BINARY;
    if (header === 2) buffer[at + 1] = payloadBytes;
    else {
      buffer[at + 1] = 126;
      buffer.writeUInt16BE(payloadBytes, at + 2);
    }
    buffer.writeDoubleLE(0, at + header);
    buffer.writeUInt32LE(i, at + header + 8);
  }
  return { buffer, frames };
}
