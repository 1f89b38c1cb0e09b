// A TCP relay between an interop client and the server that keeps a copy of
// every frame in both directions, so the tests can check compression on the
// wire: which frames carry RSV1, and what their payloads inflate to
// (independently of either side's own inflater).
import { connect, createServer, type Server, type Socket } from 'node:net';
import { constants, createInflateRaw, type InflateRaw } from 'node:zlib';

/** One frame as it crossed the wire (payload unmasked). */
export interface TappedFrame {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  payload: Buffer;
}

/** One data message reassembled from its frames. */
export interface TappedMessage {
  opcode: number;
  /** RSV1 on its first frame. */
  compressed: boolean;
  /** The payload as sent (compressed when `compressed`). */
  payload: Buffer;
}

/** Frames of one direction, parsed after the HTTP head. */
class DirectionReader {
  head = '';
  readonly frames: TappedFrame[] = [];
  private buffered = Buffer.alloc(0);
  private inHead = true;

  push(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    if (this.inHead) {
      const end = this.buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.head = this.buffered.subarray(0, end).toString('latin1');
      this.buffered = this.buffered.subarray(end + 4);
      this.inHead = false;
    }
    for (;;) {
      const b = this.buffered;
      if (b.length < 2) return;
      let length = b[1]! & 0x7f;
      let at = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      const masked = (b[1]! & 0x80) !== 0;
      const mask = masked ? b.subarray(at, at + 4) : null;
      if (masked) at += 4;
      if (b.length < at + length) return;
      const payload = Buffer.from(b.subarray(at, at + length));
      if (mask !== null) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
      this.frames.push({
        fin: (b[0]! & 0x80) !== 0,
        rsv1: (b[0]! & 0x40) !== 0,
        opcode: b[0]! & 0x0f,
        payload,
      });
      this.buffered = b.subarray(at + length);
    }
  }

  /** Data messages, reassembled. */
  messages(): TappedMessage[] {
    const out: TappedMessage[] = [];
    let current: { opcode: number; compressed: boolean; parts: Buffer[] } | null = null;
    for (const frame of this.frames) {
      if (frame.opcode >= 0x8) continue;
      if (frame.opcode !== 0) current = { opcode: frame.opcode, compressed: frame.rsv1, parts: [] };
      current?.parts.push(frame.payload);
      if (frame.fin && current !== null) {
        out.push({
          opcode: current.opcode,
          compressed: current.compressed,
          payload: Buffer.concat(current.parts),
        });
        current = null;
      }
    }
    return out;
  }
}

/** A relay on a free loopback port in front of `targetPort`. */
export class WireTap {
  /** What the client sent, and what the server sent, per connection in order of arrival. */
  readonly connections: Array<{ client: DirectionReader; server: DirectionReader }> = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<WireTap> {
    const holder: { tap?: WireTap } = {};
    const server = createServer((downstream) => {
      const upstream = connect({ host: '127.0.0.1', port: targetPort });
      const record = { client: new DirectionReader(), server: new DirectionReader() };
      holder.tap!.connections.push(record);
      for (const s of [downstream, upstream]) {
        holder.tap!.sockets.add(s);
        s.on('close', () => holder.tap!.sockets.delete(s));
        s.on('error', () => {});
      }
      downstream.on('data', (chunk: Buffer) => {
        record.client.push(chunk);
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        record.server.push(chunk);
        downstream.write(chunk);
      });
      downstream.on('end', () => upstream.end());
      upstream.on('end', () => downstream.end());
      downstream.on('close', () => upstream.destroy());
      upstream.on('close', () => downstream.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    holder.tap = new WireTap(server, typeof address === 'object' && address !== null ? address.port : 0);
    return holder.tap;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Inflates one direction's compressed messages in order with one context
 * (so context takeover is followed; a sender that resets its context
 * inflates the same way). Plain messages are returned as they are.
 */
export async function inflateAll(messages: TappedMessage[]): Promise<Buffer[]> {
  let stream: InflateRaw | null = null;
  const out: Buffer[] = [];
  for (const m of messages) {
    if (!m.compressed) {
      out.push(m.payload);
      continue;
    }
    stream ??= createInflateRaw({ windowBits: 15 });
    const s = stream;
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
    };
    s.on('data', onData);
    s.write(Buffer.concat([m.payload, Buffer.from([0, 0, 0xff, 0xff])]));
    await new Promise<void>((resolve) => s.flush(constants.Z_SYNC_FLUSH, () => resolve()));
    s.off('data', onData);
    out.push(Buffer.concat(chunks));
  }
  stream?.close();
  return out;
}

/** The `Sec-WebSocket-Extensions` value of a recorded HTTP head, if any. */
export function extensionsOf(head: string): string | undefined {
  const line = head.split('\r\n').find((l) => /^sec-websocket-extensions:/i.test(l));
  return line?.slice(line.indexOf(':') + 1).trim();
}
