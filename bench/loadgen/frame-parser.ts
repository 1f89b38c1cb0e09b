/**
 * Incremental, allocation-free parser for the frames a server sends to the
 * load generator. It reads each frame header (2 bytes + 2/8 extended length,
 * + 4 mask bytes if a server ever masks), copies only the first
 * `captureBytes` of the payload into a fixed per-connection buffer and skips
 * the rest, so a 1 KiB payload costs the same as a 16 B one. Frames may be
 * split across chunks at any byte.
 *
 * A subclass that must see whole payloads (the channel protocol counts
 * pushes inside each frame) sets `scanPayload`; every data frame's payload
 * is then handed to `onPayload` in the pieces it arrived in, before its
 * `onFrame` call.
 */

const STATE_HEADER = 0;
const STATE_PAYLOAD = 1;

export class FrameParser {
  /** The first payload bytes of the frame being read (valid up to `captured`). */
  readonly prefix: Buffer;
  private readonly header = Buffer.alloc(14);
  private state = STATE_HEADER;
  private headerLen = 0;
  private headerNeed = 2;
  private opcode = 0;
  private fin = false;
  private length = 0;
  private remaining = 0;
  private captured = 0;
  private captureWant = 0;

  private readonly dataCapture: number;
  /** When true, `onPayload` sees every byte of every data frame's payload. */
  protected scanPayload = false;

  /**
   * `dataCaptureBytes`: how many payload bytes of each data frame to keep;
   * control frames keep up to 125 (their maximum), so pings can be echoed.
   */
  constructor(dataCaptureBytes = 125) {
    this.dataCapture = Math.min(dataCaptureBytes, 125);
    this.prefix = Buffer.alloc(125);
  }

  /**
   * Called once per complete frame with its opcode, FIN bit, the number of
   * payload bytes available in `this.prefix`, and the full payload length.
   * Subclasses override it.
   */
  protected onFrame(opcode: number, fin: boolean, prefixLen: number, length: number): void {
    void opcode;
    void fin;
    void prefixLen;
    void length;
  }

  /**
   * Called with bytes [start, end) of `chunk`, a piece of the current data
   * frame's payload, when `scanPayload` is set. Subclasses override it.
   */
  protected onPayload(chunk: Buffer, start: number, end: number): void {
    void chunk;
    void start;
    void end;
  }

  /** Consumes bytes [start, end) of `chunk`. */
  feed(chunk: Buffer, start: number, end: number): void {
    let i = start;
    const prefix = this.prefix;
    while (i < end) {
      if (this.state === STATE_HEADER) {
        // Fast path: a whole unmasked frame with a 7- or 16-bit length lies in this chunk.
        if (this.headerLen === 0 && end - i >= 4) {
          const b0 = chunk[i]!;
          const b1 = chunk[i + 1]!;
          const len7 = b1 & 0x7f;
          if (b1 < 0x80 && len7 < 127) {
            const headerSize = len7 === 126 ? 4 : 2;
            const length = len7 === 126 ? (chunk[i + 2]! << 8) | chunk[i + 3]! : len7;
            if (end - i >= headerSize + length) {
              const opcode = b0 & 0x0f;
              const want = opcode >= 8 ? 125 : this.dataCapture;
              const captured = length < want ? length : want;
              const from = i + headerSize;
              for (let k = 0; k < captured; k++) prefix[k] = chunk[from + k]!;
              if (this.scanPayload && opcode < 8 && length > 0) this.onPayload(chunk, from, from + length);
              i = from + length;
              this.onFrame(opcode, (b0 & 0x80) !== 0, captured, length);
              continue;
            }
          }
        }
        this.header[this.headerLen++] = chunk[i++]!;
        if (this.headerLen === 2) {
          const len7 = this.header[1]! & 0x7f;
          this.headerNeed = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.header[1]! & 0x80 ? 4 : 0);
        }
        if (this.headerLen === this.headerNeed) this.startPayload();
        continue;
      }
      if (this.scanPayload && this.opcode < 8) {
        const n = this.remaining < end - i ? this.remaining : end - i;
        this.onPayload(chunk, i, i + n);
      }
      if (this.captured < this.captureWant) {
        let n = this.captureWant - this.captured;
        if (n > end - i) n = end - i;
        for (let k = 0; k < n; k++) prefix[this.captured + k] = chunk[i + k]!;
        this.captured += n;
        this.remaining -= n;
        i += n;
      }
      let skip = this.remaining;
      if (skip > end - i) skip = end - i;
      this.remaining -= skip;
      i += skip;
      if (this.remaining === 0) this.endFrame();
    }
  }

  private startPayload(): void {
    const h = this.header;
    this.fin = (h[0]! & 0x80) !== 0;
    this.opcode = h[0]! & 0x0f;
    const len7 = h[1]! & 0x7f;
    let length = len7;
    if (len7 === 126) length = (h[2]! << 8) | h[3]!;
    else if (len7 === 127) length = h.readUInt32BE(2) * 0x100000000 + h.readUInt32BE(6);
    this.length = length;
    this.remaining = length;
    this.captured = 0;
    const want = this.opcode >= 8 ? 125 : this.dataCapture;
    this.captureWant = length < want ? length : want;
    this.headerLen = 0;
    this.headerNeed = 2;
    if (length === 0) this.endFrame();
    else this.state = STATE_PAYLOAD;
  }

  private endFrame(): void {
    this.state = STATE_HEADER;
    this.onFrame(this.opcode, this.fin, this.captured, this.length);
  }
}
