// permessage-deflate on the suite's side (RFC 7692), written independently of
// the server's code so the judge does not share its mistakes: reading the
// server's answer, compressing the client's messages (with or without
// context takeover, as agreed), and inflating the server's messages within
// exactly the window the server agreed to.
import { constants, createDeflateRaw, inflateRawSync, type DeflateRaw } from 'node:zlib';

/** The server's permessage-deflate answer, read strictly. */
export interface DeflateAnswer {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number;
  clientMaxWindowBits: number;
  /** The header as received. */
  raw: string;
}

const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** Reads `Sec-WebSocket-Extensions` of a 101; null when absent. Throws on anything RFC 7692 forbids in an answer. */
export function readAnswer(header: string | undefined): DeflateAnswer | null {
  if (header === undefined) return null;
  const elements = header.split(',');
  if (elements.length !== 1) throw new Error(`more than one extension answered: ${header}`);
  const [name, ...params] = elements[0]!.split(';').map((p) => p.trim());
  if (name !== 'permessage-deflate') throw new Error(`unexpected extension answered: ${header}`);
  const answer: DeflateAnswer = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
    raw: header,
  };
  const seen = new Set<string>();
  for (const param of params) {
    const [key = '', value] = param.split('=').map((p) => p.trim());
    if (seen.has(key)) throw new Error(`parameter answered twice: ${header}`);
    seen.add(key);
    const bits = value === undefined ? NaN : Number(value);
    if (key === 'server_no_context_takeover' && value === undefined) answer.serverNoContextTakeover = true;
    else if (key === 'client_no_context_takeover' && value === undefined)
      answer.clientNoContextTakeover = true;
    else if (key === 'server_max_window_bits' && bits >= 8 && bits <= 15) answer.serverMaxWindowBits = bits;
    else if (key === 'client_max_window_bits' && bits >= 8 && bits <= 15) answer.clientMaxWindowBits = bits;
    else throw new Error(`invalid parameter in the answer: ${param}`);
  }
  return answer;
}

/**
 * Inflates one message from the server with a fresh inflater of exactly the
 * agreed window: a server that kept context or used a larger window fails here.
 */
export function inflateServerMessage(payload: Buffer, answer: DeflateAnswer): Buffer {
  if (!answer.serverNoContextTakeover) throw new Error('the judge needs server_no_context_takeover');
  return inflateRawSync(Buffer.concat([payload, TAIL]), {
    windowBits: answer.serverMaxWindowBits,
    finishFlush: constants.Z_SYNC_FLUSH,
  });
}

/**
 * The client's compressor: one zlib stream for the connection when context
 * takeover is allowed (each message then refers back to the ones before, as
 * browsers do), a fresh one per message otherwise.
 */
export class ClientCompressor {
  private stream: DeflateRaw | null = null;

  constructor(
    private readonly windowBits: number,
    private readonly takeover: boolean,
  ) {}

  /** From the answer: the window the server allowed, context takeover unless it said no. */
  static forAnswer(answer: DeflateAnswer, forceNoTakeover = false): ClientCompressor {
    return new ClientCompressor(
      answer.clientMaxWindowBits,
      !answer.clientNoContextTakeover && !forceNoTakeover,
    );
  }

  /** The compressed payload of one message (flushed, the trailing 00 00 ff ff removed). */
  async compress(data: Buffer): Promise<Buffer> {
    const stream = (this.stream ??= createDeflateRaw({ windowBits: Math.max(9, this.windowBits) }));
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
    };
    stream.on('data', onData);
    stream.write(data);
    await new Promise<void>((resolve) => stream.flush(constants.Z_SYNC_FLUSH, () => resolve()));
    stream.off('data', onData);
    if (!this.takeover) this.close();
    const out = Buffer.concat(chunks);
    if (!out.subarray(-4).equals(TAIL))
      throw new Error('flushed deflate output does not end with 00 00 ff ff');
    return out.subarray(0, out.length - 4);
  }

  close(): void {
    this.stream?.close();
    this.stream = null;
  }
}
