/**
 * The engine seam of the channel node: where history streams and presence
 * live. The node asks these interfaces and nothing else about stored state.
 *
 * - MemoryEngine (engine-memory.ts, the default and the reference): this
 *   process's memory; every answer is immediate (a value, not a promise).
 * - RedisEngine (engine-redis.ts): Redis, shared by every node; answers are
 *   promises, bounded in time, and publications of channels with history
 *   travel through Redis pub/sub so every node sees Redis's order.
 */
import type { StreamPosition } from './history.ts';
import type { ClientInfo } from './protocol.ts';

export type { StreamPosition };

/** A value now, or later. */
export type MaybePromise<T> = T | Promise<T>;

/** A stored publication as subscribers receive it: `json` is the Publication object. */
export interface EnginePublication {
  offset: number;
  json: string;
  /** The data bytes, when they are not exactly `json`'s data (kept by the in-memory engine). */
  raw?: Buffer;
  /** The data has no JSON form (`json` holds data null): JSON readers skip it. */
  binary?: boolean;
}

/** A publication handed to the engine: its data JSON and the fields after offset. */
export interface PublicationInput {
  /** The `data` value as JSON text. */
  dataJson: string;
  /** `,"info":…,"tags":…` or ''. */
  tail: string;
  /** What raw `/ws` members receive when it differs from dataJson (the original text). */
  raw?: string | undefined;
  /**
   * The data bytes, when they are not exactly dataJson's (binary data, text
   * kept exactly, a protobuf client's bytes); what protobuf readers get.
   * Kept by the in-memory engine; a shared engine keeps JSON only.
   */
  bytes?: Buffer;
  /** The data has no JSON form (dataJson is then `null`). */
  binary?: boolean;
}

/** The history half of an engine. Refusals are ReplyErrorExceptions (112, 100, 106). */
export interface HistoryEngine {
  /**
   * Appends to `channel`'s stream bounded by `size` publications and
   * `ttl` ms, returning the new position (and, for an engine that does not
   * deliver, the publication JSON).
   */
  append(
    channel: string,
    publication: PublicationInput,
    size: number,
    ttl: number,
  ): MaybePromise<StreamPosition & { json?: string }>;
  /** The stream's current position (a new epoch is created for a channel never used). */
  top(channel: string): MaybePromise<StreamPosition>;
  /**
   * Publications after `since` (or from the oldest), at most `limit`,
   * oldest first unless `reverse` (then newest first, before since).
   * 112 when since's epoch is not the stream's.
   */
  read(
    channel: string,
    query: { since?: StreamPosition; limit: number; reverse: boolean; ttl: number },
  ): MaybePromise<{ publications: EnginePublication[]; top: StreamPosition }>;
  /**
   * Every publication after `since`, when the epoch matches, none is lost and
   * there are at most `max`; otherwise recovered false and none.
   */
  recover(
    channel: string,
    since: StreamPosition,
    max: number,
    ttl: number,
  ): MaybePromise<{ publications: EnginePublication[]; top: StreamPosition; recovered: boolean }>;
  /** Forgets the stored publications; the position and epoch stay. */
  remove(channel: string): MaybePromise<void>;
}

/** The presence half of an engine. */
export interface PresenceEngine {
  /** Adds (or replaces) a client's entry; false when a bound refuses it. */
  presenceAdd(channel: string, clientId: string, info: ClientInfo): MaybePromise<boolean>;
  presenceRemove(channel: string, clientId: string): MaybePromise<void>;
  presenceGet(channel: string): MaybePromise<Record<string, ClientInfo>>;
  presenceStats(channel: string): MaybePromise<{ numClients: number; numUsers: number }>;
}

/** What a shared engine hands back from its pub/sub. */
export interface EngineReceiver {
  /** A publication of a channel with history (this node's own included), with its position. */
  publication(channel: string, position: StreamPosition, publication: PublicationInput): void;
  /** A join or leave of a subscriber on any node. */
  joinLeave(channel: string, kind: 'join' | 'leave', infoJson: string): void;
  /** Pub/sub came back after an outage: publications of the outage never arrived here. */
  resubscribed(): void;
}

/** Counters of an engine, named after it (part of the node's metrics). */
export type EngineMetrics = Record<string, number>;

/** History and presence, with what a shared engine adds. */
export interface ChannelEngine extends HistoryEngine, PresenceEngine {
  /** Short name: "memory" or "redis". */
  readonly kind: string;
  /**
   * True when the engine delivers publications of channels with history:
   * the node then sends them to its members only as they come back through
   * `receiver.publication`, in the engine's order, the node's own included.
   */
  readonly delivers: boolean;
  /** Connects (a shared engine); rejects when it cannot be reached. */
  start?(receiver: EngineReceiver): Promise<void>;
  /** Starts receiving `channel`'s publications and join/leave; resolves once in place. */
  listen?(channel: string): Promise<void>;
  /** Stops receiving `channel`. */
  unlisten?(channel: string): void;
  /**
   * Resolves once every publication of `channel` stored before the call has
   * reached this node's receiver (a marker sent through the channel's
   * pub/sub after them, coming back in order); rejects on failure or timeout.
   * For an engine that `delivers`; `channel` must be listened to.
   */
  sync?(channel: string): Promise<void>;
  /** Sends a join or leave to the channel's subscribers on every node. */
  publishJoinLeave?(channel: string, kind: 'join' | 'leave', infoJson: string): Promise<void>;
  /** Refreshes the presence entries this node keeps alive, of one channel. */
  presenceRefresh?(channel: string, entries: Array<[string, ClientInfo]>): Promise<void>;
  /** How often the node refreshes its presence entries (ms), for an engine whose entries expire. */
  readonly presenceRefreshInterval?: number;
  /**
   * Forgets `channel`'s stream (a new epoch next time): for a per-node
   * engine when the node may have missed publications of other nodes.
   */
  reset?(channel: string): void;
  /** Periodic housekeeping (expired publications, idle streams). */
  sweep?(): void;
  metrics(): EngineMetrics;
  /** Closes connections, within `timeoutMs`. */
  close?(timeoutMs: number): Promise<void>;
}
