/**
 * Cluster: what makes several hubs behave as one, over any Transport.
 *
 * - One channel per room plus one for broadcast-to-all; a node subscribes
 *   only to rooms that have local members (subscribe/unsubscribe changes
 *   are batched per event-loop turn), so it never receives traffic for
 *   rooms it does not serve.
 * - Local members are served directly by the hub; the node publishes for
 *   the others and ignores its own echo, so every member gets each message
 *   exactly once.
 * - Each node publishes its per-room member counts every
 *   `presenceInterval`; counts of a node not heard from for `presenceTtl`
 *   disappear (a crashed node's members vanish within that bound).
 * - Loss is counted, never hidden: publishes that fail or are dropped for
 *   a slow broker, and gaps in the per-origin sequence numbers a receiver
 *   sees (messages its members missed, e.g. during an outage).
 * - Every piece of state is bounded: publishes waiting for the broker by
 *   count and bytes, sequence numbers by forgetting rooms without traffic,
 *   presence announcements by bytes, rooms and parts (a node with many rooms
 *   splits its counts into several announcements), and the counts kept from
 *   other nodes by nodes and room entries.
 */
import { randomBytes } from 'node:crypto';
import type { DataOpcode } from '../protocol/frame.ts';
import { isValidRoomName } from '../hub/validation.ts';
import { decodeEnvelope, encodeEnvelope } from './envelope.ts';
import type { Transport } from './transport.ts';

export interface ClusterOptions {
  transport: Transport;
  /** Unique per node (default: random). At most 64 ASCII characters. */
  nodeId?: string;
  /** Channel name prefix, to share a broker between deployments (default "wshub"). */
  prefix?: string;
  /** How often a node announces its room counts (ms, default 1000). */
  presenceInterval?: number;
  /** After how long without an announcement a node's counts expire (ms, default 3 × interval). */
  presenceTtl?: number;
  /** Publishes that may be in flight at once; beyond that they are dropped and counted (default 10,000). */
  maxInFlight?: number;
  /**
   * Message bytes that may be in flight at once; a publish that would exceed
   * it is dropped and counted (default 64 MiB: the largest message a server
   * can accept, so any single message fits when nothing else is pending).
   */
  maxInFlightBytes?: number;
  /**
   * A channel's sequence numbers (sent and seen) are forgotten after between
   * this and twice this without traffic on it (ms, default 60,000). A loss
   * spanning a forget is not counted as a gap.
   */
  sequenceIdleTimeout?: number;
  /**
   * Longest `close()` takes (ms, default 1000): the goodbye gets at most half
   * of it, the transport's orderly close the rest, then its connections are
   * cut. A stalled broker answers nothing, and shutdown must not wait for it.
   */
  closeTimeout?: number;
  /** Other nodes whose counts are kept at once (default 4,096); announcements from more are refused. */
  maxRemoteNodes?: number;
  /**
   * Room entries kept from all other nodes' announcements together (default
   * 1,048,576: about 60 MiB with short room names, 180 MiB with 128-byte
   * ones); an announcement that would go over it is refused.
   */
  maxRemoteRooms?: number;
}

const MAX_TIMER_DELAY = 2 ** 31 - 1;

/** Default of ClusterOptions.maxInFlightBytes. */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;
/** Default of ClusterOptions.sequenceIdleTimeout (ms). */
export const DEFAULT_SEQUENCE_IDLE_TIMEOUT = 60_000;
/** Default of ClusterOptions.closeTimeout (ms). */
export const DEFAULT_CLOSE_TIMEOUT = 1_000;
/** Default of ClusterOptions.maxRemoteNodes. */
export const DEFAULT_MAX_REMOTE_NODES = 4_096;
/** Default of ClusterOptions.maxRemoteRooms. */
export const DEFAULT_MAX_REMOTE_ROOMS = 1_048_576;
/** Extra wait for a transport that ignores the deadline close() hands it. */
const CLOSE_GRACE_MS = 250;

/**
 * Largest presence announcement a node accepts, in bytes, checked before it
 * is parsed (so taking one in costs a few milliseconds at most). Every node uses
 * the same limits, so what one sends the others accept.
 */
export const PRESENCE_MAX_BYTES = 64 * 1024;
/** Most rooms one presence announcement may list. */
export const PRESENCE_MAX_ROOMS = 2_048;
/**
 * Most announcements one node's counts may be split into; with the two
 * bounds above, a node announces at least ~29,000 rooms with 128-byte names
 * and up to 131,072 with short ones. Rooms beyond that are left out, the
 * smallest first, and counted (broker_presence_rooms_omitted).
 */
export const PRESENCE_MAX_PARTS = 64;
/** Room of the announcement's own fields around the rooms (with the longest node id and numbers). */
const PRESENCE_HEADER_BYTES = 256;
const NODE_ID = /^[\x21-\x7e]{1,64}$/;

/** What the cluster calls back into (the hub). */
export interface ClusterDelivery {
  /** A message from another node for `room` (null = every connection). */
  deliver(room: string | null, opcode: DataOpcode, data: Buffer): void;
  /** This node's rooms and their member counts. */
  localCounts(): Map<string, number>;
  /** The room name policy other nodes' announcements are checked with (default: isValidRoomName). */
  isValidRoom?(room: string): boolean;
}

export interface ClusterMetrics {
  broker_published: number;
  broker_received: number;
  broker_errors: number;
  /** Messages lost: failed or dropped publishes, plus sequence gaps seen by this node. */
  broker_lost: number;
  broker_publish_failed: number;
  broker_publish_dropped: number;
  broker_gaps: number;
  broker_connected: number;
  broker_reconnects: number;
  /** Publishes waiting for the broker now, and their message bytes. */
  broker_in_flight: number;
  broker_in_flight_bytes: number;
  /** Channels this node numbers its publishes on, and (origin, channel) pairs it checks for gaps. */
  broker_sequences_out: number;
  broker_sequences_in: number;
  /** Presence announcements refused whole (too large, malformed, too many rooms or parts). */
  broker_presence_refused: number;
  /** Room entries skipped in accepted announcements (invalid name or count). */
  broker_presence_rooms_refused: number;
  /** This node's rooms left out of its last announcement (more than PRESENCE_MAX_PARTS parts hold). */
  broker_presence_rooms_omitted: number;
  /** Room entries kept from other nodes' announcements now (bounded by maxRemoteRooms). */
  broker_presence_rooms: number;
  cluster_nodes: number;
}

interface NodeCounts {
  rooms: Map<string, number>;
  seenAt: number;
}

/** The parts of one round of a node's announcement received so far. */
interface PartialCounts {
  round: number;
  parts: number;
  received: Set<number>;
  rooms: Map<string, number>;
  startedAt: number;
}

/**
 * A map that forgets entries not touched for one to two sweeps. A sweep
 * swaps generations instead of scanning, so it costs the same however many
 * rooms an attacker made up.
 */
class IdleMap<V> {
  private current = new Map<string, V>();
  private previous = new Map<string, V>();

  get(key: string): V | undefined {
    const value = this.current.get(key);
    if (value !== undefined) return value;
    const old = this.previous.get(key);
    if (old !== undefined) {
      this.previous.delete(key);
      this.current.set(key, old);
    }
    return old;
  }

  set(key: string, value: V): void {
    this.current.set(key, value);
    this.previous.delete(key);
  }

  delete(key: string): void {
    this.current.delete(key);
    this.previous.delete(key);
  }

  sweep(): void {
    this.previous = this.current;
    this.current = new Map();
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }
}

export class Cluster {
  readonly nodeId: string;
  readonly transport: Transport;
  private readonly prefix: string;
  private readonly presenceInterval: number;
  private readonly presenceTtl: number;
  private readonly maxInFlight: number;
  private readonly maxInFlightBytes: number;
  private readonly sequenceIdleTimeout: number;
  private readonly closeTimeout: number;
  private readonly maxRemoteNodes: number;
  private readonly maxRemoteRooms: number;
  private delivery: ClusterDelivery | null = null;
  private readonly active = new Set<string>();
  private readonly toSubscribe = new Set<string>();
  private readonly toUnsubscribe = new Set<string>();
  private flushScheduled = false;
  /** The last sequence number sent, per channel. */
  private readonly sequences = new IdleMap<number>();
  /** The last sequence number seen, per origin node, then per channel. */
  private readonly lastSeen = new Map<string, IdleMap<number>>();
  private readonly nodes = new Map<string, NodeCounts>();
  /** Split announcements being put together; dropped after presenceTtl if a part never comes. */
  private readonly partial = new Map<string, PartialCounts>();
  private presenceRound = 0;
  private presencePending = 0;
  private presenceOmitted = 0;
  private presenceTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private inFlight = 0;
  private inFlightBytes = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly counters = {
    published: 0,
    received: 0,
    errors: 0,
    publishFailed: 0,
    publishDropped: 0,
    gaps: 0,
    reconnects: 0,
    presenceRefused: 0,
    presenceRoomsRefused: 0,
  };
  /** Receives errors for logging. */
  onError: (error: Error) => void = () => {};

  constructor(options: ClusterOptions) {
    this.transport = options.transport;
    this.nodeId = options.nodeId ?? randomBytes(8).toString('hex');
    if (!NODE_ID.test(this.nodeId)) throw new RangeError('nodeId must be 1–64 printable ASCII characters');
    this.prefix = options.prefix ?? 'wshub';
    this.presenceInterval = options.presenceInterval ?? 1_000;
    this.presenceTtl = options.presenceTtl ?? 3 * this.presenceInterval;
    this.maxInFlight = positive('maxInFlight', options.maxInFlight ?? 10_000);
    this.maxInFlightBytes = positive(
      'maxInFlightBytes',
      options.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES,
    );
    this.sequenceIdleTimeout = positive(
      'sequenceIdleTimeout',
      options.sequenceIdleTimeout ?? DEFAULT_SEQUENCE_IDLE_TIMEOUT,
    );
    // Longer timer delays overflow into 1 ms in Node, which would forget every sequence at once.
    if (this.sequenceIdleTimeout > MAX_TIMER_DELAY)
      throw new RangeError(`sequenceIdleTimeout must be at most ${MAX_TIMER_DELAY} ms`);
    this.closeTimeout = positive('closeTimeout', options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT);
    if (this.closeTimeout > MAX_TIMER_DELAY)
      throw new RangeError(`closeTimeout must be at most ${MAX_TIMER_DELAY} ms`);
    this.maxRemoteNodes = positive('maxRemoteNodes', options.maxRemoteNodes ?? DEFAULT_MAX_REMOTE_NODES);
    this.maxRemoteRooms = positive('maxRemoteRooms', options.maxRemoteRooms ?? DEFAULT_MAX_REMOTE_ROOMS);
  }

  /** The channel carrying a room's broadcasts (null = broadcast to all). */
  channelFor(room: string | null): string {
    return room === null ? `${this.prefix}:all` : `${this.prefix}:room:${room}`;
  }

  private get presenceChannel(): string {
    return `${this.prefix}:presence`;
  }

  /** Connects the transport and subscribes to the shared channels. */
  async start(delivery: ClusterDelivery): Promise<void> {
    this.delivery = delivery;
    await this.transport.start((channel, payload) => this.receive(channel, payload), {
      up: () => {
        this.counters.reconnects++;
        // Re-assert every subscription; idempotent on the broker side.
        this.transport.subscribe(this.allChannels()).catch((e: unknown) => this.failed(e));
        this.announce();
      },
      down: (error) => {
        if (error) this.onError(error);
      },
      error: (error) => this.failed(error),
    });
    await this.transport.subscribe(this.allChannels());
    this.presenceTimer = setInterval(() => {
      this.announce();
      this.dropStalePartials();
    }, this.presenceInterval);
    this.presenceTimer.unref();
    this.sweepTimer = setInterval(() => this.sweepSequences(), this.sequenceIdleTimeout);
    this.sweepTimer.unref();
    this.announce();
  }

  private allChannels(): string[] {
    return [
      this.channelFor(null),
      this.presenceChannel,
      ...[...this.active].map((room) => this.channelFor(room)),
    ];
  }

  // ---- interest ----------------------------------------------------------------

  /** The room got its first local member. */
  roomActive(room: string): void {
    this.active.add(room);
    if (!this.toUnsubscribe.delete(room)) this.toSubscribe.add(room);
    this.scheduleFlush();
  }

  /** The room lost its last local member. */
  roomInactive(room: string): void {
    this.active.delete(room);
    // Messages sent while nobody here listens are no loss: the next
    // subscription starts counting afresh instead of reporting them as a gap.
    const channel = this.channelFor(room);
    for (const seen of this.lastSeen.values()) seen.delete(channel);
    if (!this.toSubscribe.delete(room)) this.toUnsubscribe.add(room);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushInterest());
  }

  private flushInterest(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    const subscribe = [...this.toSubscribe].map((room) => this.channelFor(room));
    const unsubscribe = [...this.toUnsubscribe].map((room) => this.channelFor(room));
    this.toSubscribe.clear();
    this.toUnsubscribe.clear();
    if (subscribe.length > 0) this.transport.subscribe(subscribe).catch((e: unknown) => this.failed(e));
    if (unsubscribe.length > 0) this.transport.unsubscribe(unsubscribe).catch((e: unknown) => this.failed(e));
  }

  // ---- messages ------------------------------------------------------------------

  /** Publishes a broadcast for the other nodes. Never throws; failures are counted as lost. */
  publish(room: string | null, opcode: DataOpcode, data: Uint8Array): void {
    if (this.closed) return;
    const size = data.length;
    // Checked before a sequence number is taken: a drop is counted here, not
    // again as a gap on every receiver.
    if (this.inFlight >= this.maxInFlight || this.inFlightBytes + size > this.maxInFlightBytes) {
      this.counters.publishDropped++;
      return;
    }
    const channel = this.channelFor(room);
    const sequence = ((this.sequences.get(channel) ?? 0) + 1) >>> 0;
    this.sequences.set(channel, sequence);
    this.inFlight++;
    this.inFlightBytes += size;
    const settled = (): void => {
      this.inFlight--;
      this.inFlightBytes -= size;
    };
    this.transport.publish(channel, encodeEnvelope(opcode, this.nodeId, sequence, data)).then(
      () => {
        settled();
        this.counters.published++;
      },
      () => {
        settled();
        this.counters.publishFailed++;
      },
    );
  }

  private receive(channel: string, payload: Buffer): void {
    if (channel === this.presenceChannel) return this.presence(payload);
    const envelope = decodeEnvelope(payload);
    if (envelope === null) {
      this.counters.errors++;
      return;
    }
    if (envelope.origin === this.nodeId) return;
    this.counters.received++;
    const prefix = `${this.prefix}:room:`;
    const room = channel.startsWith(prefix) ? channel.slice(prefix.length) : null;
    // Still arriving after the last member left: nobody to deliver to, nothing to track.
    if (room !== null && !this.active.has(room)) return;
    let seen = this.lastSeen.get(envelope.origin);
    if (seen === undefined) this.lastSeen.set(envelope.origin, (seen = new IdleMap()));
    const last = seen.get(channel);
    if (last !== undefined) {
      const gap = (envelope.sequence - last - 1) >>> 0;
      // A large "gap" means the sender restarted its numbering (a restart, or
      // a channel it forgot after sequenceIdleTimeout): not a loss.
      if (gap > 0 && gap < 0x80000000) this.counters.gaps += gap;
    }
    seen.set(channel, envelope.sequence);
    this.delivery?.deliver(room, envelope.opcode, envelope.payload);
  }

  /** Forgets sequence numbers of channels without traffic since the sweep before last. */
  private sweepSequences(): void {
    this.sequences.sweep();
    for (const [origin, seen] of this.lastSeen) {
      seen.sweep();
      if (seen.size === 0) this.lastSeen.delete(origin);
    }
  }

  // ---- presence --------------------------------------------------------------------

  /**
   * Publishes this node's counts as one announcement, or as several parts of
   * one round when they do not fit in PRESENCE_MAX_BYTES / PRESENCE_MAX_ROOMS.
   */
  private announce(): void {
    if (this.closed || this.delivery === null || !this.transport.connected) return;
    // The last round is still waiting for a stalled broker: another would only pile up behind it.
    if (this.presencePending > 0) return;
    const counts = this.delivery.localCounts();
    let split = splitCounts(counts, this.nodeId);
    // Only when over the cap: keep the largest rooms, whose counts matter most.
    if (split.omitted > 0) split = splitCounts(largestFirst(counts), this.nodeId);
    this.presenceOmitted = split.omitted;
    this.presenceRound = (this.presenceRound + 1) % 2 ** 32;
    const head = `{"node":${JSON.stringify(this.nodeId)},"round":${this.presenceRound},"parts":${split.parts.length}`;
    split.parts.forEach((entries, part) => {
      const body = Buffer.from(`${head},"part":${part},"rooms":{${entries.join(',')}}}`);
      this.presencePending++;
      this.transport.publish(this.presenceChannel, body).then(
        () => this.presencePending--,
        (e: unknown) => {
          this.presencePending--;
          this.failed(e);
        },
      );
    });
  }

  private refusePresence(): void {
    this.counters.presenceRefused++;
  }

  private presence(payload: Buffer): void {
    if (payload.length > PRESENCE_MAX_BYTES) return this.refusePresence();
    let message: unknown;
    try {
      message = JSON.parse(payload.toString('utf8'));
    } catch {
      return this.refusePresence();
    }
    if (typeof message !== 'object' || message === null) return this.refusePresence();
    const { node, bye, rooms, round = 0, part = 0, parts = 1 } = message as Record<string, unknown>;
    if (typeof node !== 'string' || !NODE_ID.test(node)) return this.refusePresence();
    if (node === this.nodeId) return;
    if (bye === true) {
      this.nodes.delete(node);
      this.partial.delete(node);
      this.lastSeen.delete(node);
      return;
    }
    // Announcements without round/part/parts (one part) are what older nodes send.
    if (
      !isIndex(round, 2 ** 32) ||
      !isIndex(parts, PRESENCE_MAX_PARTS + 1) ||
      parts === 0 ||
      !isIndex(part, parts) ||
      typeof rooms !== 'object' ||
      rooms === null ||
      Array.isArray(rooms)
    )
      return this.refusePresence();
    const names = Object.keys(rooms);
    if (names.length > PRESENCE_MAX_ROOMS) return this.refusePresence();

    const now = performance.now();
    // Expired nodes and unfinished rounds free their share before the bounds are checked.
    this.freshNodes();
    this.dropStalePartials();
    let assembly = parts === 1 ? undefined : this.partial.get(node);
    // A new round replaces one that lost a part: the node keeps its last complete counts meanwhile.
    const restart = assembly === undefined || assembly.round !== round || assembly.parts !== parts;
    if (!restart && assembly!.received.has(part)) return this.refusePresence();
    // What this announcement replaces is freed before the bounds are checked.
    const replaced =
      (restart ? (this.partial.get(node)?.rooms.size ?? 0) : 0) +
      (parts === 1 ? (this.nodes.get(node)?.rooms.size ?? 0) : 0);
    if (!this.roomForPresence(node, names.length - replaced)) return this.refusePresence();
    let into: Map<string, number>;
    if (parts === 1) {
      this.partial.delete(node);
      into = new Map();
    } else {
      if (restart) {
        assembly = { round, parts, received: new Set(), rooms: new Map(), startedAt: now };
        this.partial.set(node, assembly);
      }
      assembly!.received.add(part);
      into = assembly!.rooms;
    }
    const delivery = this.delivery;
    const valid = (room: string): boolean => {
      try {
        return delivery?.isValidRoom?.(room) ?? isValidRoomName(room);
      } catch {
        // A custom policy that throws on a name refuses it; one node's bad input must not stop this one.
        return false;
      }
    };
    const table = rooms as Record<string, unknown>;
    for (const room of names) {
      const count = table[room];
      if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 1 || !valid(room)) {
        this.counters.presenceRoomsRefused++;
        continue;
      }
      into.set(room, count);
    }
    if (assembly !== undefined && assembly.received.size < assembly.parts) return;
    this.partial.delete(node);
    this.nodes.set(node, { rooms: into, seenAt: now });
  }

  /**
   * Whether the counts of `node` fit within maxRemoteNodes, and `added` more
   * room entries within maxRemoteRooms. Costs one pass over the (bounded) nodes.
   */
  private roomForPresence(node: string, added: number): boolean {
    if (!this.nodes.has(node) && !this.partial.has(node) && this.remoteNodeCount() >= this.maxRemoteNodes)
      return false;
    return this.remoteRoomEntries() + added <= this.maxRemoteRooms;
  }

  /** Other nodes with counts or an announcement being put together. */
  private remoteNodeCount(): number {
    let count = this.nodes.size;
    for (const node of this.partial.keys()) if (!this.nodes.has(node)) count++;
    return count;
  }

  private remoteRoomEntries(): number {
    let entries = 0;
    for (const counts of this.nodes.values()) entries += counts.rooms.size;
    for (const assembly of this.partial.values()) entries += assembly.rooms.size;
    return entries;
  }

  private dropStalePartials(): void {
    const now = performance.now();
    for (const [node, assembly] of this.partial)
      if (now - assembly.startedAt > this.presenceTtl) this.partial.delete(node);
  }

  /** Other nodes' counts that are still fresh. */
  private freshNodes(): NodeCounts[] {
    const now = performance.now();
    const fresh: NodeCounts[] = [];
    for (const [node, counts] of this.nodes) {
      if (now - counts.seenAt > this.presenceTtl) this.nodes.delete(node);
      else fresh.push(counts);
    }
    return fresh;
  }

  /** Members of `room` on the other nodes (as last announced). */
  remoteRoomCount(room: string): number {
    let total = 0;
    for (const node of this.freshNodes()) total += node.rooms.get(room) ?? 0;
    return total;
  }

  /** Rooms with members on the other nodes. */
  remoteRooms(): Set<string> {
    const rooms = new Set<string>();
    for (const node of this.freshNodes()) for (const room of node.rooms.keys()) rooms.add(room);
    return rooms;
  }

  /** Number of nodes, this one included. */
  nodeCount(): number {
    return this.freshNodes().length + 1;
  }

  // ---- state ---------------------------------------------------------------------------

  private failed(error: unknown): void {
    this.counters.errors++;
    this.onError(error instanceof Error ? error : new Error(String(error)));
  }

  metrics(): ClusterMetrics {
    const c = this.counters;
    return {
      broker_published: c.published,
      broker_received: c.received,
      broker_errors: c.errors,
      broker_lost: c.publishFailed + c.publishDropped + c.gaps,
      broker_publish_failed: c.publishFailed,
      broker_publish_dropped: c.publishDropped,
      broker_gaps: c.gaps,
      broker_connected: this.transport.connected ? 1 : 0,
      broker_reconnects: c.reconnects,
      broker_in_flight: this.inFlight,
      broker_in_flight_bytes: this.inFlightBytes,
      broker_sequences_out: this.sequences.size,
      broker_sequences_in: sizeOfAll(this.lastSeen.values()),
      broker_presence_refused: c.presenceRefused,
      broker_presence_rooms_refused: c.presenceRoomsRefused,
      broker_presence_rooms_omitted: this.presenceOmitted,
      broker_presence_rooms: this.remoteRoomEntries(),
      cluster_nodes: this.nodeCount(),
    };
  }

  /**
   * Says goodbye (so other nodes drop this node's counts at once) and closes
   * the transport, within `closeTimeout` (plus a short grace for a transport
   * that ignores its deadline). Safe to call more than once.
   */
  close(): Promise<void> {
    this.closing ??= this.closeWithin(this.closeTimeout);
    return this.closing;
  }

  private async closeWithin(budget: number): Promise<void> {
    const deadline = performance.now() + budget;
    if (this.presenceTimer !== null) clearInterval(this.presenceTimer);
    this.presenceTimer = null;
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    if (this.transport.connected) {
      const bye = Buffer.from(JSON.stringify({ node: this.nodeId, bye: true }));
      // Without the goodbye, other nodes still drop this node after presenceTtl.
      await within(this.transport.publish(this.presenceChannel, bye), budget / 2);
    }
    this.closed = true;
    const left = Math.max(0, deadline - performance.now());
    await within(this.transport.close(left), left + CLOSE_GRACE_MS);
  }
}

/** Waits for `promise` at most `ms` milliseconds; never rejects. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

function positive(option: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new RangeError(`${option} must be a positive whole number, got ${String(value)}`);
  return value;
}

/** Whether `value` is a whole number in [0, end). */
function isIndex(value: unknown, end: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value < end;
}

/** `counts` with the rooms with most members first. */
function largestFirst(counts: Map<string, number>): Map<string, number> {
  return new Map([...counts].sort((a, b) => b[1] - a[1]));
}

/**
 * Splits `counts` into the room entries (`"name":count`) of each part of an
 * announcement, every part within PRESENCE_MAX_BYTES and PRESENCE_MAX_ROOMS,
 * at most PRESENCE_MAX_PARTS parts (always at least one: an empty part still
 * says the node is alive). Rooms that do not fit are counted as omitted.
 */
function splitCounts(counts: Map<string, number>, nodeId: string): { parts: string[][]; omitted: number } {
  const budget = PRESENCE_MAX_BYTES - PRESENCE_HEADER_BYTES - nodeId.length;
  const parts: string[][] = [];
  let current: string[] = [];
  let bytes = 0;
  let omitted = 0;
  for (const [room, count] of counts) {
    const entry = `${JSON.stringify(room)}:${count}`;
    const size = Buffer.byteLength(entry) + 1;
    if (current.length === PRESENCE_MAX_ROOMS || bytes + size > budget) {
      if (size > budget || parts.length + 1 === PRESENCE_MAX_PARTS) {
        omitted++;
        continue;
      }
      parts.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  parts.push(current);
  return { parts, omitted };
}

function sizeOfAll(maps: Iterable<IdleMap<number>>): number {
  let total = 0;
  for (const map of maps) total += map.size;
  return total;
}
