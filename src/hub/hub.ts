/**
 * The hub: named rooms of connections, capacity limits, broadcast and
 * shutdown. Every broadcast encodes its frame once and hands the same Buffer
 * to each recipient; nothing is allocated per recipient on the fast path.
 * With permessage-deflate, a broadcast is compressed at most once per
 * parameter set, and that frame too is shared (see shared-frames.ts).
 */
import type { Cluster, ClusterMetrics } from '../broker/cluster.ts';
import type { Connection, ConnectionState } from '../connection/connection.ts';
import { resolveHubOptions } from '../config.ts';
import { CloseCode } from '../protocol/close.ts';
import { WshubError } from '../errors.ts';
import { Opcode, encodeMessage, type DataOpcode } from '../protocol/frame.ts';
import { TokenBucket } from './rate-limit.ts';
import { Delivery } from '../connection/send-queue.ts';
import type { DeflateSession } from '../protocol/deflate.ts';
import { SharedFrames, sharedMessage, type SharedMessage } from './shared-frames.ts';
import type { LatencyHistogram } from '../metrics/latency-histogram.ts';

export { defaultHubOptions } from '../config.ts';
import { isValidRoomName, type RoomValidator } from './validation.ts';

/**
 * What the hub needs from a member: delivery of shared frames (the member's
 * send queue decides what a full queue means), waiting for room, its state,
 * and closing. Connection implements it; tests may use a small fake.
 */
export interface Recipient {
  /** The first room the hub put the member in, kept up to date by the hub. */
  room: string | undefined;
  /**
   * Set by the hub on join: the member calls it before a direct send or a
   * close, so those never overtake a broadcast of the same turn.
   */
  beforeDirectWrite: (() => void) | null;
  readonly isOpen: boolean;
  readonly readyState: ConnectionState;
  /** permessage-deflate as agreed: the member is sent the frames compressed by its compressor. */
  readonly deflate?: DeflateSession | null;
  /** Hands over a Buffer holding `count` frames, shared with other members; never copies or waits. */
  deliver(frames: Buffer, count: number, whole: boolean): Delivery;
  /** After Delivery.WAIT: queues the frames once there is room, within `timeoutMs`. */
  waitAndSend(frames: Buffer, timeoutMs: number, count: number): Promise<void>;
  close(code: number, reason: string): void;
  terminate(): void;
  closed(): Promise<{ code: number; reason: string }>;
}

/**
 * Receives every message broadcast to a room, local or from another node,
 * besides the room's members: the channel layer subscribes here, so rooms
 * and channels are one space of names.
 */
export interface RoomSink {
  /**
   * A message broadcast to `room`. `data` is shared and must not be
   * modified. `publication` is what a local publisher passed to
   * broadcastRoom (the channel layer's own metadata), undefined for raw
   * messages and for messages from other nodes.
   */
  roomMessage(room: string, opcode: DataOpcode, data: Buffer, publication: unknown): void;
  /**
   * With a cluster: this node starts listening to `room` on other nodes
   * (its first local member or registration). What other nodes published
   * to the room before was not seen here.
   */
  roomListening?(room: string): void;
  /**
   * `room` got its first local member or registration (with or without a
   * cluster); roomInactive when the last one is gone.
   */
  roomActive?(room: string): void;
  roomInactive?(room: string): void;
  /**
   * Asked first for every broadcast to a room: a promise means the sink
   * delivers it itself, to every node (a shared channel engine that orders
   * publications), handing it back to local members through
   * `Hub.deliverToMembers`; the hub then neither delivers nor publishes it.
   * The promise settles once the engine stored the message, and rejects
   * when it could not (then nobody gets it). False: the hub's usual way.
   */
  takeBroadcast?(
    room: string,
    opcode: DataOpcode,
    data: Buffer,
    publication: unknown,
  ): false | Promise<unknown>;
}

export interface HubOptions {
  /**
   * Broadcast jobs that may wait at once for room in slow recipients' queues
   * (under sendBehavior "block"). In Go these are goroutines; here waiting
   * costs no thread, so the number only bounds memory, together with
   * `jobQueueSize`: at most `workerCount + jobQueueSize` broadcasts are held
   * waiting; beyond that a blocked recipient's copy is dropped and counted.
   */
  workerCount: number;
  jobQueueSize: number;
  /** Hub-wide limit on room registrations (0 = unlimited). */
  maxRoomRegistrations: number;
  /** Limit on connections in one room (0 = unlimited). */
  maxRoomConnections: number;
  /** New joins per second, hub-wide, with bursts of twice that (0 = unlimited). */
  maxConnectionRate: number;
  /** Replaces the default room name policy. */
  roomValidator?: RoomValidator;
  /** Broadcast messages larger than this are framed as fragments (0 = never). */
  fragmentSize: number;
  /** How long a broadcast waits for a blocked recipient (ms); usually the send timeout. */
  sendTimeout: number;
  /** How long shutdown waits for connections to answer the close frame (ms). */
  closeTimeout: number;
  /**
   * Scale-out: rooms and broadcasts shared with other hubs through a
   * messaging system (Redis, NATS, …). Without it the hub is a single
   * in-memory node.
   */
  cluster?: Cluster | undefined;
}

/** Why a join was refused. */
export type JoinDenial =
  'stopped' | 'invalid_room' | 'invalid_connection' | 'rate_limited' | 'hub_full' | 'room_full';

export type JoinResult = { ok: true; alreadyMember: boolean } | { ok: false; reason: JoinDenial };

/** What a broadcast did. */
export interface BroadcastResult {
  /** Recipients considered. */
  attempted: number;
  /** Recipients whose queue took the message (or who wait for room under "block"). */
  enqueued: number;
  /** Recipients already closing or closed. */
  skipped: number;
  /** Recipients whose queue was full (or the job queue was). */
  dropped: number;
  /** The room name or opcode was invalid. */
  invalid: boolean;
  /** The hub is stopped. */
  stopped: boolean;
  /**
   * Set when a shared channel engine took the message (a room that is a
   * channel with history in Redis): resolves once the engine stored it, and
   * every node then delivers it in the engine's order; rejects when it could
   * not be stored, and then nobody gets it. The counts above stay 0.
   */
  stored?: Promise<void>;
}

/** Rejected = invalid, stopped, or nobody took the message although someone was there. */
export function isRejected(result: BroadcastResult): boolean {
  return result.invalid || result.stopped || (result.attempted > 0 && result.enqueued === 0);
}

export interface HubMetrics {
  active_connections: number;
  room_registrations: number;
  rooms: number;
  accepted_total: number;
  rejected_total: number;
  max_room_registrations: number;
  max_room_connections: number;
  broadcast_attempted: number;
  broadcast_enqueued: number;
  broadcast_skipped: number;
  broadcast_dropped: number;
  /** Broadcast jobs currently waiting for blocked recipients. */
  broadcast_jobs_waiting: number;
}

export interface ShutdownOptions {
  /** Give up waiting after this many ms (default: the hub's closeTimeout). */
  timeout?: number;
  signal?: AbortSignal;
}

function emptyResult(): BroadcastResult {
  return { attempted: 0, enqueued: 0, skipped: 0, dropped: 0, invalid: false, stopped: false };
}

/**
 * Rooms of members (Connections unless told otherwise). The fan-out lives
 * here in one place: per-turn batches, delivery, and waits for members
 * whose queue asks the sender to wait.
 */
export class Hub<C extends Recipient = Connection> {
  readonly options: HubOptions;
  private readonly rooms = new Map<string, Set<C>>();
  /**
   * Registrations of rooms by something other than a member (a channel
   * subscription): counted in room counts and limits, and in the cluster's
   * interest, but not sent raw frames.
   */
  private readonly external = new Map<string, number>();
  private sink: RoomSink | null = null;
  /** The rooms of each connection: a plain string for the usual single room, a Set beyond that. */
  private readonly memberships = new Map<C, string | Set<string>>();
  /** Every connection that joined and is not yet removed (it may have left all rooms after stop()). */
  private readonly known = new Set<C>();
  private registrations = 0;
  private readonly rate: TokenBucket | null;
  private readonly cluster: Cluster | null;
  private stopped = false;
  private shutdownPromise: Promise<void> | null = null;
  /** Broadcasts with recipients still waiting for queue room. */
  private waitingJobs = 0;
  private drainWaiters: Array<() => void> = [];
  /**
   * Frames broadcast to each room during this event-loop turn. They are
   * written at the end of the turn as one Buffer per room, so a recipient
   * costs one write per turn however many messages its room received.
   */
  private batches = new Map<string, SharedMessage[]>();
  private batchScheduled = false;
  private readonly flushBatches = (): void => this.writeBatches();
  /** Records the time of each fan-out loop when set (by the metrics exposition). */
  fanoutTimer: LatencyHistogram | null = null;
  private readonly counters = {
    accepted: 0,
    rejected: 0,
    attempted: 0,
    enqueued: 0,
    skipped: 0,
    dropped: 0,
  };

  constructor(options: Partial<HubOptions> = {}) {
    const merged = resolveHubOptions(options);
    this.options = merged;
    this.rate = merged.maxConnectionRate > 0 ? new TokenBucket(merged.maxConnectionRate) : null;
    this.cluster = merged.cluster ?? null;
  }

  /**
   * Connects the cluster, if any (rejects when its messaging system cannot
   * be reached). Without a cluster this does nothing.
   */
  async start(): Promise<void> {
    await this.cluster?.start({
      deliver: (room, opcode, data) => this.deliverRemote(room, opcode, data),
      localCounts: () => {
        const counts = new Map([...this.rooms].map(([room, members]) => [room, members.size]));
        for (const [room, n] of this.external) counts.set(room, (counts.get(room) ?? 0) + n);
        return counts;
      },
      isValidRoom: (room) => this.isValidRoom(room),
    });
  }

  /** A broadcast published by another node: delivered to local members only. */
  private deliverRemote(room: string | null, opcode: DataOpcode, data: Buffer): void {
    if (this.stopped) return;
    if (room !== null) {
      this.sink?.roomMessage(room, opcode, data, undefined);
      return this.batchForRoom(room, this.shared(opcode, data));
    }
    this.writeBatches();
    this.deliver(this.memberships.keys(), this.frames(opcode, data), emptyResult());
  }

  /** Whether `room` passes the room policy (custom validator or the default). */
  isValidRoom(room: string): boolean {
    return typeof room === 'string' && (this.options.roomValidator ?? isValidRoomName)(room);
  }

  // ---- joining -----------------------------------------------------------

  /**
   * Checks a join without changing anything (the capacity pre-check of the
   * upgrade pipeline): stopped, invalid room, rate limit, hub full, room full.
   */
  checkJoin(room: string): JoinResult {
    return this.admission(room, null, false);
  }

  /**
   * Adds `conn` to `room`. Checks, in order: stopped, invalid room, missing
   * connection, already a member (succeeds, bypassing limits), rate limit,
   * hub full, room full.
   */
  tryJoin(room: string, conn: C): JoinResult {
    const result = this.admission(room, conn, true);
    if (result.ok) {
      if (!result.alreadyMember) this.add(room, conn);
      this.counters.accepted++;
    } else {
      this.counters.rejected++;
    }
    return result;
  }

  /** The checks of a join; `rated` = false skips the join rate (channel subscriptions are not joins). */
  private admission(room: string, conn: C | null | undefined, consume: boolean, rated = true): JoinResult {
    if (this.stopped) return { ok: false, reason: 'stopped' };
    if (!this.isValidRoom(room)) return { ok: false, reason: 'invalid_room' };
    if (consume && (conn === null || conn === undefined)) return { ok: false, reason: 'invalid_connection' };
    const members = this.rooms.get(room);
    if (conn && members?.has(conn)) return { ok: true, alreadyMember: true };
    if (rated && this.rate !== null && !(consume ? this.rate.tryTake() : this.rate.available() >= 1)) {
      return { ok: false, reason: 'rate_limited' };
    }
    const { maxRoomRegistrations, maxRoomConnections } = this.options;
    if (maxRoomRegistrations > 0 && this.registrations >= maxRoomRegistrations)
      return { ok: false, reason: 'hub_full' };
    if (maxRoomConnections > 0 && (members?.size ?? 0) + (this.external.get(room) ?? 0) >= maxRoomConnections)
      return { ok: false, reason: 'room_full' };
    return { ok: true, alreadyMember: false };
  }

  /**
   * Admits a connection that joins no room at the upgrade (a channel
   * connection): stopped, rate limit, hub full. `consume` takes a token
   * of the join rate.
   */
  admitConnection(consume: boolean): JoinResult {
    if (this.stopped) return { ok: false, reason: 'stopped' };
    if (this.rate !== null && !(consume ? this.rate.tryTake() : this.rate.available() >= 1)) {
      return { ok: false, reason: 'rate_limited' };
    }
    const max = this.options.maxRoomRegistrations;
    if (max > 0 && this.registrations >= max) return { ok: false, reason: 'hub_full' };
    return { ok: true, alreadyMember: false };
  }

  /**
   * Registers `room` for something that is not a member (a channel
   * subscription), under the same limits as a join except the join rate:
   * stopped, invalid room, hub full, room full. Undo with unregister().
   */
  register(room: string): JoinResult {
    const admitted = this.admission(room, null, false, false);
    if (!admitted.ok) return admitted;
    const n = this.external.get(room) ?? 0;
    this.external.set(room, n + 1);
    if (n === 0 && !this.rooms.has(room)) this.activate(room);
    this.registrations++;
    return { ok: true, alreadyMember: false };
  }

  /** The room's first local member or registration: the cluster starts listening to it. */
  private activate(room: string): void {
    this.sink?.roomActive?.(room);
    if (this.cluster === null) return;
    this.cluster.roomActive(room);
    this.sink?.roomListening?.(room);
  }

  /** The room's last local member or registration is gone. */
  private deactivate(room: string): void {
    this.cluster?.roomInactive(room);
    this.sink?.roomInactive?.(room);
  }

  /** Undoes one register(room). */
  unregister(room: string): void {
    const n = this.external.get(room);
    if (n === undefined) return;
    if (n > 1) this.external.set(room, n - 1);
    else {
      this.external.delete(room);
      if (!this.rooms.has(room)) this.deactivate(room);
    }
    this.registrations--;
  }

  /** Sets the receiver of every room broadcast besides the members (one per hub). */
  setRoomSink(sink: RoomSink | null): void {
    if (sink !== null && this.sink !== null && this.sink !== sink)
      throw new WshubError('ROOM_SINK_TAKEN', 'this hub already has a room sink (one channel node per hub)');
    this.sink = sink;
  }

  private add(room: string, conn: C): void {
    conn.beforeDirectWrite = this.flushBatches;
    let members = this.rooms.get(room);
    if (members === undefined) {
      this.rooms.set(room, (members = new Set()));
      if (!this.external.has(room)) this.activate(room);
    }
    members.add(conn);
    const joined = this.memberships.get(conn);
    if (joined === undefined) this.memberships.set(conn, room);
    else if (typeof joined === 'string') this.memberships.set(conn, new Set([joined, room]));
    else joined.add(room);
    this.known.add(conn);
    conn.room ??= room;
    this.registrations++;
  }

  /** Removes `conn` from `room`; returns whether it was a member. */
  leave(room: string, conn: C): boolean {
    const members = this.rooms.get(room);
    if (members === undefined || !members.delete(conn)) return false;
    if (members.size === 0) {
      this.rooms.delete(room);
      if (!this.external.has(room)) this.deactivate(room);
    }
    this.registrations--;
    const joined = this.memberships.get(conn);
    let remaining: string | undefined;
    if (typeof joined === 'string') {
      this.memberships.delete(conn);
    } else if (joined !== undefined) {
      joined.delete(room);
      remaining = joined.values().next().value;
      if (joined.size === 1) this.memberships.set(conn, remaining!);
    }
    if (conn.room === room) conn.room = remaining;
    return true;
  }

  /** Removes `conn` from every room (called when it closes). */
  removeConn(conn: C): void {
    this.known.delete(conn);
    if (conn.beforeDirectWrite === this.flushBatches) conn.beforeDirectWrite = null;
    this.leaveAll(conn);
  }

  private leaveAll(conn: C): void {
    for (const room of this.roomsOf(conn)) this.leave(room, conn);
  }

  /** Calls `fn` for each member of `room`, over a snapshot (fn may join/leave). */
  rangeConns(room: string, fn: (conn: C) => void): void {
    const members = this.rooms.get(room);
    if (members === undefined) return;
    for (const conn of [...members]) fn(conn);
  }

  // ---- queries -----------------------------------------------------------

  /** Members of `room` plus its other registrations (channel subscribers). */
  getRoomCount(room: string): number {
    return (this.rooms.get(room)?.size ?? 0) + (this.external.get(room) ?? 0);
  }

  getRoomRegistrationCount(): number {
    return this.registrations;
  }

  getActiveConnectionCount(): number {
    return this.memberships.size;
  }

  /** Rooms with members or other registrations (channel subscribers). */
  getRooms(): string[] {
    if (this.external.size === 0) return [...this.rooms.keys()];
    const rooms = new Set(this.rooms.keys());
    for (const room of this.external.keys()) rooms.add(room);
    return [...rooms];
  }

  /** Members of `room` on every node of the cluster (local count when there is no cluster). */
  getClusterRoomCount(room: string): number {
    return this.getRoomCount(room) + (this.cluster?.remoteRoomCount(room) ?? 0);
  }

  /** Rooms with members on any node of the cluster. */
  getClusterRooms(): string[] {
    if (this.cluster === null) return this.getRooms();
    const rooms = this.cluster.remoteRooms();
    for (const room of this.getRooms()) rooms.add(room);
    return [...rooms];
  }

  /** Scale-out counters (publishes, receipts, errors, losses), or null without a cluster. */
  clusterMetrics(): ClusterMetrics | null {
    return this.cluster?.metrics() ?? null;
  }

  /** Rooms `conn` is in. */
  roomsOf(conn: C): string[] {
    const joined = this.memberships.get(conn);
    if (joined === undefined) return [];
    return typeof joined === 'string' ? [joined] : [...joined];
  }

  /** Every connection in at least one room. */
  connections(): C[] {
    return [...this.memberships.keys()];
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  metrics(): HubMetrics {
    const c = this.counters;
    return {
      active_connections: this.memberships.size,
      room_registrations: this.registrations,
      rooms: this.external.size === 0 ? this.rooms.size : this.getRooms().length,
      accepted_total: c.accepted,
      rejected_total: c.rejected,
      max_room_registrations: this.options.maxRoomRegistrations,
      max_room_connections: this.options.maxRoomConnections,
      broadcast_attempted: c.attempted,
      broadcast_enqueued: c.enqueued,
      broadcast_skipped: c.skipped,
      broadcast_dropped: c.dropped,
      broadcast_jobs_waiting: this.waitingJobs,
    };
  }

  // ---- broadcast ---------------------------------------------------------

  /**
   * Sends a message to every member of `room`. The frame is encoded now and
   * written at the end of the event-loop turn together with the room's other
   * messages of this turn (in order); counters are updated then.
   */
  broadcastRoom(
    room: string,
    opcode: DataOpcode,
    data: Uint8Array | string,
    /** For the room sink only (the channel layer's metadata); see RoomSink. */
    publication?: unknown,
  ): void {
    if (this.stopped || !isDataOpcode(opcode) || !this.isValidRoom(room)) return;
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.sink?.takeBroadcast?.(room, opcode, toBuffer(bytes), publication) instanceof Promise) return;
    this.cluster?.publish(room, opcode, bytes);
    this.sink?.roomMessage(room, opcode, toBuffer(bytes), publication);
    this.batchForRoom(room, this.shared(opcode, bytes));
  }

  /**
   * Delivers a message to this node's members of `room` only (no cluster,
   * no room sink), in this turn's batch: for a room sink that took the
   * broadcast and got it back from its engine.
   */
  deliverToMembers(room: string, opcode: DataOpcode, data: Uint8Array | string): void {
    if (this.stopped || !this.rooms.has(room)) return;
    this.batchForRoom(room, this.shared(opcode, data));
  }

  /** Adds a message to the room's batch for this turn. */
  private batchForRoom(room: string, frame: SharedMessage): void {
    if (!this.rooms.has(room)) return;
    const batch = this.batches.get(room);
    if (batch === undefined) this.batches.set(room, [frame]);
    else batch.push(frame);
    if (!this.batchScheduled) {
      this.batchScheduled = true;
      setImmediate(this.flushBatches);
    }
  }

  /** Writes every room's batch: one Buffer per room, the same Buffer to each member. */
  private writeBatches(): void {
    if (!this.batchScheduled) return;
    this.batchScheduled = false;
    const batches = this.batches;
    this.batches = new Map();
    const result = emptyResult();
    for (const [room, frames] of batches) {
      const members = this.rooms.get(room);
      if (members === undefined) continue;
      this.deliver(members, new SharedFrames(frames, this.options.fragmentSize), result, true);
    }
  }

  /** Sends a message to every connection, once each even if it is in several rooms. */
  broadcastAll(opcode: DataOpcode, data: Uint8Array | string): void {
    this.tryBroadcastAll(opcode, data);
  }

  /**
   * Like broadcastRoom, but written immediately (after any pending batches,
   * to keep order), and reports what happened.
   */
  tryBroadcastRoom(room: string, opcode: DataOpcode, data: Uint8Array | string): BroadcastResult {
    this.writeBatches();
    const result = emptyResult();
    if (this.stopped) return ((result.stopped = true), result);
    if (!isDataOpcode(opcode) || !this.isValidRoom(room)) return ((result.invalid = true), result);
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    // Taken by the sink: delivered on every node once it comes back in order.
    const taken = this.sink?.takeBroadcast?.(room, opcode, toBuffer(bytes), undefined);
    if (taken instanceof Promise) {
      const stored = taken.then(() => undefined);
      // A caller that does not look at `stored` must not turn a failed store into an unhandled rejection.
      stored.catch(() => {});
      result.stored = stored;
      return result;
    }
    this.cluster?.publish(room, opcode, bytes);
    this.sink?.roomMessage(room, opcode, toBuffer(bytes), undefined);
    const members = this.rooms.get(room);
    if (members === undefined || members.size === 0) return result;
    return this.deliver(members, this.frames(opcode, data), result);
  }

  /** Like broadcastAll, and reports what happened. */
  tryBroadcastAll(opcode: DataOpcode, data: Uint8Array | string): BroadcastResult {
    this.writeBatches();
    const result = emptyResult();
    if (this.stopped) return ((result.stopped = true), result);
    if (!isDataOpcode(opcode)) return ((result.invalid = true), result);
    this.cluster?.publish(null, opcode, typeof data === 'string' ? Buffer.from(data) : data);
    if (this.memberships.size === 0) return result;
    return this.deliver(this.memberships.keys(), this.frames(opcode, data), result);
  }

  /** Encodes a message once for all recipients (plain). */
  encode(opcode: DataOpcode, data: Uint8Array | string): Buffer {
    return encodeMessage(opcode, data, this.options.fragmentSize);
  }

  /** A message encoded once, plain, and compressible later for deflate recipients. */
  private shared(opcode: DataOpcode, data: Uint8Array | string): SharedMessage {
    return sharedMessage(opcode, data, this.options.fragmentSize);
  }

  /** The shared frames of one message. */
  private frames(opcode: DataOpcode, data: Uint8Array | string): SharedFrames {
    return new SharedFrames([this.shared(opcode, data)], this.options.fragmentSize);
  }

  /**
   * The fan-out loop: one shared Buffer per encoding (holding `count`
   * frames), no per-recipient allocation unless a recipient blocks. Counts
   * are per message and recipient.
   */
  private deliver(
    recipients: Iterable<C>,
    shared: SharedFrames,
    result: BroadcastResult,
    whole = false,
  ): BroadcastResult {
    const timer = this.fanoutTimer;
    const started = timer === null ? 0 : performance.now();
    let blocked: C[] | null = null;
    let attempted = 0;
    let enqueued = 0;
    let skipped = 0;
    let dropped = 0;
    const plain = shared.plain;
    const count = shared.count;
    for (const conn of recipients) {
      attempted++;
      const deflate = conn.deflate;
      const frames = deflate === null || deflate === undefined ? plain : shared.for(deflate.compressor);
      const delivery = conn.deliver(frames, count, whole);
      if (delivery === Delivery.QUEUED) enqueued++;
      else if (delivery === Delivery.CLOSED) skipped++;
      else if (delivery === Delivery.WAIT) (blocked ??= []).push(conn);
      else dropped++;
    }
    if (blocked !== null) {
      if (this.waitingJobs < this.options.workerCount + this.options.jobQueueSize) {
        enqueued += blocked.length;
        this.waitFor(blocked, shared);
      } else {
        dropped += blocked.length;
      }
    }
    result.attempted += attempted * count;
    result.enqueued += enqueued * count;
    result.skipped += skipped * count;
    result.dropped += dropped * count;
    const c = this.counters;
    c.attempted += attempted * count;
    c.enqueued += enqueued * count;
    c.skipped += skipped * count;
    c.dropped += dropped * count;
    if (timer !== null) timer.observe((performance.now() - started) / 1000);
    return result;
  }

  /** A broadcast job waiting for blocked recipients; copies that time out are counted as dropped. */
  private waitFor(blocked: C[], shared: SharedFrames): void {
    const count = shared.count;
    this.waitingJobs++;
    const timeout = this.options.sendTimeout;
    let pending = blocked.length;
    const settle = (ok: boolean) => {
      if (!ok) {
        this.counters.dropped += count;
        this.counters.enqueued -= count;
      }
      if (--pending === 0) {
        this.waitingJobs--;
        if (this.waitingJobs === 0) for (const resolve of this.drainWaiters.splice(0)) resolve();
      }
    };
    for (const conn of blocked) {
      conn.waitAndSend(shared.for(conn.deflate?.compressor), timeout, count).then(
        () => settle(true),
        () => settle(false),
      );
    }
  }

  /** Resolves when no broadcast is waiting for blocked recipients. */
  private drained(): Promise<void> {
    if (this.waitingJobs === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  // ---- stopping ----------------------------------------------------------

  /**
   * Stops the hub: new joins and broadcasts are refused, waiting broadcasts
   * are drained (bounded by the send timeout), and every connection leaves
   * its rooms. Connections stay open. Idempotent.
   */
  async stop(): Promise<void> {
    this.writeBatches();
    this.stopped = true;
    await withTimeout(this.drained(), this.options.sendTimeout + 50);
    for (const conn of [...this.memberships.keys()]) this.leaveAll(conn);
  }

  /**
   * Graceful shutdown: stop accepting, drain waiting broadcasts, send every
   * connection a close frame (1001) and wait for the handshakes, then
   * destroy whatever is left. Ends early when `timeout` ms pass or `signal`
   * aborts. Safe to call more than once (later calls share the first one's work).
   */
  shutdown(options: ShutdownOptions = {}): Promise<void> {
    this.shutdownPromise ??= this.runShutdown(options);
    return this.shutdownPromise;
  }

  private async runShutdown({ timeout = this.options.closeTimeout, signal }: ShutdownOptions): Promise<void> {
    const deadline = performance.now() + timeout;
    this.writeBatches();
    const conns = [...this.known];
    this.stopped = true;
    const remaining = () => Math.max(0, deadline - performance.now());
    await withTimeout(this.drained(), Math.min(remaining(), this.options.sendTimeout + 50), signal);
    for (const conn of conns) {
      if (conn.isOpen) conn.close(CloseCode.SHUTDOWN, 'server shutting down');
    }
    await withTimeout(Promise.all(conns.map((conn) => conn.closed())), remaining(), signal);
    for (const conn of conns) {
      if (conn.readyState !== 'closed') conn.terminate();
      this.removeConn(conn);
    }
    await this.cluster?.close();
  }
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function isDataOpcode(opcode: number): opcode is DataOpcode {
  return opcode === Opcode.TEXT || opcode === Opcode.BINARY;
}

/** Waits for `promise`, at most `ms` milliseconds, or until `signal` aborts. Never rejects. */
async function withTimeout(promise: Promise<unknown>, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  await Promise.race([
    promise.then(
      () => undefined,
      () => undefined,
    ),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      if (signal !== undefined) {
        onAbort = resolve;
        signal.addEventListener('abort', onAbort, { once: true });
      }
    }),
  ]);
  clearTimeout(timer);
  if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
}
