/**
 * permessage-deflate compression (RFC 7692 §7.2.1) and the per-endpoint
 * settings that connections share.
 *
 * Compression never keeps context: each message is compressed on its own
 * (`server_no_context_takeover` on the server, always agreed), so one
 * compressed frame can be written to every recipient that agreed on the same
 * window, and no connection holds a deflate context. One compressor exists
 * per distinct parameter set (level, memory level, window bits), shared by
 * every connection that uses it; the hub compresses a broadcast at most
 * once per compressor.
 */
import { constants, deflateRawSync, type ZlibOptions } from 'node:zlib';
import { negotiateDeflate, type DeflateAgreement, type DeflatePolicy } from './deflate-negotiation.ts';

/** The permessage-deflate settings of one endpoint (see docs/CONFIG.md for their costs). */
export interface DeflateSettings extends DeflatePolicy {
  /** Messages shorter than this many bytes are sent uncompressed. */
  threshold: number;
  /** zlib level 0–9 (1 fastest, 9 smallest). */
  level: number;
  /** zlib memory level 1–9 (memory of the compressor, not per connection). */
  memLevel: number;
}

/** Defaults of an endpoint with permessage-deflate on. */
export function defaultDeflateSettings(): DeflateSettings {
  return {
    threshold: 128,
    level: 3,
    memLevel: 8,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
    preferClientNoContextTakeover: true,
  };
}

/** The empty stored block every flushed message ends with; removed on send, put back to inflate. */
export const DEFLATE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/**
 * Compresses whole messages with fixed parameters, one at a time and
 * without context, so its output can be shared.
 */
export class MessageCompressor {
  private readonly zlibOptions: ZlibOptions;

  constructor(
    /** Messages shorter than this are not compressed. */
    readonly threshold: number,
    readonly level: number,
    readonly memLevel: number,
    readonly windowBits: number,
  ) {
    this.zlibOptions = {
      level,
      memLevel,
      // zlib raises a raw window of 8 to 9; its matches then stay within 250 bytes, inside an 8-bit window.
      windowBits: Math.max(windowBits, 9),
      finishFlush: constants.Z_SYNC_FLUSH,
    };
  }

  /** Whether a payload of `length` bytes is compressed. */
  wants(length: number): boolean {
    return length >= this.threshold && length > 0;
  }

  /** The compressed payload of one message (RFC 7692 §7.2.1: flushed, the final 00 00 ff ff removed). */
  compress(payload: Uint8Array | string): Buffer {
    const out = deflateRawSync(payload, this.zlibOptions);
    return out.subarray(0, out.length - DEFLATE_TAIL.length);
  }
}

/**
 * What one connection uses after negotiation: shared by every connection
 * with the same agreement (an object per parameter set, not per connection).
 */
export interface DeflateSession {
  /** Compresses this side's messages. */
  readonly compressor: MessageCompressor;
  /** Window of the peer's compressor, for this side's inflater. */
  readonly inflateWindowBits: number;
  /** The peer resets its context after each message: no inflate context outlives a message. */
  readonly inflateNoContextTakeover: boolean;
  /** The `Sec-WebSocket-Extensions` value of the 101. */
  readonly header: string;
}

/**
 * The permessage-deflate side of one server endpoint: negotiates and hands
 * out shared sessions and compressors. Created once per endpoint.
 */
export class DeflateEndpoint {
  private readonly sessions = new Map<string, DeflateSession>();
  private readonly compressors = new Map<number, MessageCompressor>();

  constructor(readonly settings: DeflateSettings) {}

  /** The session for an upgrade offering `header`, or null when no offer is accepted. */
  negotiate(header: string | string[] | undefined): DeflateSession | null {
    const agreement = negotiateDeflate(header, this.settings);
    return agreement === null ? null : this.sessionFor(agreement, 'server');
  }

  /** The shared session for an agreement, from the side named. */
  sessionFor(agreement: DeflateAgreement, side: 'server' | 'client'): DeflateSession {
    const key = `${side}|${agreement.header}`;
    let session = this.sessions.get(key);
    if (session === undefined) {
      const server = side === 'server';
      session = {
        compressor: this.compressor(server ? agreement.serverWindowBits : agreement.clientWindowBits),
        inflateWindowBits: server ? agreement.clientWindowBits : agreement.serverWindowBits,
        inflateNoContextTakeover: server
          ? agreement.clientNoContextTakeover
          : agreement.serverNoContextTakeover,
        header: agreement.header,
      };
      // Headers come from a handful of distinct offers; bounded all the same.
      if (this.sessions.size < 256) this.sessions.set(key, session);
    }
    return session;
  }

  private compressor(windowBits: number): MessageCompressor {
    let compressor = this.compressors.get(windowBits);
    if (compressor === undefined) {
      const s = this.settings;
      compressor = new MessageCompressor(s.threshold, s.level, s.memLevel, windowBits);
      this.compressors.set(windowBits, compressor);
    }
    return compressor;
  }
}
