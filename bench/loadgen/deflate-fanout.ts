/**
 * Fan-out through permessage-deflate (RFC 7692), measured from the wire:
 * every client offers `permessage-deflate; client_no_context_takeover`, the
 * subscribers count the data frames and the bytes they read (no inflating
 * per delivery), and one frame per run is inflated and compared with what
 * was published, so a server that mangles or does not compress is caught.
 *
 * It runs in the calling process (one room, ~1,000 sockets); publishing is
 * open-loop at a fixed rate of uncompressed 1 KiB-class JSON text messages.
 */
import net from 'node:net';
import { constants, inflateRawSync } from 'node:zlib';
import { FrameParser } from './frame-parser.ts';
import {
  OPCODE_CLOSE,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
  maskedFrame,
  newMask,
  roomPath,
  upgradeRequest,
} from './client-frames.ts';
import type { Target } from './index.ts';

/** The extension offer every client of this run sends. */
export const DEFLATE_OFFER = 'permessage-deflate; client_no_context_takeover';
const HEADER_END = Buffer.from('\r\n\r\n');
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const CONNECT_TIMEOUT_MS = 10_000;

/** What to run. */
export interface DeflateFanoutSpec {
  target: Target;
  room: string;
  subscribers: number;
  /** Messages per second of the single publisher. */
  ratePerSec: number;
  payloadBytes: number;
  warmupMs: number;
  durationMs: number;
}

/** What the subscribers saw in the measurement window. */
export interface DeflateFanoutResult {
  /** Connections whose handshake answer agreed permessage-deflate. */
  negotiated: number;
  connectFailures: number;
  sent: number;
  /** Data frames received by subscribers (and the publisher) in the window. */
  delivered: number;
  deliveriesPerSec: number;
  /** Bytes read from the sockets in the window (frame headers included). */
  wireBytes: number;
  /** The sanity frame was compressed (RSV1) and inflated to the published payload. */
  inflateChecked: boolean;
  windowSec: number;
}

/** A JSON text payload of about `bytes` bytes, varied by `seq` like real messages. */
export function jsonPayload(bytes: number, seq: number): Buffer {
  const base = { type: 'update', seq, room: 'bench', at: 1_700_000_000_000 + seq, items: [] as unknown[] };
  let i = 0;
  while (JSON.stringify(base).length < bytes - 60) {
    base.items.push({ id: i, name: `item-${i}`, price: (i * 37) % 1000, ok: i % 3 === 0 });
    i++;
  }
  const text = JSON.stringify(base);
  return Buffer.from(text.length < bytes ? text + ' '.repeat(bytes - text.length) : text);
}

class Client extends FrameParser {
  socket: net.Socket | null = null;
  negotiated = false;
  counting = false;
  frames = 0;
  bytes = 0;
  private handshake: Buffer | null = Buffer.alloc(0);
  private readonly mask = newMask();
  /** Collects the first data frame's raw bytes when this client is the checker. */
  firstFrame: Buffer[] | null;
  firstDone = false;

  constructor(
    private readonly target: Target,
    private readonly room: string,
    checker: boolean,
  ) {
    super(2);
    this.firstFrame = checker ? [] : null;
  }

  open(localAddress: string): Promise<boolean> {
    return new Promise((resolve) => {
      const t = this.target;
      const socket = net.connect({ host: t.host, port: t.port, localAddress, noDelay: true });
      this.socket = socket;
      const timer = setTimeout(() => done(false), CONNECT_TIMEOUT_MS);
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        if (!ok) socket.destroy();
        resolve(ok);
      };
      socket.on('error', () => done(false));
      socket.on('close', () => done(false));
      socket.on('data', (chunk: Buffer) => {
        if (this.handshake === null) {
          if (this.counting) this.bytes += chunk.length;
          this.feed(chunk, 0, chunk.length);
          return;
        }
        const hs = Buffer.concat([this.handshake, chunk]);
        const end = hs.indexOf(HEADER_END);
        if (end < 0) {
          this.handshake = hs;
          return;
        }
        const head = hs.toString('latin1', 0, end);
        this.handshake = null;
        if (!head.startsWith('HTTP/1.1 101')) return done(false);
        this.negotiated = /^sec-websocket-extensions:[^\r\n]*permessage-deflate/im.test(head);
        this.scanPayload = this.firstFrame !== null;
        done(true);
        if (end + 4 < hs.length) this.feed(hs, end + 4, hs.length);
      });
      socket.write(
        upgradeRequest(t.host, t.port, roomPath('ws', t.path, this.room), {
          ...t.headers,
          'Sec-WebSocket-Extensions': DEFLATE_OFFER,
        }),
      );
    });
  }

  protected override onPayload(chunk: Buffer, start: number, end: number): void {
    if (this.firstFrame !== null && !this.firstDone)
      this.firstFrame.push(Buffer.from(chunk.subarray(start, end)));
  }

  protected override onFrame(opcode: number, _fin: boolean, prefixLen: number): void {
    if (opcode < 8) {
      if (this.firstFrame !== null && !this.firstDone) {
        this.firstDone = true;
        this.scanPayload = false;
      }
      if (this.counting) this.frames++;
    } else if (opcode === OPCODE_PING) {
      this.write(maskedFrame(OPCODE_PONG, Buffer.from(this.prefix.subarray(0, prefixLen)), this.mask));
    } else if (opcode === OPCODE_CLOSE) this.socket?.destroy();
  }

  write(frame: Buffer): void {
    if (this.socket !== null && !this.socket.destroyed) this.socket.write(frame);
  }
}

/** A masked text frame, uncompressed (clients need not compress; RSV1 clear). */
function textFrame(payload: Buffer, mask: Buffer): Buffer {
  return maskedFrame(OPCODE_TEXT, payload, mask);
}

/** Opens the room, publishes for warm-up + window, and reports what arrived in the window. */
export async function runDeflateFanout(spec: DeflateFanoutSpec): Promise<DeflateFanoutResult> {
  const clients: Client[] = [];
  let failures = 0;
  try {
    for (let start = 0; start < spec.subscribers + 1; start += 200) {
      const batch: Array<Promise<void>> = [];
      for (let i = start; i < Math.min(spec.subscribers + 1, start + 200); i++) {
        const c = new Client(spec.target, spec.room, i === 0);
        clients.push(c);
        batch.push(c.open(`127.0.0.${2 + (i % 250)}`).then((ok) => void (ok || failures++)));
      }
      await Promise.all(batch);
    }
    const publisher = clients[clients.length - 1]!;
    const mask = newMask();
    const first = jsonPayload(spec.payloadBytes, 0);
    let sent = 0;
    const interval = 1000 / spec.ratePerSec;
    const t0 = performance.now();
    let windowStart = 0;
    let windowEnd = 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now() - t0;
        const due = Math.floor(now / interval);
        while (sent <= due && now < spec.warmupMs + spec.durationMs) {
          publisher.write(textFrame(sent === 0 ? first : jsonPayload(spec.payloadBytes, sent), mask));
          sent++;
        }
        if (windowStart === 0 && now >= spec.warmupMs) {
          windowStart = performance.now();
          for (const c of clients) c.counting = true;
        }
        if (now >= spec.warmupMs + spec.durationMs) {
          for (const c of clients) c.counting = false;
          windowEnd = performance.now();
          resolve();
          return;
        }
        setTimeout(tick, Math.min(interval, 5));
      };
      tick();
    });
    const windowSec = (windowEnd - windowStart) / 1000;
    const delivered = clients.reduce((n, c) => n + c.frames, 0);
    const wireBytes = clients.reduce((n, c) => n + c.bytes, 0);
    let inflateChecked = false;
    const raw = clients[0]!.firstFrame;
    if (raw !== null && raw.length > 0) {
      const body = Buffer.concat(raw);
      try {
        inflateChecked =
          body.length < first.length &&
          inflateRawSync(Buffer.concat([body, TAIL]), { finishFlush: constants.Z_SYNC_FLUSH }).equals(first);
      } catch {
        inflateChecked = false;
      }
    }
    return {
      negotiated: clients.filter((c) => c.negotiated).length,
      connectFailures: failures,
      sent,
      delivered,
      deliveriesPerSec: windowSec > 0 ? delivered / windowSec : 0,
      wireBytes,
      inflateChecked,
      windowSec,
    };
  } finally {
    for (const c of clients) c.socket?.destroy();
  }
}
