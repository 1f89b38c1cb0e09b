/**
 * The load generator's side of the Centrifuge client protocol v2 (JSON
 * encoding), as both wshub's channel endpoint and Centrifugo speak it: the
 * three commands a subscriber sends (connect, subscribe, the pong `{}`), the
 * publication body the publisher posts to the server API, and a scanner that
 * counts publication pushes in a frame without parsing any JSON.
 *
 * Servers batch: one WebSocket frame may carry several newline-separated
 * replies, pushes and pings. The scanner therefore looks at every payload
 * byte through native `indexOf` calls: each `"pub":` is one publication
 * push, a line that is exactly `{}` is a ping to answer (and only that:
 * Centrifugo closes a connection that sends a pong nobody asked for, with
 * 3501 bad request), and the `"t":` after the first `"pub":` is that
 * publication's send time, the frame's latency sample. Needles that
 * straddle two reads are found through a few carried bytes.
 */
import { OPCODE_TEXT, maskedFrame } from './client-frames.ts';

const PUB = Buffer.from('"pub":');
const PING = Buffer.from('{}');
const STAMP = Buffer.from('"t":');
/** Bytes carried from one piece of a payload to the next: the longest needle minus one. */
const CARRY = PUB.length - 1;
/** Digits of a send time in µs since the epoch (1e15 ≤ t < 1e16 until the year 2286). */
export const STAMP_DIGITS = 16;

/** The command ids the generator uses; replies are matched by them. */
export const CONNECT_ID = 1;
export const SUBSCRIBE_ID = 2;

/** The masked text frame of `{"id":1,"connect":{…}}`, with a connection token when given. */
export function connectFrame(mask: Buffer, token?: string): Buffer {
  const request = token === undefined ? {} : { token };
  return maskedFrame(OPCODE_TEXT, Buffer.from(JSON.stringify({ id: CONNECT_ID, connect: request })), mask);
}

/** The masked text frame of `{"id":2,"subscribe":{"channel":…}}`. */
export function subscribeFrame(mask: Buffer, channel: string): Buffer {
  return maskedFrame(
    OPCODE_TEXT,
    Buffer.from(JSON.stringify({ id: SUBSCRIBE_ID, subscribe: { channel } })),
    mask,
  );
}

/** The masked text frame of the empty command `{}`, the protocol's pong. */
export function pongFrame(mask: Buffer): Buffer {
  return maskedFrame(OPCODE_TEXT, PING, mask);
}

/**
 * What a reply with command id `id` says, judged from the first bytes of
 * its frame (the reply may follow a ping or a push on an earlier line):
 * `ok` (a result), `error` (an error reply), or `other` (not this reply).
 */
export function replyKind(prefix: Buffer, prefixLen: number, id: number): 'ok' | 'error' | 'other' {
  const head = prefix.toString('latin1', 0, prefixLen);
  const lead = `{"id":${id},"`;
  // A server may put a ping (`{}`) or a push before the reply in the same frame.
  const at = head.startsWith(lead) ? 0 : head.indexOf(`\n${lead}`) + 1;
  if (at <= 0 && !head.startsWith(lead)) return 'other';
  return head.startsWith('error"', at + lead.length) ? 'error' : 'ok';
}

/**
 * The publisher's request body, `{"channel":…,"data":{"t":<µs>,"p":"xx…"}}`,
 * where `data` is exactly `payloadBytes` long (at least 30) and `t` is the
 * scheduled send time in whole microseconds since the epoch.
 */
export class PublicationTemplate {
  /** The smallest `data` this layout can carry: `{"t":` + 16 digits + `,"p":"` + `"}` + one filler byte. */
  static readonly MIN_PAYLOAD = 5 + STAMP_DIGITS + 6 + 2 + 1;
  private readonly body: Buffer;
  private readonly stampAt: number;

  constructor(channel: string, payloadBytes: number) {
    const filler = 'x'.repeat(Math.max(payloadBytes, PublicationTemplate.MIN_PAYLOAD) - 29);
    const data = `{"t":${'1'.repeat(STAMP_DIGITS)},"p":"${filler}"}`;
    const text = `{"channel":${JSON.stringify(channel)},"data":${data}}`;
    this.body = Buffer.from(text);
    this.stampAt = this.body.indexOf(STAMP) + STAMP.length;
  }

  /** A fresh body stamped with `timeMs` (ms since the epoch, fractional). */
  stamped(timeMs: number): Buffer {
    const out = Buffer.from(this.body);
    let v = Math.round(timeMs * 1000);
    if (!(v >= 1e15 && v < 1e16)) throw new RangeError(`send time ${timeMs} ms is out of the stamp's range`);
    for (let i = this.stampAt + STAMP_DIGITS - 1; i >= this.stampAt; i--) {
      const q = Math.floor(v / 10);
      out[i] = 48 + (v - q * 10);
      v = q;
    }
    return out;
  }
}

/**
 * Counts publication pushes and pings in one message's payload fed in
 * pieces, and reads the first publication's send time. Call `push` for
 * every piece, read the fields, then `reset` before the next message.
 */
export class PushScanner {
  /** `"pub":` occurrences seen so far in this message. */
  pubs = 0;
  /** A `{}` line seen whole. */
  private pingSeen = false;
  /** The bytes seen so far end with a `{}` that began a line: a ping if the message ends here or a line break follows. */
  private pingAtEnd = false;
  /** Bytes seen so far in this message. */
  private seen = 0;
  /** The first publication's send time in ms since the epoch; NaN until read (or when unreadable). */
  firstStampMs = NaN;
  private stampTried = false;
  private readonly carry = Buffer.alloc(CARRY);
  private carryLen = 0;
  private readonly join = Buffer.alloc(2 * CARRY);

  /** Scans bytes [start, end) of `chunk`, the next piece of the message. */
  push(chunk: Buffer, start: number, end: number): void {
    if (end <= start) return;
    if (this.pingAtEnd) {
      this.pingAtEnd = false;
      if (chunk[start] === 0x0a) this.pingSeen = true;
    }
    if (this.carryLen > 0) this.straddling(chunk, start, end);
    const view = chunk.subarray(start, end);
    let at = view.indexOf(PUB);
    if (at >= 0 && !this.stampTried) {
      this.stampTried = true;
      this.firstStampMs = readStamp(view, at + PUB.length);
    }
    while (at >= 0) {
      this.pubs++;
      at = view.indexOf(PUB, at + PUB.length);
    }
    if (!this.pingSeen) this.findPing(view);
    this.seen += view.length;
    this.keepTail(view);
  }

  /** Whether the message (as far as seen) holds a ping: a line that is exactly `{}`. */
  get ping(): boolean {
    return this.pingSeen || this.pingAtEnd;
  }

  /** Forgets the message, ready for the next one. */
  reset(): void {
    this.pubs = 0;
    this.pingSeen = false;
    this.pingAtEnd = false;
    this.seen = 0;
    this.firstStampMs = NaN;
    this.stampTried = false;
    this.carryLen = 0;
  }

  /** Counts needles that begin in the carried bytes and end in this piece. */
  private straddling(chunk: Buffer, start: number, end: number): void {
    const head = Math.min(CARRY, end - start);
    const carried = this.carryLen;
    this.carry.copy(this.join, 0, 0, carried);
    chunk.copy(this.join, carried, start, start + head);
    const j = this.join.subarray(0, carried + head);
    for (let at = j.indexOf(PUB); at >= 0 && at < carried; at = j.indexOf(PUB, at + 1)) {
      if (at + PUB.length > carried) {
        this.pubs++;
        // The stamp follows a straddling first "pub": too rare to chase across pieces; no sample.
        this.stampTried = true;
      }
    }
    // A `{` ending the previous piece and a `}` opening this one.
    if (j[carried - 1] === 0x7b && j[carried] === 0x7d) {
      const before = carried >= 2 ? j[carried - 2] : this.seen === 1 ? 0x0a : -1;
      if (before === 0x0a) {
        if (end - start === 1) this.pingAtEnd = true;
        else if (chunk[start + 1] === 0x0a) this.pingSeen = true;
      }
    }
  }

  /** Looks for `{}` lines inside this piece (those straddling pieces are found by `straddling`). */
  private findPing(view: Buffer): void {
    for (let at = view.indexOf(PING); at >= 0; at = view.indexOf(PING, at + 1)) {
      const before = at > 0 ? view[at - 1] : this.seen === 0 ? 0x0a : this.carry[this.carryLen - 1];
      if (before !== 0x0a) continue;
      if (at + 2 === view.length) this.pingAtEnd = true;
      else if (view[at + 2] === 0x0a) {
        this.pingSeen = true;
        return;
      }
    }
  }

  /** Keeps the last CARRY bytes seen (this piece may be shorter than that). */
  private keepTail(view: Buffer): void {
    const n = view.length;
    if (n >= CARRY) {
      view.copy(this.carry, 0, n - CARRY, n);
      this.carryLen = CARRY;
      return;
    }
    const keep = Math.min(this.carryLen, CARRY - n);
    this.carry.copy(this.carry, 0, this.carryLen - keep, this.carryLen);
    view.copy(this.carry, keep, 0, n);
    this.carryLen = keep + n;
  }
}

/** Reads the `"t":<digits>` stamp that follows `from` in `view`; NaN when absent or cut off. */
function readStamp(view: Buffer, from: number): number {
  const at = view.indexOf(STAMP, from);
  if (at < 0) return NaN;
  const first = at + STAMP.length;
  if (first + STAMP_DIGITS >= view.length) return NaN;
  let v = 0;
  for (let i = first; i < first + STAMP_DIGITS; i++) {
    const d = view[i]! - 48;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  const next = view[first + STAMP_DIGITS]!;
  if (next >= 48 && next <= 57) return NaN;
  return v / 1000;
}
