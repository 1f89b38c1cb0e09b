/**
 * In-memory history streams: per channel, the publications kept (by count
 * and age) and the stream's position (offset and epoch), which is what
 * recovery compares against.
 *
 * Memory is bounded three ways: bytes over all channels (the globally oldest
 * publications go first), the number of streams (the least recently used is
 * forgotten) and time (publications after their ttl, idle streams after
 * metaTtl). Every operation costs O(log streams) or amortized O(1) per
 * publication touched; nothing scans all streams or all publications.
 *
 * Within a stream publications are only ever removed from the oldest end
 * (age, count, the byte budget) or all at once (remove), so the kept ones
 * are always the contiguous offsets `first..top`, and finding an offset is
 * arithmetic, not a search.
 */
import { randomBytes } from 'node:crypto';
import { ReplyErrorException, ReplyErrors } from './protocol.ts';

export interface StreamPosition {
  offset: number;
  epoch: string;
}

/** One stored publication; `json` is its encoding as a Publication object ('{"data":…,"offset":N,…}'), built once at append. */
export interface StoredPublication {
  offset: number;
  json: string;
  /** The data bytes, when they are not exactly those of `json`'s data (binary data, text that is not JSON): what protobuf readers get. */
  raw?: Buffer;
  /** The data has no JSON form: `json` lacks `data`, and JSON readers skip this publication. */
  binary?: boolean;
  /** UTF-8 length of `json`, plus the length of `raw`. */
  bytes: number;
  /** When it was appended (ms, the history's clock). */
  time: number;
}

export interface HistoryLimits {
  /** Bytes of stored publications over all channels (UTF-8 length of each json plus PUBLICATION_OVERHEAD); past it the globally oldest publications are trimmed. Default 64 MiB. */
  maxBytes: number;
  /** Streams (channels with history state) kept; past it the least recently used stream is forgotten entirely. Default 100 000. */
  maxStreams: number;
  /** Ms a stream's position and epoch are kept after its last use (append, read, top, recover, remove) once it holds no publications. Default 24 h. */
  metaTtl: number;
  /** Ms clock for tests (default: monotonic, performance.timeOrigin + performance.now()). */
  now?: () => number;
}

export const defaultHistoryLimits: Readonly<Required<Omit<HistoryLimits, 'now'>>> = Object.freeze({
  maxBytes: 64 * 1024 * 1024,
  maxStreams: 100_000,
  metaTtl: 24 * 60 * 60 * 1000,
});

/** Bytes each stored publication counts against maxBytes besides its json: the record, its string header, its slots in the stream and in the global order (about 110 measured on Node 20, rounded up). */
export const PUBLICATION_OVERHEAD = 128;

/** Due streams one sweep() handles at most, by default. */
export const SWEEP_STEPS = 10_000;

/** Kept publications of one channel and its position. */
class Stream {
  /** Kept publications, oldest first, from index `head`. */
  pubs: StoredPublication[] = [];
  head = 0;
  top = 0;
  ttl = 0;
  bytes = 0;
  lastUse: number;
  /** The stream's one live entry in the schedule; any other entry naming it is stale. */
  due: Due | null = null;
  dead = false;
  /** Neighbours in the least-recently-used list (older, newer). */
  older: Stream | null = null;
  newer: Stream | null = null;

  constructor(
    readonly channel: string,
    readonly epoch: string,
    now: number,
  ) {
    this.lastUse = now;
  }

  get count(): number {
    return this.pubs.length - this.head;
  }

  /** Offset of the oldest kept publication (top + 1 when none is kept). */
  get first(): number {
    return this.top - this.count + 1;
  }

  oldest(): StoredPublication | undefined {
    return this.pubs[this.head];
  }

  /** Drops the oldest kept publication; returns its accounted bytes. */
  dropOldest(): number {
    const pub = this.pubs[this.head];
    if (pub === undefined) return 0;
    this.pubs[this.head] = undefined as unknown as StoredPublication; // let the string go
    this.head++;
    // Compact once the dead prefix is the larger half: amortized O(1) per drop.
    if (this.head >= 32 && this.head * 2 >= this.pubs.length) {
      this.pubs = this.pubs.slice(this.head);
      this.head = 0;
    } else if (this.head === this.pubs.length) {
      this.pubs = [];
      this.head = 0;
    }
    const bytes = pub.bytes + PUBLICATION_OVERHEAD;
    this.bytes -= bytes;
    return bytes;
  }

  /** The kept publication at `offset` (which must be within first..top). */
  at(offset: number): StoredPublication {
    return this.pubs[this.head + offset - this.first] as StoredPublication;
  }
}

/** When a stream next needs the sweep: its oldest publication's expiry, or, with none kept, the end of its idle time. */
interface Due {
  at: number;
  stream: Stream;
}

/** In-memory history streams for every channel with history; see the module comment for the bounds. */
export class MemoryHistory {
  readonly #maxBytes: number;
  readonly #maxStreams: number;
  readonly #metaTtl: number;
  readonly #now: () => number;
  readonly #streams = new Map<string, Stream>();
  /** Least recently used first. */
  #lruOldest: Stream | null = null;
  #lruNewest: Stream | null = null;
  /** Min-heap of Due entries by `at`; stale entries are skipped when popped and purged when they outnumber live ones. */
  #schedule: Due[] = [];
  /** Every kept publication in append order (stream, offset), for trimming the globally oldest; stale entries are skipped and purged the same way. */
  #orderStreams: Stream[] = [];
  #orderOffsets: number[] = [];
  #orderHead = 0;
  #publications = 0;
  #bytes = 0;
  #trimmed = 0;

  /** Takes the limits (each defaults as in defaultHistoryLimits); throws RangeError for a limit that is not a positive number. */
  constructor(limits: Partial<HistoryLimits> = {}) {
    const { maxBytes, maxStreams, metaTtl } = { ...defaultHistoryLimits, ...stripUndefined(limits) };
    for (const [key, value] of Object.entries({ maxBytes, maxStreams, metaTtl })) {
      if (typeof value !== 'number' || !(value > 0)) {
        throw new RangeError(`history limit ${key} must be a number above 0, got ${String(value)}`);
      }
    }
    this.#maxBytes = maxBytes;
    this.#maxStreams = maxStreams;
    this.#metaTtl = metaTtl;
    this.#now = limits.now ?? (() => performance.timeOrigin + performance.now());
  }

  /**
   * Appends a publication to `channel`; returns the new position. `encode`
   * gets the new offset and returns the publication's JSON (if it throws,
   * the position does not advance). `size` and `ttl` are the channel's
   * historySize and historyTtl; with either at 0 the offset still advances
   * but nothing is kept (and what was kept is dropped). A publication bigger
   * than maxBytes is trimmed at once. `raw` and `binary` are kept with
   * the publication (see StoredPublication).
   */
  append(
    channel: string,
    encode: (offset: number) => string,
    size: number,
    ttl: number,
    raw?: Buffer,
    binary = false,
  ): StreamPosition {
    const now = this.#now();
    const stream = this.#use(channel, now);
    const offset = stream.top + 1;
    const json = encode(offset);
    stream.top = offset;
    stream.ttl = ttl;
    if (size > 0 && ttl > 0) {
      const pub: StoredPublication = { offset, json, bytes: Buffer.byteLength(json), time: now };
      if (raw !== undefined) {
        pub.raw = raw;
        pub.bytes += raw.length;
      }
      if (binary) pub.binary = true;
      const wasEmpty = stream.count === 0;
      stream.pubs.push(pub);
      stream.bytes += pub.bytes + PUBLICATION_OVERHEAD;
      this.#bytes += pub.bytes + PUBLICATION_OVERHEAD;
      this.#publications++;
      this.#orderStreams.push(stream);
      this.#orderOffsets.push(offset);
      while (stream.count > size) this.#dropOldest(stream);
      if (wasEmpty) this.#reschedule(stream, now + ttl);
    } else {
      // Nothing kept: whatever was kept before is behind a gap now.
      this.#clear(stream);
    }
    this.#expireOldest(stream, now);
    this.#trimToBudget();
    return { offset: stream.top, epoch: stream.epoch };
  }

  /** Current top of the stream (offset 0 and a fresh epoch for a channel never published to; the epoch is created then and kept). */
  top(channel: string): StreamPosition {
    const stream = this.#use(channel, this.#now());
    return { offset: stream.top, epoch: stream.epoch };
  }

  /**
   * Publications after `since` (or from the oldest kept when since is
   * undefined), at most `limit` (limit < 0 = all kept, 0 = none), oldest
   * first unless `reverse` (newest first; with since: those before
   * since.offset). Throws ReplyErrorException(UNRECOVERABLE_POSITION) when
   * since.epoch differs from the stream's epoch, and BAD_REQUEST when
   * since.offset is not a whole number of 0 or more.
   */
  read(
    channel: string,
    opts: { since?: StreamPosition; limit: number; reverse: boolean },
  ): { publications: StoredPublication[]; top: StreamPosition } {
    const now = this.#now();
    const stream = this.#use(channel, now);
    this.#expireOldest(stream, now);
    const top = { offset: stream.top, epoch: stream.epoch };
    const { since, reverse } = opts;
    if (since !== undefined && !(Number.isSafeInteger(since.offset) && since.offset >= 0)) {
      throw new ReplyErrorException(ReplyErrors.BAD_REQUEST);
    }
    if (since !== undefined && since.epoch !== stream.epoch) {
      throw new ReplyErrorException(ReplyErrors.UNRECOVERABLE_POSITION);
    }
    const limit = opts.limit < 0 ? Infinity : Number.isFinite(opts.limit) ? Math.floor(opts.limit) : 0;
    // The kept range that qualifies, as offsets lo..hi inclusive.
    let lo = stream.first;
    let hi = stream.top;
    if (since !== undefined) {
      if (reverse) hi = Math.min(hi, since.offset - 1);
      else lo = Math.max(lo, since.offset + 1);
    }
    const publications: StoredPublication[] = [];
    if (limit === 0 || lo > hi) return { publications, top };
    const n = Math.min(limit, hi - lo + 1);
    if (reverse) for (let o = hi; o > hi - n; o--) publications.push(stream.at(o));
    else for (let o = lo; o < lo + n; o++) publications.push(stream.at(o));
    return { publications, top };
  }

  /**
   * For subscribe with recovery: every publication after `since`, oldest
   * first, with recovered true, when the epoch matches, all of them are still
   * kept and there are at most `max` of them (max < 0: no cap); otherwise
   * recovered false and no publications (never a partial list).
   */
  recover(
    channel: string,
    since: StreamPosition,
    max: number,
  ): { publications: StoredPublication[]; top: StreamPosition; recovered: boolean } {
    const now = this.#now();
    const stream = this.#use(channel, now);
    this.#expireOldest(stream, now);
    const top = { offset: stream.top, epoch: stream.epoch };
    const missing = stream.top - since.offset;
    const fail = { publications: [], top, recovered: false };
    if (since.epoch !== stream.epoch || missing < 0 || !Number.isInteger(since.offset)) return fail;
    if (missing === 0) return { publications: [], top, recovered: true };
    if ((max >= 0 && missing > max) || stream.first > since.offset + 1) return fail;
    const publications: StoredPublication[] = [];
    for (let o = since.offset + 1; o <= stream.top; o++) publications.push(stream.at(o));
    return { publications, top, recovered: true };
  }

  /** Forgets the channel's publications (history_remove); the position and epoch stay, so recovery across the removal reports recovered false. */
  remove(channel: string): void {
    const stream = this.#streams.get(channel);
    if (stream === undefined) return;
    this.#use(channel, this.#now());
    this.#clear(stream);
  }

  /**
   * Forgets the channel's stream entirely: its next use starts a new epoch,
   * so every position taken before reports recovered false. For a node that
   * may have missed publications (it was not listening to other nodes).
   */
  reset(channel: string): void {
    const stream = this.#streams.get(channel);
    if (stream === undefined) return;
    this.#trimmed += stream.count;
    this.#forget(stream);
  }

  /**
   * Removes expired publications and idle streams; the node calls it from a
   * timer (e.g. every second). Costs O(1) when nothing is due; handles at
   * most `maxSteps` due streams per call (default 10 000) so one call cannot
   * hold the event loop, and returns false when more were due (reads never
   * see expired publications either way; only freeing memory waits).
   */
  sweep(maxSteps = SWEEP_STEPS): boolean {
    const now = this.#now();
    let steps = 0;
    let done = true;
    for (;;) {
      const next = this.#schedule[0];
      if (next === undefined || next.at > now) break;
      if (steps >= maxSteps) {
        done = false;
        break;
      }
      heapPop(this.#schedule);
      const stream = next.stream;
      if (stream.due !== next) continue; // stale
      steps++;
      stream.due = null;
      this.#expireOldest(stream, now);
      const oldest = stream.oldest();
      if (oldest !== undefined) this.#reschedule(stream, oldest.time + stream.ttl);
      else if (stream.lastUse + this.#metaTtl <= now) this.#forget(stream);
      else this.#reschedule(stream, stream.lastUse + this.#metaTtl);
    }
    this.#compactOrder();
    return done;
  }

  /** Streams and publications kept, their accounted bytes, and publications trimmed so far by the byte budget or a forgotten stream. */
  stats(): { streams: number; publications: number; bytes: number; trimmed: number } {
    return {
      streams: this.#streams.size,
      publications: this.#publications,
      bytes: this.#bytes,
      trimmed: this.#trimmed,
    };
  }

  /** Entries held by the global append order and by the sweep's schedule, stale ones included: what the purges keep within about twice the live count. */
  bookkeeping(): { order: number; schedule: number } {
    return { order: this.#orderStreams.length - this.#orderHead, schedule: this.#schedule.length };
  }

  /** The channel's stream, created if needed, marked as just used. */
  #use(channel: string, now: number): Stream {
    let stream = this.#streams.get(channel);
    if (stream === undefined) {
      stream = new Stream(channel, newEpoch(), now);
      this.#streams.set(channel, stream);
      this.#reschedule(stream, now + this.#metaTtl);
      this.#lruAppend(stream);
      if (this.#streams.size > this.#maxStreams && this.#lruOldest !== null) {
        const oldest: Stream = this.#lruOldest;
        this.#trimmed += oldest.count;
        this.#forget(oldest);
      }
      return stream;
    }
    stream.lastUse = now;
    if (this.#lruNewest !== stream) {
      this.#lruUnlink(stream);
      this.#lruAppend(stream);
    }
    return stream;
  }

  #forget(stream: Stream): void {
    this.#clear(stream);
    stream.dead = true;
    stream.due = null;
    this.#streams.delete(stream.channel);
    this.#lruUnlink(stream);
  }

  #clear(stream: Stream): void {
    while (stream.count > 0) this.#dropOldest(stream);
  }

  #dropOldest(stream: Stream): void {
    this.#bytes -= stream.dropOldest();
    this.#publications--;
  }

  /** Drops the stream's publications older than its ttl (a prefix, since offsets follow time). */
  #expireOldest(stream: Stream, now: number): void {
    for (
      let pub = stream.oldest();
      pub !== undefined && pub.time + stream.ttl <= now;
      pub = stream.oldest()
    ) {
      this.#dropOldest(stream);
    }
  }

  /** Trims the globally oldest publications until the byte budget holds. */
  #trimToBudget(): void {
    while (this.#bytes > this.#maxBytes && this.#orderHead < this.#orderStreams.length) {
      const stream = this.#orderStreams[this.#orderHead] as Stream;
      const offset = this.#orderOffsets[this.#orderHead] as number;
      this.#orderHead++;
      // Still kept means it is its stream's oldest: every older one of that stream came earlier in the order.
      if (!stream.dead && offset >= stream.first && stream.count > 0) {
        this.#dropOldest(stream);
        this.#trimmed++;
      }
    }
    this.#compactOrder();
  }

  /** Keeps the append order's stale part (and the schedule's) from outgrowing the live part. */
  #compactOrder(): void {
    const length = this.#orderStreams.length - this.#orderHead;
    if (length > 2 * this.#publications + 1024) {
      const streams: Stream[] = [];
      const offsets: number[] = [];
      for (let i = this.#orderHead; i < this.#orderStreams.length; i++) {
        const stream = this.#orderStreams[i] as Stream;
        const offset = this.#orderOffsets[i] as number;
        if (!stream.dead && offset >= stream.first) {
          streams.push(stream);
          offsets.push(offset);
        }
      }
      this.#orderStreams = streams;
      this.#orderOffsets = offsets;
      this.#orderHead = 0;
    } else if (this.#orderHead > 1024 && this.#orderHead * 2 > this.#orderStreams.length) {
      this.#orderStreams = this.#orderStreams.slice(this.#orderHead);
      this.#orderOffsets = this.#orderOffsets.slice(this.#orderHead);
      this.#orderHead = 0;
    }
    if (this.#schedule.length > 2 * this.#streams.size + 1024) {
      this.#schedule = this.#schedule.filter((due) => due.stream.due === due);
      heapify(this.#schedule);
    }
  }

  /** Gives the stream a schedule entry at `at` unless its current one comes no later (an early entry only costs a look). */
  #reschedule(stream: Stream, at: number): void {
    if (stream.due !== null && stream.due.at <= at) return;
    const due: Due = { at, stream };
    stream.due = due;
    heapPush(this.#schedule, due);
  }

  #lruAppend(stream: Stream): void {
    stream.older = this.#lruNewest;
    stream.newer = null;
    if (this.#lruNewest !== null) this.#lruNewest.newer = stream;
    this.#lruNewest = stream;
    if (this.#lruOldest === null) this.#lruOldest = stream;
  }

  #lruUnlink(stream: Stream): void {
    if (stream.older !== null) stream.older.newer = stream.newer;
    else if (this.#lruOldest === stream) this.#lruOldest = stream.newer;
    if (stream.newer !== null) stream.newer.older = stream.older;
    else if (this.#lruNewest === stream) this.#lruNewest = stream.older;
    stream.older = null;
    stream.newer = null;
  }
}

/** A random stream epoch: 6 random bytes as 8 base64url characters. */
function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ---- a binary min-heap of Due entries by `at` ----------------------------------------

function heapPush(heap: Due[], item: Due): void {
  heap.push(item);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const p = heap[parent] as Due;
    if (p.at <= item.at) break;
    heap[i] = p;
    i = parent;
  }
  heap[i] = item;
}

function heapPop(heap: Due[]): Due | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (top === undefined || last === undefined || heap.length === 0) return top;
  siftDown(heap, 0, last);
  return top;
}

function siftDown(heap: Due[], start: number, item: Due): void {
  let i = start;
  const n = heap.length;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= n) break;
    const right = child + 1;
    if (right < n && (heap[right] as Due).at < (heap[child] as Due).at) child = right;
    const c = heap[child] as Due;
    if (c.at >= item.at) break;
    heap[i] = c;
    i = child;
  }
  heap[i] = item;
}

function heapify(heap: Due[]): void {
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(heap, i, heap[i] as Due);
}
