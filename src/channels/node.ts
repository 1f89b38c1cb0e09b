/**
 * The channel node: every channel-protocol connection of one server, the
 * channels they subscribe to, history and presence, and the fan-out of
 * publications. It receives every room broadcast of the hub (as its room
 * sink), so a raw `/ws` room and the channel of the same name are one:
 * a raw message reaches channel subscribers, and a channel publication
 * goes out through the hub to raw members and to other nodes.
 *
 * Publications are encoded once per channel and event-loop turn: the
 * pushes of one channel in one turn go out as one WebSocket frame (one
 * JSON reply per line), the same Buffer for every subscriber.
 */
import type { UserConnectionLimit } from '../upgrade/client-limits.ts';
import { InvalidTokenError } from '../auth/errors.ts';
import { ExpiryTimer } from '../auth/expiry-timer.ts';
import type { TokenAuthenticator } from '../auth/token.ts';
import type { UserInfo } from '../auth/user.ts';
import type { Connection, ConnectionHandlers } from '../connection/connection.ts';
import { Delivery } from '../connection/send-queue.ts';
import type { Hub, RoomSink } from '../hub/hub.ts';
import { sanitizeForLogging } from '../hub/validation.ts';
import { Opcode, type DataOpcode } from '../protocol/frame.ts';
import type {
  ChannelApi,
  DisconnectOptions,
  HistoryQuery,
  HistoryReply,
  NodeInfo,
  PublishOptions,
  PublishResult,
} from './api.ts';
import { pushJson } from './codec.ts';
import { applicationData, isJson, jsonFormOf } from './encoding.ts';
import { FanoutFrames, PendingPush } from './fanout-frames.ts';
import { clientInfoBytes, encodePubPush, encodePush, tagsBytes } from './protobuf-codec.ts';
import type { ChannelEngine, EnginePublication, PublicationInput, StreamPosition } from './engine.ts';
import { MemoryEngine } from './engine-memory.ts';
import type { HistoryLimits } from './history.ts';
import {
  historyEnabled,
  mayPublish,
  mayReadHistory,
  mayReadPresence,
  maySubscribeWithoutToken,
  pushJoinLeave,
  recoveryEnabled,
  type Asker,
  type ChannelOptions,
  type Namespaces,
} from './options.ts';
import type { PresenceLimits } from './presence.ts';
import {
  DisconnectException,
  Disconnects,
  ReplyErrorException,
  ReplyErrors,
  Unsubscribes,
  type ClientInfo,
  type Json,
  type Publication,
  type SubscribeRequest,
} from './protocol.ts';
import { publicationJson } from './redis-keys.ts';
import { ChannelSession, userOf, type ChannelClient, type Subscription } from './session.ts';

/** Bounds of the channel protocol, per connection and per node. */
export interface ChannelLimits {
  /** Time from the upgrade to the connect command (ms); then 3502 stale. */
  connectTimeout: number;
  /** Interval of the protocol's server pings (ms; 0 = none). */
  pingInterval: number;
  /** Time a client has to answer a ping (ms); then 3012 no pong. */
  pongTimeout: number;
  /** Grace after a token's `exp` for a refresh before 3005 (connection) or the expiry unsubscribe (ms). */
  expiredCloseDelay: number;
  /** Channels one connection may subscribe to (client- and server-side). */
  maxSubscriptions: number;
  /** Largest publication from a client, as JSON bytes. */
  maxPublicationBytes: number;
  /** Commands per second per connection, with bursts of twice that (0 = unlimited); beyond: 111. */
  maxCommandsPerSecond: number;
  /** Commands in one frame. */
  maxCommandsPerFrame: number;
  /** Commands that may wait behind a waiting one; beyond: 3013. */
  maxPendingCommands: number;
  /** Most publications a history call returns. */
  maxHistoryLimit: number;
  /** Most publications a recovery returns; more missed is recovered: false. */
  maxRecoveredPublications: number;
  /** Bound on a token check or application hook (ms); beyond: 100 internal error. */
  hookTimeout: number;
  /** Whether a connect without any token is accepted (as an anonymous user ''). */
  allowAnonymousConnect: boolean;
}

/** What an RPC handler gets. */
export interface RpcContext {
  client: ChannelClient;
  method: string;
  /** The request data as JSON (undefined without data, or for a protobuf client's bytes that are not JSON). */
  data: Json | undefined;
  /** The request data as a protobuf client sent it (absent for a JSON client). */
  bytes?: Uint8Array;
}

/** Application hooks of the channel protocol. */
export interface ChannelHooks {
  /**
   * Answers `rpc` commands: returns the reply data (any JSON value), or
   * throws a ReplyErrorException for a protocol error the client sees
   * (code and message); any other failure answers 100 internal error.
   * Without it, rpc answers 108 not available.
   */
  onRpc?: (ctx: RpcContext) => Json | undefined | Promise<Json | undefined>;
  /**
   * Receives `send` commands (no reply): `data` as JSON (undefined for a
   * protobuf client's bytes that are not JSON), `bytes` as a protobuf client sent them.
   */
  onSend?: (client: ChannelClient, data: Json | undefined, bytes?: Uint8Array) => void | Promise<void>;
  /** Asked when a subscribe without a token is not allowed by the channel's options; true allows. */
  authorizeSubscribe?: (client: ChannelClient, channel: string) => boolean | Promise<boolean>;
  /**
   * Asked when a client publication is not allowed by the channel's
   * options; true allows. `data` is the publication as JSON (null for a
   * protobuf client's bytes that are not JSON), `bytes` the bytes a
   * protobuf client sent.
   */
  authorizePublish?: (
    client: ChannelClient,
    channel: string,
    data: Json,
    bytes?: Uint8Array,
  ) => boolean | Promise<boolean>;
}

export interface ChannelNodeOptions {
  hub: Hub;
  namespaces: Namespaces;
  limits: ChannelLimits;
  /** Verifies connection tokens (`sub`, `exp`, `info`, `channels`). Without one, only anonymous connects work. */
  tokenAuthenticator?: TokenAuthenticator | undefined;
  /** Verifies subscription tokens (`sub`, `channel`, `exp`, `info`); default: tokenAuthenticator. */
  subscriptionTokenAuthenticator?: TokenAuthenticator | undefined;
  /** Bounds of the in-memory engine (when `engine` is not given). */
  history?: Partial<HistoryLimits>;
  presence?: Partial<PresenceLimits>;
  /**
   * Where history and presence live: default a MemoryEngine (this node
   * only); a RedisEngine shares them between nodes. Started by `start()`.
   */
  engine?: ChannelEngine | undefined;
  /** Most publications buffered for one subscribe while its recovery reads a shared engine (default 1000). */
  maxRecoveryBuffer?: number;
  hooks?: ChannelHooks;
  /** Connections per user (token `sub`), shared with the server's /ws endpoint; absent = unlimited. */
  userLimit?: UserConnectionLimit | undefined;
  /** Name of this node in `info` and the connect reply. */
  name?: string;
  /** Version announced in the connect reply. */
  version?: string;
  /** Receives log events. */
  log?: (entry: {
    level: 'debug' | 'info' | 'warn' | 'error';
    event: string;
    [field: string]: unknown;
  }) => void;
}

/** Counters of the channel layer (part of the server's metrics). */
export interface ChannelMetrics {
  channel_connections: number;
  channel_subscriptions: number;
  channels: number;
  commands: number;
  commands_limited: number;
  channel_publications: number;
  channel_pushes_queued: number;
  channel_pushes_dropped: number;
  /** Publications without a JSON form (binary data: raw room binary, a protobuf client's non-JSON data), not delivered to JSON subscribers. */
  channel_binary_skipped: number;
  /** Non-JSON text room messages delivered to channel subscribers as a JSON string. */
  channel_text_wrapped: number;
  channel_disconnects: number;
  /** The in-memory engine's (absent with a Redis engine). */
  history_streams?: number;
  history_publications?: number;
  history_bytes?: number;
  history_trimmed?: number;
  presence_entries?: number;
  /** The Redis engine's (absent with the in-memory engine); see docs/CHANNELS.md, "Metrics". */
  redis_state_connected?: number;
  redis_state_history_appends?: number;
  redis_state_history_reads?: number;
  redis_state_presence_ops?: number;
  redis_state_errors?: number;
  redis_state_timeouts?: number;
  redis_state_refused?: number;
  redis_state_pending?: number;
  redis_state_received?: number;
  redis_state_malformed?: number;
  redis_state_resubscribes?: number;
  redis_state_listened?: number;
  redis_state_publish_failed?: number;
  redis_state_gaps?: number;
  redis_state_recovery_overflows?: number;
  redis_state_forced_resubscribes?: number;
}

/**
 * A subscribe waiting for a shared engine: what arrives meanwhile, merged by
 * offset after its reply. Once replied, it may still be `catchingUp`: the
 * publications up to the reply's position can still be on their way through
 * pub/sub (the read and the pub/sub messages use different connections), so
 * the subscriber joins the fan-out only once those have passed (the one at
 * the position itself, or the engine's sync marker) and none reaches it twice.
 */
interface Joining {
  buffer: Array<{ offset: number; epoch: string; json: string }>;
  overflow: boolean;
  /** The position the subscribe reply announced; buffered publications up to it are dropped. */
  top: StreamPosition | null;
  /** Replied, and waiting for pub/sub to pass `top` before joining the fan-out. */
  catchingUp: boolean;
}

/** What one received publication does to the subscribes catching up with it. */
interface CatchUp {
  /** Join the fan-out before this publication (it is past their position). */
  before: ChannelSession[];
  /** Join the fan-out after it (it is their position: in the reply already). */
  after: ChannelSession[];
  /** The stream started over under them: unsubscribed with 2500 to recover. */
  ended: ChannelSession[];
}

/** A channel this node receives from a shared engine. */
interface Listening {
  ready: Promise<void>;
  /** The last publication received: gaps and epoch changes are detected against it. */
  epoch: string | null;
  offset: number;
  joining: Map<ChannelSession, Joining>;
  /** Subscribes waiting for the engine's sync marker (gathered for one marker per turn). */
  syncWaiters: Array<{ session: ChannelSession; joining: Joining }> | null;
}

/** What a subscribe was granted by its token, the options or a hook. */
export interface Grant {
  options: ChannelOptions;
  chanInfo: Json | undefined;
  /** Subscription token `exp` in seconds, if any. */
  exp: number | undefined;
}

interface ChannelState {
  name: string;
  subscribers: Map<ChannelSession, Subscription>;
  pending: PendingPush[] | null;
}

/**
 * A publication made through the channel layer, handed to the hub with its
 * data so the room sink knows its publisher and options.
 */
class LocalPublication {
  /** A promise when a shared engine stores it (settled once stored or refused). */
  result: PublishResult | Promise<PublishResult> = {};
  constructor(
    /** The data as JSON text; null when it has no JSON form. */
    readonly dataJson: string | null,
    readonly infoJson: string | undefined,
    readonly tagsJson: string | undefined,
    readonly skipHistory: boolean,
    /** The data bytes as a protobuf client sent them (undefined for JSON data). */
    readonly raw: Buffer | undefined = undefined,
  ) {}
}

const MAX_CHANNEL_NAME_BYTES = 255;
const HISTORY_SWEEP_MS = 1000;
/** How long a shared engine's connections get to finish at shutdown (ms). */
const ENGINE_CLOSE_TIMEOUT_MS = 1000;

export class ChannelNode implements ChannelApi, RoomSink {
  readonly limits: ChannelLimits;
  readonly version: string;
  readonly name: string;
  /** Where history and presence live (see ChannelEngine). */
  readonly engine: ChannelEngine;
  /** Whether the engine delivers publications of channels with history (a shared engine). */
  private readonly shared: boolean;
  private readonly listening = new Map<string, Listening>();
  private readonly maxRecoveryBuffer: number;
  private presenceTimer: NodeJS.Timeout | null = null;
  private readonly stateCounters = {
    publish_failed: 0,
    gaps: 0,
    recovery_overflows: 0,
    forced_resubscribes: 0,
  };
  private shuttingDown = false;
  readonly metrics = {
    commands: 0,
    commands_limited: 0,
    channel_publications: 0,
    channel_pushes_queued: 0,
    channel_pushes_dropped: 0,
    channel_binary_skipped: 0,
    channel_text_wrapped: 0,
    channel_disconnects: 0,
  };
  /** The handlers every channel connection shares. */
  readonly handlers: ConnectionHandlers;
  private readonly hub: Hub;
  private readonly namespaces: Namespaces;
  private readonly hooks: ChannelHooks;
  private readonly tokens: TokenAuthenticator | undefined;
  private readonly subscriptionTokens: TokenAuthenticator | undefined;
  private readonly userLimit: UserConnectionLimit | undefined;
  private readonly log: NonNullable<ChannelNodeOptions['log']>;
  private readonly sessions = new Map<Connection, ChannelSession>();
  private readonly byId = new Map<string, ChannelSession>();
  private readonly byUser = new Map<string, Set<ChannelSession>>();
  private readonly channelStates = new Map<string, ChannelState>();
  private subscriptionCount = 0;
  /** Channels with pushes waiting for the end of this turn. */
  private dirty: ChannelState[] = [];
  private flushScheduled = false;
  readonly flush = (): void => this.flushPending();
  private readonly pingTimer: NodeJS.Timeout | null;
  private pongCheck: NodeJS.Timeout | null = null;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly startedAt = Date.now();
  private readonly uid = crypto.randomUUID();
  private closing: Promise<void> | null = null;

  constructor(options: ChannelNodeOptions) {
    this.hub = options.hub;
    this.namespaces = options.namespaces;
    this.limits = options.limits;
    this.hooks = options.hooks ?? {};
    this.tokens = options.tokenAuthenticator;
    this.subscriptionTokens = options.subscriptionTokenAuthenticator ?? options.tokenAuthenticator;
    this.userLimit = options.userLimit;
    this.version = options.version ?? '';
    this.name = options.name ?? 'wshub';
    this.log = options.log ?? (() => {});
    this.engine = options.engine ?? new MemoryEngine(options.history, options.presence);
    this.shared = this.engine.delivers;
    this.maxRecoveryBuffer = options.maxRecoveryBuffer ?? 1000;
    this.handlers = {
      message: (conn, data, binary) => this.sessions.get(conn)?.receive(data, binary),
      close: (conn, code) => this.closed(conn, code),
      error: (conn, error) =>
        this.log({
          level: 'debug',
          event: 'channel_connection_error',
          error: sanitizeForLogging(error.message),
        }),
    };
    const ping = this.limits.pingInterval;
    this.pingTimer = ping > 0 ? setInterval(() => this.pingAll(), ping) : null;
    this.pingTimer?.unref();
    this.sweepTimer = setInterval(() => this.engine.sweep?.(), HISTORY_SWEEP_MS);
    this.sweepTimer.unref();
    this.hub.setRoomSink(this);
  }

  /**
   * Connects a shared engine (rejects when it cannot be reached) and starts
   * refreshing this node's presence entries in it. Nothing to do for the
   * in-memory engine.
   */
  async start(): Promise<void> {
    const engine = this.engine;
    if (engine.start === undefined) return;
    await engine.start({
      publication: (channel, position, pub) => this.engineReceived(channel, position, pub),
      joinLeave: (channel, kind, infoJson) => {
        const state = this.channelStates.get(channel);
        if (state !== undefined && state.subscribers.size > 0)
          this.enqueue(state, bothEncodings(channel, kind, `{"info":${infoJson}}`, true));
        const listening = this.listening.get(channel);
        if (listening !== undefined && listening.joining.size > 0)
          this.joinLeaveToCatchingUp(channel, listening, kind, infoJson);
      },
      resubscribed: () => {
        // Publications made while pub/sub was down never arrived: every subscriber of a channel
        // with history resubscribes and recovers them from the stream (or learns recovered: false).
        for (const [channel, listening] of this.listening) {
          listening.epoch = null;
          this.forceResubscribe(channel, listening);
        }
      },
    });
    const interval = engine.presenceRefreshInterval;
    if (interval !== undefined && engine.presenceRefresh !== undefined) {
      this.presenceTimer = setInterval(() => this.refreshPresence(), interval);
      this.presenceTimer.unref();
    }
  }

  /** Re-adds every local presence entry to the shared engine, so they outlive its presence ttl. */
  private refreshPresence(): void {
    for (const [channel, state] of this.channelStates) {
      if (state.subscribers.size === 0 || this.namespaces.resolve(channel)?.options.presence !== true)
        continue;
      const entries: Array<[string, ClientInfo]> = [];
      state.subscribers.forEach((sub, session) =>
        entries.push([session.id, JSON.parse(sub.infoJson) as ClientInfo]),
      );
      this.engine.presenceRefresh?.(channel, entries).catch(ignore);
    }
  }

  /** Ends every local subscription of `channel` with 2500 (the SDK resubscribes and recovers). */
  private forceResubscribe(channel: string, listening: Listening): void {
    for (const [session, joining] of [...listening.joining]) {
      joining.overflow = true;
      if (joining.catchingUp) {
        this.stateCounters.forced_resubscribes++;
        this.endSubscription(session, channel, Unsubscribes.INSUFFICIENT_STATE);
      }
    }
    const state = this.channelStates.get(channel);
    if (state === undefined) return;
    for (const session of [...state.subscribers.keys()]) {
      this.stateCounters.forced_resubscribes++;
      this.endSubscription(session, channel, Unsubscribes.INSUFFICIENT_STATE);
    }
  }

  /**
   * A publication of a channel with history from the shared engine (this
   * node's own too): checked against the last one for gaps, then delivered
   * to raw members, subscribers, and subscribes waiting for their recovery.
   */
  private engineReceived(channel: string, position: StreamPosition, pub: PublicationInput): void {
    const listening = this.listening.get(channel);
    if (listening === undefined || this.hub.isStopped) return;
    if (listening.epoch !== null) {
      const gap = position.offset - listening.offset - 1;
      if (listening.epoch !== position.epoch || gap > 0) {
        // Lost on the way (or the stream started over): subscribers must not go on as if nothing happened.
        if (gap > 0 && listening.epoch === position.epoch) this.stateCounters.gaps += gap;
        listening.epoch = position.epoch;
        listening.offset = position.offset;
        this.forceResubscribe(channel, listening);
        return this.deliverReceived(channel, listening, position, pub);
      }
      if (gap < 0) return; // a duplicate: already delivered
    }
    listening.epoch = position.epoch;
    listening.offset = position.offset;
    this.deliverReceived(channel, listening, position, pub);
  }

  private deliverReceived(
    channel: string,
    listening: Listening,
    position: StreamPosition,
    pub: PublicationInput,
  ): void {
    const json = publicationJson(pub.dataJson, position.offset, pub.tail);
    this.metrics.channel_publications++;
    this.hub.deliverToMembers(channel, Opcode.TEXT, pub.raw ?? pub.dataJson);
    const caught = listening.joining.size > 0 ? this.passJoining(listening, position, json) : null;
    if (caught !== null && caught.before.length > 0) this.joinFanout(channel, caught.before);
    const state = this.channelStates.get(channel);
    if (state !== undefined && state.subscribers.size > 0) {
      // Protobuf subscribers get the text exactly as published.
      const exact = pub.raw === undefined ? json : withBytes(json, Buffer.from(pub.raw));
      this.enqueue(
        state,
        new PendingPush(false, pushJson(channel, 'pub', json), () => encodePush(channel, 'pub', exact)),
      );
    }
    if (caught === null) return;
    if (caught.after.length > 0) this.joinFanout(channel, caught.after);
    for (const session of caught.ended) {
      this.stateCounters.forced_resubscribes++;
      this.endSubscription(session, channel, Unsubscribes.INSUFFICIENT_STATE);
    }
  }

  /**
   * A received publication against the subscribes waiting on `listening`:
   * buffered for those still waiting for their reply; for those catching up,
   * the signal to join the fan-out once it reaches their position.
   */
  private passJoining(listening: Listening, position: StreamPosition, json: string): CatchUp | null {
    let caught: CatchUp | null = null;
    for (const [session, joining] of listening.joining) {
      if (joining.overflow) continue;
      if (joining.catchingUp) {
        const top = joining.top!;
        if (position.epoch === top.epoch && position.offset < top.offset) continue;
        caught ??= { before: [], after: [], ended: [] };
        if (position.epoch !== top.epoch) caught.ended.push(session);
        else (position.offset === top.offset ? caught.after : caught.before).push(session);
        listening.joining.delete(session);
      } else if (joining.buffer.length >= this.maxRecoveryBuffer) {
        joining.overflow = true;
        joining.buffer = [];
        this.stateCounters.recovery_overflows++;
      } else joining.buffer.push({ offset: position.offset, epoch: position.epoch, json });
    }
    return caught;
  }

  /**
   * Subscribers that caught up join the channel's fan-out. Pushes waiting
   * for this turn are written first: they were meant for the others.
   */
  private joinFanout(channel: string, sessions: ChannelSession[]): void {
    this.flushPending();
    let state = this.channelStates.get(channel);
    if (state === undefined)
      this.channelStates.set(channel, (state = { name: channel, subscribers: new Map(), pending: null }));
    for (const session of sessions) {
      const sub = session.subscriptions.get(channel);
      if (sub !== undefined) state.subscribers.set(session, sub);
    }
  }

  /** A join or leave for the subscribers still catching up (not yet in the fan-out): written directly. */
  private joinLeaveToCatchingUp(
    channel: string,
    listening: Listening,
    kind: 'join' | 'leave',
    infoJson: string,
  ): void {
    for (const [session, joining] of listening.joining) {
      if (!joining.catchingUp || session.subscriptions.get(channel)?.joinLeave !== true) continue;
      const encoding = session.encoding;
      session.conn
        .send(encoding.opcode, encoding.join([encoding.push(channel, kind, `{"info":${infoJson}}`)]))
        .catch(ignore);
    }
  }

  /**
   * A subscriber replied at a position pub/sub has not passed yet: it joins
   * the fan-out when the publication at that position arrives, or when the
   * engine's sync marker (sent after the read) comes back, whichever is first;
   * without a marker (a failure, a timeout) it is unsubscribed with 2500.
   */
  private catchUp(channel: string, listening: Listening, session: ChannelSession, joining: Joining): void {
    joining.catchingUp = true;
    joining.buffer = [];
    const engine = this.engine;
    if (engine.sync === undefined) {
      listening.joining.delete(session);
      this.joinFanout(channel, [session]);
      return;
    }
    const waiter = { session, joining };
    if (listening.syncWaiters !== null) {
      listening.syncWaiters.push(waiter);
      return;
    }
    const waiters = [waiter];
    listening.syncWaiters = waiters;
    // One marker for every subscribe that replied in this turn (their reads all came before it).
    queueMicrotask(() => {
      listening.syncWaiters = null;
      const settle = (synced: boolean): void => {
        for (const w of waiters) {
          if (listening.joining.get(w.session) !== w.joining) continue;
          listening.joining.delete(w.session);
          if (synced && this.listening.get(channel) === listening) this.joinFanout(channel, [w.session]);
          else {
            this.stateCounters.forced_resubscribes++;
            this.endSubscription(w.session, channel, Unsubscribes.INSUFFICIENT_STATE);
          }
        }
      };
      engine.sync!(channel).then(
        () => settle(true),
        () => settle(false),
      );
    });
  }

  /** RoomSink: a room got local interest; a shared engine starts sending its publications here. */
  roomActive(room: string): void {
    if (!this.shared || this.listening.has(room)) return;
    const options = this.namespaces.resolve(room)?.options;
    if (options === undefined || !(historyEnabled(options) || options.joinLeave)) return;
    const listening: Listening = {
      ready: Promise.resolve(),
      epoch: null,
      offset: 0,
      joining: new Map(),
      syncWaiters: null,
    };
    listening.ready = (this.engine.listen?.(room) ?? Promise.resolve()).catch((error: unknown) => {
      // Tried again by the next subscribe (a fresh listen once this one is dropped).
      if (this.listening.get(room) === listening) {
        this.listening.delete(room);
        this.engine.unlisten?.(room);
      }
      throw error;
    });
    // A failure reaches the subscribe waiting for it; nobody else needs to hear it.
    listening.ready.catch(ignore);
    this.listening.set(room, listening);
  }

  /** RoomSink: the room's last local member or subscriber is gone. */
  roomInactive(room: string): void {
    if (!this.listening.delete(room)) return;
    this.engine.unlisten?.(room);
  }

  /**
   * RoomSink: with a shared engine, a broadcast to a channel with history
   * is appended by the engine, which delivers it to every node (this one
   * too) in its order. Binary messages and publications that skip history
   * take the usual way. The append comes back as a promise (a channel
   * publication also carries it in `result`, for its publisher).
   */
  takeBroadcast(
    room: string,
    opcode: DataOpcode,
    data: Buffer,
    publication: unknown,
  ): false | Promise<unknown> {
    if (!this.shared) return false;
    const options = this.namespaces.resolve(room)?.options;
    if (options === undefined || !historyEnabled(options)) return false;
    if (publication instanceof LocalPublication) {
      // Data without a JSON form is not kept by a shared engine (a client's is refused before it gets here).
      if (publication.skipHistory || publication.dataJson === null) return false;
      const tail = publicationTail(publication.infoJson, publication.tagsJson);
      const raw = publication.raw?.toString('utf8');
      // Its publisher waits for this result and handles its failure.
      return (publication.result = this.appendShared(room, options, {
        dataJson: publication.dataJson,
        tail,
        raw: raw === publication.dataJson ? undefined : raw,
      }));
    }
    if (opcode === Opcode.BINARY) return false;
    const text = data.toString('utf8');
    const dataJson = this.dataJsonOf(text);
    const stored = this.appendShared(room, options, {
      dataJson,
      tail: '',
      raw: dataJson === text ? undefined : text,
    });
    // A raw room message has no publisher to answer; a caller that asked (tryBroadcastRoom) gets the promise.
    stored.catch(ignore);
    return stored;
  }

  /** The shared engine's append; a failure is counted and answered 100 (temporary). */
  private appendShared(
    channel: string,
    options: ChannelOptions,
    pub: PublicationInput,
  ): Promise<PublishResult> {
    return Promise.resolve(this.engine.append(channel, pub, options.historySize, options.historyTtl)).then(
      (position) => ({ offset: position.offset, epoch: position.epoch }),
      (error: unknown) => {
        this.stateCounters.publish_failed++;
        if (!(error instanceof ReplyErrorException)) this.reportError(undefined, error);
        throw error instanceof ReplyErrorException ? error : new ReplyErrorException(ReplyErrors.INTERNAL);
      },
    );
  }

  // ---- connections ------------------------------------------------------------------

  /** Takes a new channel connection (right after the 101); `headerToken` from `Authorization: Bearer`. */
  accept(conn: Connection, headerToken: string | undefined): ChannelSession {
    const session = new ChannelSession(conn, this, headerToken);
    conn.beforeDirectWrite = this.flush;
    this.sessions.set(conn, session);
    return session;
  }

  /**
   * Takes a connection slot for `user` before a connect completes; a user
   * at `maxConnsPerUser` is disconnected with 3504 connection limit (the
   * code Centrifuge uses for its per-user connection limit).
   */
  admitUser(user: string): void {
    if (this.userLimit !== undefined && !this.userLimit.tryAcquire(user))
      throw new DisconnectException(Disconnects.CONNECTION_LIMIT);
  }

  /** A session finished its connect (its user slot taken by admitUser). */
  attach(session: ChannelSession): void {
    this.byId.set(session.id, session);
    let set = this.byUser.get(session.user);
    if (set === undefined) this.byUser.set(session.user, (set = new Set()));
    set.add(session);
    this.log({
      level: 'debug',
      event: 'channel_connected',
      client: session.id,
      user: sanitizeForLogging(session.user),
    });
  }

  private closed(conn: Connection, code: number): void {
    const session = this.sessions.get(conn);
    if (session === undefined) return;
    this.sessions.delete(conn);
    const wasConnected = session.state === 'connected';
    session.closed();
    for (const channel of [...session.subscriptions.keys()]) this.endSubscription(session, channel, null);
    if (wasConnected) {
      this.byId.delete(session.id);
      const set = this.byUser.get(session.user);
      set?.delete(session);
      if (set?.size === 0) this.byUser.delete(session.user);
      this.userLimit?.release(session.user);
    }
    if (code >= 3000) this.metrics.channel_disconnects++;
    this.log({ level: 'debug', event: 'channel_closed', client: session.id, code });
  }

  /** Verifies a connection token; maps its failure to the protocol's answer. */
  verifyToken(token: string, purpose: 'connection' | 'refresh'): Promise<UserInfo> {
    const authenticator = this.tokens;
    if (authenticator === undefined)
      return Promise.reject(new DisconnectException(Disconnects.INVALID_TOKEN));
    return this.withTimeout(callAuthenticator(authenticator, token)).catch((error: unknown) => {
      throw this.tokenFailure(
        error,
        purpose === 'connection' ? ReplyErrors.TOKEN_EXPIRED : ReplyErrors.EXPIRED,
      );
    });
  }

  /**
   * Verifies a subscription token for `channel`: its `channel` must be the
   * channel and its `sub` the connection's user. Returns its `exp` and `info`.
   */
  verifySubscriptionToken(
    session: ChannelSession,
    channel: string,
    token: string,
    purpose: 'subscribe' | 'refresh',
  ): Promise<{ exp: number | undefined; info: Json | undefined }> {
    const authenticator = this.subscriptionTokens;
    if (authenticator === undefined)
      return Promise.reject(new DisconnectException(Disconnects.INVALID_TOKEN));
    return this.withTimeout(callAuthenticator(authenticator, token)).then(
      (user) => {
        const claims = user.claims;
        if (claims.channel !== channel || userOf(claims) !== session.user)
          throw new DisconnectException(Disconnects.INVALID_TOKEN);
        const exp = typeof claims.exp === 'number' ? claims.exp : undefined;
        return { exp, info: claims.info as Json | undefined };
      },
      (error: unknown) => {
        throw this.tokenFailure(
          error,
          purpose === 'subscribe' ? ReplyErrors.TOKEN_EXPIRED : ReplyErrors.EXPIRED,
        );
      },
    );
  }

  /** Expired → the given reply error; invalid → 3500; anything else (an outage) → 100, logged. */
  private tokenFailure(error: unknown, expired: { code: number; message: string }): Error {
    if (error instanceof ReplyErrorException || error instanceof DisconnectException) return error;
    if (error instanceof InvalidTokenError) {
      this.log({ level: 'info', event: 'channel_token_refused', reason: error.reason });
      return error.reason === 'expired'
        ? new ReplyErrorException(expired)
        : new DisconnectException(Disconnects.INVALID_TOKEN);
    }
    this.reportError(undefined, error);
    return new ReplyErrorException(ReplyErrors.INTERNAL);
  }

  /** The connect reply. */
  connectResultJson(session: ChannelSession, ttl: number | undefined, subs: Map<string, string>): string {
    const fields = [`"client":"${session.id}"`, `"version":${JSON.stringify(this.version)}`];
    if (ttl !== undefined) fields.push('"expires":true', `"ttl":${ttl}`);
    if (subs.size > 0) {
      const entries = [...subs].map(([channel, json]) => `${JSON.stringify(channel)}:${json}`);
      fields.push(`"subs":{${entries.join(',')}}`);
    }
    if (this.pingTimer !== null)
      fields.push(`"ping":${Math.max(1, Math.round(this.limits.pingInterval / 1000))}`, '"pong":true');
    return `{${fields.join(',')}}`;
  }

  // ---- subscribing ----------------------------------------------------------------------

  /** The namespace options of a channel the client names: 107 for an invalid name, 102 for an unknown namespace. */
  private optionsFor(channel: string): ChannelOptions {
    if (Buffer.byteLength(channel) > MAX_CHANNEL_NAME_BYTES || !this.hub.isValidRoom(channel))
      throw new ReplyErrorException(ReplyErrors.BAD_REQUEST);
    const resolved = this.namespaces.resolve(channel);
    if (resolved === null) throw new ReplyErrorException(ReplyErrors.UNKNOWN_CHANNEL);
    return resolved.options;
  }

  /**
   * Checks a client's subscribe: name, namespace, the connection's channel
   * limit, then a subscription token, the options, or the hook.
   */
  admitSubscribe(
    session: ChannelSession,
    channel: string,
    request: SubscribeRequest,
  ): Grant | Promise<Grant> {
    const options = this.optionsFor(channel);
    if (session.subscriptions.size >= this.limits.maxSubscriptions)
      throw new ReplyErrorException(ReplyErrors.LIMIT_EXCEEDED);
    const token = request.token;
    if (token !== undefined && typeof token !== 'string')
      throw new DisconnectException(Disconnects.BAD_REQUEST);
    if (token !== undefined && token !== '') {
      return this.verifySubscriptionToken(session, channel, token, 'subscribe').then((granted) => ({
        options,
        chanInfo: granted.info,
        exp: granted.exp,
      }));
    }
    const grant: Grant = { options, chanInfo: undefined, exp: undefined };
    if (maySubscribeWithoutToken(options, session.user === '')) return grant;
    const hook = this.hooks.authorizeSubscribe;
    if (hook === undefined) throw new ReplyErrorException(ReplyErrors.PERMISSION_DENIED);
    return this.withTimeout(Promise.resolve().then(() => hook(session, channel))).then((allowed) => {
      if (allowed !== true) throw new ReplyErrorException(ReplyErrors.PERMISSION_DENIED);
      return grant;
    });
  }

  /**
   * Subscribes `session` (admitted): registers the room with the hub,
   * reads the position or recovers, adds presence. Returns the
   * SubscribeResult JSON (a promise with a shared engine); the caller
   * calls subscribeReplied once the reply is written.
   */
  subscribe(
    session: ChannelSession,
    channel: string,
    request: SubscribeRequest,
    grant: Grant,
    serverSide: boolean,
  ): string | Promise<string> {
    const { options } = grant;
    // Checked before anything is registered: a refusal after that point
    // would leave the room registration and the presence entry behind.
    if (request.recover === true) readPosition(request.offset, request.epoch);
    const registered = this.hub.register(channel);
    if (!registered.ok) {
      if (registered.reason === 'stopped') throw new DisconnectException(Disconnects.SHUTDOWN);
      throw new ReplyErrorException(
        registered.reason === 'invalid_room' ? ReplyErrors.BAD_REQUEST : ReplyErrors.LIMIT_EXCEEDED,
      );
    }
    const info = clientInfo(session);
    if (grant.chanInfo !== undefined) info.chan_info = grant.chanInfo;
    if (this.shared) return this.subscribeShared(session, channel, request, grant, serverSide, info);
    if (options.presence && !immediate(this.engine.presenceAdd(channel, session.id, info))) {
      this.hub.unregister(channel);
      throw new ReplyErrorException(ReplyErrors.LIMIT_EXCEEDED);
    }
    // Pushes already waiting for this channel go to the subscribers that were
    // there; the new one gets them through recovery, never twice.
    this.flushPending();
    const fields: string[] = [];
    const withHistory = historyEnabled(options);
    const anonymous = session.user === '';
    const recoverable = recoveryEnabled(options, request.recoverable === true, anonymous);
    const positioned = withHistory && (recoverable || request.positioned === true);
    if (recoverable) fields.push('"recoverable":true');
    if (positioned) fields.push('"positioned":true');
    if (request.recover === true && recoverable) {
      const since = readPosition(request.offset, request.epoch);
      const r = immediate(
        this.engine.recover(channel, since, this.limits.maxRecoveredPublications, options.historyTtl),
      );
      recoveryFields(fields, r, session.encoding.binary);
    } else if (positioned) {
      const top = immediate(this.engine.top(channel));
      fields.push(`"epoch":${JSON.stringify(top.epoch)}`, `"offset":${top.offset}`);
    }
    return this.finishSubscribe(session, channel, request, grant, serverSide, info, fields, null);
  }

  /**
   * The subscribe with a shared engine: the channel's pub/sub subscription
   * is in place before presence and history are read, and what arrives
   * meanwhile is buffered (at most maxRecoveryBuffer), to be merged by
   * offset once the reply is out (subscribeReplied): no gap, no duplicate.
   * Bounded by hookTimeout; a failure undoes the registration and presence.
   */
  private subscribeShared(
    session: ChannelSession,
    channel: string,
    request: SubscribeRequest,
    grant: Grant,
    serverSide: boolean,
    info: ClientInfo,
  ): Promise<string> {
    const { options } = grant;
    const listening = this.listening.get(channel);
    const joining: Joining = { buffer: [], overflow: false, top: null, catchingUp: false };
    listening?.joining.set(session, joining);
    const anonymous = session.user === '';
    const recoverable = recoveryEnabled(options, request.recoverable === true, anonymous);
    const positioned = historyEnabled(options) && (recoverable || request.positioned === true);
    let presenceAdded = false;
    let abandoned = false;
    const undo = (): void => {
      abandoned = true;
      if (listening?.joining.get(session) === joining) listening.joining.delete(session);
      if (presenceAdded) this.engine.presenceRemove(channel, session.id)?.catch(ignore);
      this.hub.unregister(channel);
    };
    const work = async (): Promise<string[]> => {
      if (listening !== undefined) await listening.ready;
      if (options.presence) {
        if (!(await this.engine.presenceAdd(channel, session.id, info)))
          throw new ReplyErrorException(ReplyErrors.LIMIT_EXCEEDED);
        presenceAdded = true;
        // Timed out meanwhile: the entry must not outlive the failed subscribe.
        if (abandoned) this.engine.presenceRemove(channel, session.id)?.catch(ignore);
      }
      const fields: string[] = [];
      if (recoverable) fields.push('"recoverable":true');
      if (positioned) fields.push('"positioned":true');
      if (request.recover === true && recoverable) {
        const since = readPosition(request.offset, request.epoch);
        const r = await this.engine.recover(
          channel,
          since,
          this.limits.maxRecoveredPublications,
          options.historyTtl,
        );
        joining.top = r.top;
        recoveryFields(fields, r, session.encoding.binary);
      } else if (positioned) {
        const top = await this.engine.top(channel);
        joining.top = top;
        fields.push(`"epoch":${JSON.stringify(top.epoch)}`, `"offset":${top.offset}`);
      }
      return fields;
    };
    return this.withTimeout(work()).then(
      (fields) => {
        if (session.state === 'closed' || !session.conn.isOpen) {
          undo();
          return '{}';
        }
        return this.finishSubscribe(
          session,
          channel,
          request,
          grant,
          serverSide,
          info,
          fields,
          listening === undefined ? null : joining,
        );
      },
      (error: unknown) => {
        undo();
        if (error instanceof ReplyErrorException || error instanceof DisconnectException) throw error;
        this.reportError(session, error);
        throw new ReplyErrorException(ReplyErrors.INTERNAL);
      },
    );
  }

  /**
   * The end of a subscribe: the subscription, its token expiry, and (unless
   * it is `joining` a shared engine's channel, then in subscribeReplied)
   * its place among the channel's subscribers.
   */
  private finishSubscribe(
    session: ChannelSession,
    channel: string,
    request: SubscribeRequest,
    grant: Grant,
    serverSide: boolean,
    info: ClientInfo,
    fields: string[],
    joining: Joining | null,
  ): string {
    const anonymous = session.user === '';
    const sub: Subscription = {
      channel,
      joinLeave: pushJoinLeave(grant.options, request.join_leave === true, anonymous),
      infoJson: JSON.stringify(info),
      chanInfo: grant.chanInfo,
      expiry: null,
      serverSide,
    };
    const ttl = this.armSubscriptionExpiry(session, sub, grant.exp);
    if (ttl !== undefined) fields.unshift('"expires":true', `"ttl":${ttl}`);
    session.subscriptions.set(channel, sub);
    // Pushes already waiting go to the subscribers that were there (this one recovered them).
    if (joining === null && this.shared) this.flushPending();
    let state = this.channelStates.get(channel);
    if (state === undefined)
      this.channelStates.set(channel, (state = { name: channel, subscribers: new Map(), pending: null }));
    if (joining === null) state.subscribers.set(session, sub);
    this.subscriptionCount++;
    return `{${fields.join(',')}}`;
  }

  /**
   * Called once the subscribe (or connect) reply is written: a subscriber
   * that waited for a shared engine gets what arrived meanwhile after its
   * position, in offset order, and joins the channel's fan-out (a gap or an
   * overflowing buffer ends the subscription with 2500 instead: the SDK
   * resubscribes and recovers). Then the join push.
   */
  subscribeReplied(session: ChannelSession, channel: string): void {
    const listening = this.listening.get(channel);
    const joining = listening?.joining.get(session);
    if (listening !== undefined && joining !== undefined) {
      if (session.subscriptions.get(channel) === undefined) {
        listening.joining.delete(session);
        return;
      }
      const lines = joining.overflow ? null : mergeBuffered(joining);
      if (lines === null) {
        listening.joining.delete(session);
        if (!joining.overflow) this.stateCounters.gaps++;
        this.stateCounters.forced_resubscribes++;
        this.endSubscription(session, channel, Unsubscribes.INSUFFICIENT_STATE);
        return;
      }
      if (lines.length > 0) {
        const encoding = session.encoding;
        const pushes = lines.map((json) => encoding.push(channel, 'pub', json));
        session.conn.send(encoding.opcode, encoding.join(pushes)).catch(ignore);
      }
      const top = joining.top;
      // Nothing at or before the position can still come: no position, an empty stream, or pub/sub past it.
      const passed =
        top === null || top.offset === 0 || (listening.epoch === top.epoch && listening.offset >= top.offset);
      if (passed) {
        listening.joining.delete(session);
        this.joinFanout(channel, [session]);
      } else this.catchUp(channel, listening, session, joining);
    }
    this.announceJoin(session, channel);
  }

  /**
   * The join push of a new subscriber, where the channel has join/leave
   * events; after its subscribe (or connect) reply went out, so the reply
   * comes first. With a shared engine it goes to every node.
   */
  private announceJoin(session: ChannelSession, channel: string): void {
    const sub = session.subscriptions.get(channel);
    const state = this.channelStates.get(channel);
    if (sub === undefined || state === undefined) return;
    if (this.namespaces.resolve(channel)?.options.joinLeave !== true) return;
    if (this.engine.publishJoinLeave !== undefined)
      this.engine.publishJoinLeave(channel, 'join', sub.infoJson).catch(ignore);
    else this.enqueue(state, bothEncodings(channel, 'join', `{"info":${sub.infoJson}}`, true));
  }

  /**
   * Server-side subscriptions from the token's `channels` claim, with the
   * recovery positions the client sent in `connect.subs`. Channels of
   * unknown namespaces or invalid names are skipped (and logged).
   */
  subscribeServerSide(
    session: ChannelSession,
    claim: unknown,
    requests: Record<string, SubscribeRequest>,
  ): Map<string, string> | Promise<Map<string, string>> {
    const results = new Map<string, string>();
    const waiting: Array<Promise<void>> = [];
    if (claim === undefined) return results;
    if (!Array.isArray(claim)) throw new DisconnectException(Disconnects.INVALID_TOKEN);
    if (claim.length > this.limits.maxSubscriptions) throw new DisconnectException(Disconnects.CHANNEL_LIMIT);
    for (const channel of claim) {
      if (typeof channel !== 'string' || results.has(channel)) continue;
      let options: ChannelOptions;
      try {
        options = this.optionsFor(channel);
      } catch {
        this.log({
          level: 'warn',
          event: 'server_subscription_skipped',
          channel: sanitizeForLogging(channel),
        });
        continue;
      }
      const request = requests[channel];
      const asked = typeof request === 'object' && request !== null ? request : {};
      try {
        const json = this.subscribe(
          session,
          channel,
          asked,
          { options, chanInfo: undefined, exp: undefined },
          true,
        );
        results.set(channel, typeof json === 'string' ? json : '');
        if (typeof json !== 'string')
          waiting.push(json.then((result) => void results.set(channel, result), serverSideFailure));
      } catch (error) {
        serverSideFailure(error);
      }
    }
    if (waiting.length === 0) return results;
    return Promise.all(waiting).then(() => results);
  }

  /** Arms the unsubscribe of an expiring subscription token; returns its ttl in seconds. */
  armSubscriptionExpiry(
    session: ChannelSession,
    sub: Subscription,
    exp: number | undefined,
  ): number | undefined {
    sub.expiry?.cancel();
    sub.expiry = null;
    if (exp === undefined || !Number.isFinite(exp)) return undefined;
    // A token is valid through its `exp` second (the verifier's rule): expiring
    // earlier would let the client resubscribe with the same token, in a loop.
    sub.expiry = new ExpiryTimer((exp + 1) * 1000 + this.limits.expiredCloseDelay, () =>
      session.subscriptionExpired(sub.channel),
    );
    return Math.max(0, Math.ceil(exp - Date.now() / 1000));
  }

  /**
   * Ends a subscription: presence, the leave push, the hub registration.
   * `push` tells the client why (a server unsubscribe); null when the
   * client asked or is gone.
   */
  endSubscription(
    session: ChannelSession,
    channel: string,
    push: { code: number; reason: string } | null,
  ): void {
    const sub = session.subscriptions.get(channel);
    if (sub === undefined) return;
    session.subscriptions.delete(channel);
    sub.expiry?.cancel();
    this.subscriptionCount--;
    const listening = this.listening.get(channel);
    const joining = listening?.joining.get(session);
    if (joining !== undefined) listening!.joining.delete(session);
    // A subscriber catching up was announced already; one still waiting for its reply was not.
    const wasJoining = joining !== undefined && !joining.catchingUp;
    const state = this.channelStates.get(channel);
    if (state !== undefined) {
      state.subscribers.delete(session);
      const options = this.namespaces.resolve(channel)?.options;
      if (options?.presence === true) {
        const removed = this.engine.presenceRemove(channel, session.id);
        if (removed instanceof Promise) removed.catch(ignore);
      }
      if (options?.joinLeave === true && !wasJoining) {
        if (this.engine.publishJoinLeave !== undefined)
          this.engine.publishJoinLeave(channel, 'leave', sub.infoJson).catch(ignore);
        else if (state.subscribers.size > 0)
          this.enqueue(state, bothEncodings(channel, 'leave', `{"info":${sub.infoJson}}`, true));
      }
      if (state.subscribers.size === 0 && state.pending === null) this.channelStates.delete(channel);
    }
    this.hub.unregister(channel);
    if (push !== null) session.unsubscribed(channel, push);
  }

  // ---- publishing -------------------------------------------------------------------------

  /** A client's publish command. */
  publishFromClient(
    session: ChannelSession,
    channel: string,
    data: Json | Uint8Array | undefined,
  ): string | Promise<string> {
    if (data === undefined || (data instanceof Uint8Array && data.length === 0))
      throw new ReplyErrorException(ReplyErrors.BAD_REQUEST);
    const options = this.optionsFor(channel);
    // Bytes are copied: the frame they came in is not kept.
    const raw = data instanceof Uint8Array ? Buffer.from(data) : undefined;
    if (raw !== undefined && raw.length > this.limits.maxPublicationBytes)
      throw new ReplyErrorException(ReplyErrors.LIMIT_EXCEEDED);
    const dataJson = raw === undefined ? JSON.stringify(data) : jsonFormOf(raw);
    if (raw === undefined && Buffer.byteLength(dataJson!) > this.limits.maxPublicationBytes)
      throw new ReplyErrorException(ReplyErrors.LIMIT_EXCEEDED);
    // A shared engine keeps JSON only: bytes without a JSON form would reach the subscribers
    // without an offset and be missing from every recovery, so they are refused, not lost.
    if (dataJson === null && this.shared && historyEnabled(options))
      throw new ReplyErrorException(ReplyErrors.NOT_AVAILABLE);
    const sub = session.subscriptions.get(channel);
    const publish = (): string | Promise<string> => {
      // A stopped hub publishes nothing: the client must not be told it did.
      if (this.hub.isStopped) throw new ReplyErrorException(ReplyErrors.INTERNAL);
      const info = sub?.infoJson ?? JSON.stringify(clientInfo(session));
      const publication = new LocalPublication(dataJson, info, undefined, false, raw);
      // Raw room members get the bytes as they are: a text frame when they are JSON, else binary.
      this.hub.broadcastRoom(
        channel,
        dataJson === null ? Opcode.BINARY : Opcode.TEXT,
        raw ?? dataJson!,
        publication,
      );
      // With a shared engine: answered once the engine stored it (an error otherwise, never a false "ok").
      const result = publication.result;
      return result instanceof Promise ? result.then(() => '{}') : '{}';
    };
    if (mayPublish(options, askerOf(session, channel))) return publish();
    const hook = this.hooks.authorizePublish;
    if (hook === undefined) throw new ReplyErrorException(ReplyErrors.PERMISSION_DENIED);
    const app = applicationData(data);
    return this.withTimeout(
      Promise.resolve().then(() => hook(session, channel, app.data ?? null, app.bytes)),
    ).then((allowed) => {
      if (allowed !== true) throw new ReplyErrorException(ReplyErrors.PERMISSION_DENIED);
      return publish();
    });
  }

  /**
   * RoomSink: every broadcast to a room. Channel publications carry their
   * LocalPublication; raw room messages and messages from other nodes are
   * turned into publications. Protobuf subscribers get their bytes as
   * they are; JSON subscribers get JSON text as it is, other text as a
   * JSON string (counted), and no binary (counted).
   */
  roomMessage(room: string, opcode: DataOpcode, data: Buffer, publication: unknown): void {
    if (publication instanceof LocalPublication) {
      publication.result = this.publishLocal(
        room,
        publication.dataJson,
        publication.infoJson,
        publication.tagsJson,
        publication.skipHistory,
        publication.raw,
      );
      return;
    }
    const state = this.channelStates.get(room);
    if (state === undefined) {
      // Nobody listens here; only a channel that keeps history needs it.
      const resolved = this.namespaces.resolve(room);
      if (resolved === null || !historyEnabled(resolved.options)) return;
    }
    if (data.length === 0) return;
    if (opcode === Opcode.BINARY) {
      this.publishLocal(room, null, undefined, undefined, false, Buffer.from(data));
      return;
    }
    const text = data.toString('utf8');
    const dataJson = this.dataJsonOf(text);
    // Protobuf subscribers get the text's bytes as they are.
    this.publishLocal(
      room,
      dataJson,
      undefined,
      undefined,
      false,
      dataJson === text ? undefined : Buffer.from(data),
    );
  }

  /**
   * A raw text message as a publication's data: JSON as it is, other text
   * as a JSON string (counted).
   */
  private dataJsonOf(text: string): string {
    if (!isJson(text)) {
      this.metrics.channel_text_wrapped++;
      return JSON.stringify(text);
    }
    // Pushes go one per line: a line break inside would split this one. In
    // valid JSON a raw line break can only be whitespace, so a space keeps the value exactly.
    return text.includes('\n') ? text.replace(/\n/g, ' ') : text;
  }

  /**
   * RoomSink: this node starts listening to `room` on other nodes. Its
   * history missed what they published meanwhile, so the stream starts
   * over with a new epoch: a position from before reports recovered false,
   * never a silent gap. (History shared by all nodes is a Redis engine's job.)
   */
  roomListening(room: string): void {
    this.engine.reset?.(room);
  }

  /**
   * Appends to history (when the channel keeps it) and queues the push.
   * `dataJson` is the data's JSON form (null: none, JSON subscribers skip
   * it); `raw` the bytes protobuf subscribers get when they are not
   * exactly `dataJson`'s.
   */
  private publishLocal(
    channel: string,
    dataJson: string | null,
    infoJson: string | undefined,
    tagsJson: string | undefined,
    skipHistory: boolean,
    raw: Buffer | undefined,
  ): PublishResult {
    const resolved = this.namespaces.resolve(channel);
    if (resolved === null) return {};
    const options = resolved.options;
    const tail = publicationTail(infoJson, tagsJson);
    let pubJson: string;
    let offset = 0;
    let result: PublishResult = {};
    // A shared engine appends through takeBroadcast; what reaches here skips history.
    if (!skipHistory && historyEnabled(options) && !this.shared) {
      const input: PublicationInput = { dataJson: dataJson ?? 'null', tail };
      if (raw !== undefined) input.bytes = raw;
      if (dataJson === null) input.binary = true;
      const position = immediate(this.engine.append(channel, input, options.historySize, options.historyTtl));
      pubJson = position.json ?? publicationJson(input.dataJson, position.offset, tail);
      offset = position.offset;
      result = { offset: position.offset, epoch: position.epoch };
    } else pubJson = dataJson === null ? '' : `{"data":${dataJson}${tail}}`;
    this.metrics.channel_publications++;
    if (dataJson === null) this.metrics.channel_binary_skipped++;
    const state = this.channelStates.get(channel);
    if (state !== undefined && state.subscribers.size > 0) {
      const bytes = raw ?? Buffer.from(dataJson!);
      this.enqueue(
        state,
        new PendingPush(false, dataJson === null ? null : pushJson(channel, 'pub', pubJson), () =>
          encodePubPush(
            channel,
            bytes,
            infoJson === undefined ? undefined : clientInfoBytes(infoJson),
            offset,
            tagsJson === undefined ? undefined : tagsBytes(tagsJson),
          ),
        ),
      );
    }
    return result;
  }

  private enqueue(state: ChannelState, push: PendingPush): void {
    if (state.pending === null) {
      state.pending = [];
      this.dirty.push(state);
    }
    state.pending.push(push);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Writes every channel's pending pushes: one frame per channel, shared by its subscribers. */
  private flushPending(): void {
    if (!this.flushScheduled) return;
    this.flushScheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    for (const state of dirty) {
      const pending = state.pending!;
      state.pending = null;
      if (state.subscribers.size === 0) {
        if (this.channelStates.get(state.name) === state) this.channelStates.delete(state.name);
        continue;
      }
      const frames = new FanoutFrames(pending);
      let queued = 0;
      let dropped = 0;
      // forEach: no entry array per subscriber, on the one loop that runs per delivery.
      state.subscribers.forEach((sub, session) => {
        const binary = session.encoding.binary;
        const frame = frames.frame(binary, sub.joinLeave);
        if (frame === null) return;
        const pushes = frames.count(binary, sub.joinLeave);
        // With permessage-deflate, compressed once per channel flush and parameter set.
        const delivery = session.conn.deliver(frame.for(session.conn.deflate?.compressor), 1, true);
        if (delivery === Delivery.QUEUED || delivery === Delivery.WAIT) queued += pushes;
        else dropped += pushes;
      });
      this.metrics.channel_pushes_queued += queued;
      this.metrics.channel_pushes_dropped += dropped;
    }
  }

  // ---- presence, history, rpc, send ------------------------------------------------------------

  /** A client's presence read: 108 when presence is off for the channel, 103 without the permission. */
  private checkPresenceRead(session: ChannelSession, channel: string): void {
    const options = this.optionsFor(channel);
    if (!options.presence) throw new ReplyErrorException(ReplyErrors.NOT_AVAILABLE);
    if (!mayReadPresence(options, askerOf(session, channel)))
      throw new ReplyErrorException(ReplyErrors.PERMISSION_DENIED);
  }

  presenceFor(session: ChannelSession, channel: string): string | Promise<string> {
    this.checkPresenceRead(session, channel);
    return then(this.engine.presenceGet(channel), (presence) => JSON.stringify({ presence }));
  }

  presenceStatsFor(session: ChannelSession, channel: string): string | Promise<string> {
    this.checkPresenceRead(session, channel);
    return then(
      this.engine.presenceStats(channel),
      (stats) => `{"num_clients":${stats.numClients},"num_users":${stats.numUsers}}`,
    );
  }

  historyFor(
    session: ChannelSession,
    channel: string,
    request: Record<string, unknown>,
  ): string | Promise<string> {
    const options = this.optionsFor(channel);
    if (!historyEnabled(options)) throw new ReplyErrorException(ReplyErrors.NOT_AVAILABLE);
    if (!mayReadHistory(options, askerOf(session, channel)))
      throw new ReplyErrorException(ReplyErrors.PERMISSION_DENIED);
    const query = readHistoryQuery(request);
    const r = this.engine.read(channel, {
      ...(query.since === undefined ? {} : { since: query.since }),
      limit: this.clampLimit(query.limit),
      reverse: query.reverse,
      ttl: options.historyTtl,
    });
    return then(
      r,
      (r) =>
        `{"publications":[${publicationList(r.publications, session.encoding.binary)}],"epoch":${JSON.stringify(r.top.epoch)},"offset":${r.top.offset}}`,
    );
  }

  private clampLimit(limit: number): number {
    const max = this.limits.maxHistoryLimit;
    return limit < 0 || limit > max ? max : limit;
  }

  rpc(session: ChannelSession, request: Record<string, unknown>): Promise<string> {
    const method = request.method ?? '';
    if (typeof method !== 'string') throw new DisconnectException(Disconnects.BAD_REQUEST);
    const handler = this.hooks.onRpc;
    if (handler === undefined) throw new ReplyErrorException(ReplyErrors.NOT_AVAILABLE);
    const { data, bytes } = applicationData(request.data);
    return Promise.resolve()
      .then(() => handler({ client: session, method, data, ...(bytes === undefined ? {} : { bytes }) }))
      .then((result) => {
        if (result === undefined) return '{}';
        // A result JSON cannot carry (circular, BigInt, a function) is the hook's failure, like a throw.
        const json = JSON.stringify(result) as string | undefined;
        if (json === undefined) throw new TypeError(`onRpc returned a ${typeof result}, not JSON`);
        return `{"data":${json}}`;
      })
      .catch((error: unknown) => {
        if (error instanceof ReplyErrorException) throw error;
        this.reportError(session, error);
        throw new ReplyErrorException(ReplyErrors.INTERNAL);
      });
  }

  /** A client's send command: `value` a JSON value (JSON encoding) or bytes (protobuf). */
  send(session: ChannelSession, value: unknown): void {
    const handler = this.hooks.onSend;
    if (handler === undefined) return;
    const { data, bytes } = applicationData(value);
    Promise.resolve()
      .then(() => handler(session, data, bytes))
      .catch((error: unknown) => this.reportError(session, error));
  }

  /** An application hook or authenticator failed (not a refusal): logged. */
  reportError(session: ChannelSession | undefined, error: unknown): void {
    this.log({
      level: 'error',
      event: 'channel_error',
      client: session?.id,
      error: sanitizeForLogging(String(error).slice(0, 200)),
    });
  }

  /** Bounds a token check or hook in time: past `hookTimeout`, a 100 internal error. */
  withTimeout<T>(promise: Promise<T>): Promise<T> {
    const ms = this.limits.hookTimeout;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.log({ level: 'warn', event: 'channel_hook_timeout', timeout_ms: ms });
        reject(new ReplyErrorException(ReplyErrors.INTERNAL));
      }, ms);
      timer.unref();
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  // ---- ping ------------------------------------------------------------------------------

  /** Pings every connected client (one shared frame); those still silent after pongTimeout are dropped. */
  private pingAll(): void {
    if (this.byId.size === 0) return;
    for (const session of this.byId.values()) {
      session.pongPending = true;
      session.conn.deliver(session.encoding.pingFrame, 1, false);
    }
    if (this.pongCheck !== null) clearTimeout(this.pongCheck);
    this.pongCheck = setTimeout(() => {
      this.pongCheck = null;
      for (const session of [...this.byId.values()]) {
        if (session.pongPending) session.disconnect(Disconnects.NO_PONG);
      }
    }, this.limits.pongTimeout);
    this.pongCheck.unref();
  }

  // ---- ChannelApi ----------------------------------------------------------------------------

  /** Throws 107 for a name that is not a valid channel, 102 for an unknown namespace. */
  private apiOptions(channel: unknown): ChannelOptions {
    if (typeof channel !== 'string' || channel === '') throw new ReplyErrorException(ReplyErrors.BAD_REQUEST);
    return this.optionsFor(channel);
  }

  publish(channel: string, data: Json, options: PublishOptions = {}): Promise<PublishResult> {
    return settle(() => {
      this.apiOptions(channel);
      if (data === undefined) throw new ReplyErrorException(ReplyErrors.BAD_REQUEST);
      if (this.hub.isStopped) throw new ReplyErrorException(ReplyErrors.INTERNAL);
      const dataJson = JSON.stringify(data);
      const tags = options.tags;
      const tagsJson = tags !== undefined && Object.keys(tags).length > 0 ? JSON.stringify(tags) : undefined;
      const publication = new LocalPublication(dataJson, undefined, tagsJson, options.skipHistory === true);
      this.hub.broadcastRoom(channel, Opcode.TEXT, dataJson, publication);
      return publication.result;
    });
  }

  history(channel: string, query: HistoryQuery = {}): Promise<HistoryReply> {
    return settle(() => {
      const options = this.apiOptions(channel);
      if (!historyEnabled(options)) throw new ReplyErrorException(ReplyErrors.NOT_AVAILABLE);
      const r = this.engine.read(channel, {
        ...(query.since === undefined ? {} : { since: readPosition(query.since.offset, query.since.epoch) }),
        limit: this.clampLimit(query.limit ?? 0),
        reverse: query.reverse === true,
        ttl: options.historyTtl,
      });
      return then(r, (r) => ({
        // Publications without a JSON form (binary data) are left out: this API speaks JSON.
        publications: r.publications
          .filter((p) => p.binary !== true)
          .map((p) => JSON.parse(p.json) as Publication),
        offset: r.top.offset,
        epoch: r.top.epoch,
      }));
    });
  }

  historyRemove(channel: string): Promise<void> {
    return settle(() => {
      const options = this.apiOptions(channel);
      if (!historyEnabled(options)) throw new ReplyErrorException(ReplyErrors.NOT_AVAILABLE);
      return this.engine.remove(channel);
    });
  }

  presence(channel: string): Promise<Record<string, ClientInfo>> {
    return settle(() => {
      if (!this.apiOptions(channel).presence) throw new ReplyErrorException(ReplyErrors.NOT_AVAILABLE);
      return this.engine.presenceGet(channel);
    });
  }

  presenceStats(channel: string): Promise<{ num_clients: number; num_users: number }> {
    return settle(() => {
      if (!this.apiOptions(channel).presence) throw new ReplyErrorException(ReplyErrors.NOT_AVAILABLE);
      return then(this.engine.presenceStats(channel), (stats) => ({
        num_clients: stats.numClients,
        num_users: stats.numUsers,
      }));
    });
  }

  unsubscribe(channel: string, user: string, client?: string): Promise<void> {
    for (const session of this.sessionsOf(user, client))
      this.endSubscription(session, channel, Unsubscribes.SERVER);
    return Promise.resolve();
  }

  disconnect(user: string, options: DisconnectOptions = {}): Promise<void> {
    for (const session of this.sessionsOf(user, options.client))
      session.disconnect(options.disconnect ?? Disconnects.FORCE_NO_RECONNECT);
    return Promise.resolve();
  }

  private sessionsOf(user: string, client: string | undefined): ChannelSession[] {
    if (client !== undefined && client !== '') {
      const session = this.byId.get(client);
      return session !== undefined && (user === '' || session.user === user) ? [session] : [];
    }
    return [...(this.byUser.get(user) ?? [])];
  }

  channels(pattern?: string): Promise<Record<string, { num_clients: number }>> {
    const match = pattern === undefined || pattern === '' ? null : globMatcher(pattern);
    const out: Record<string, { num_clients: number }> = {};
    for (const [channel, state] of this.channelStates) {
      if (state.subscribers.size === 0 || (match !== null && !match(channel))) continue;
      out[channel] = { num_clients: state.subscribers.size };
    }
    return Promise.resolve(out);
  }

  info(): Promise<{ nodes: NodeInfo[] }> {
    return Promise.resolve({
      nodes: [
        {
          uid: this.uid,
          name: this.name,
          version: this.version,
          num_clients: this.byId.size,
          num_users: this.byUser.size,
          num_channels: this.channelStates.size,
          num_subs: this.subscriptionCount,
          uptime: Math.floor((Date.now() - this.startedAt) / 1000),
        },
      ],
    });
  }

  channelMetrics(): ChannelMetrics {
    const shared: Record<string, number> = {};
    if (this.shared)
      for (const [name, value] of Object.entries(this.stateCounters))
        shared[`${this.engine.kind}_state_${name}`] = value;
    return {
      channel_connections: this.sessions.size,
      channel_subscriptions: this.subscriptionCount,
      channels: this.channelStates.size,
      ...this.metrics,
      ...this.engine.metrics(),
      ...shared,
    };
  }

  /** Whether new connects are refused (node shutting down or hub stopped). */
  get stopped(): boolean {
    return this.shuttingDown || this.hub.isStopped;
  }

  /** Every channel connection (connected or still waiting for its connect command). */
  get connectionCount(): number {
    return this.sessions.size;
  }

  /**
   * Closes every channel connection with 3001 shutdown (clients reconnect
   * elsewhere) and waits for them, within `timeout` ms. Safe to call twice.
   */
  shutdown(timeout: number): Promise<void> {
    this.closing ??= this.runShutdown(timeout);
    return this.closing;
  }

  private async runShutdown(timeout: number): Promise<void> {
    this.shuttingDown = true;
    this.flushPending();
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    if (this.pongCheck !== null) clearTimeout(this.pongCheck);
    clearInterval(this.sweepTimer);
    if (this.presenceTimer !== null) clearInterval(this.presenceTimer);
    const conns = [...this.sessions.keys()];
    for (const session of this.sessions.values()) session.disconnect(Disconnects.SHUTDOWN);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(conns.map((c) => c.closed())),
      new Promise((resolve) => (timer = setTimeout(resolve, timeout))),
    ]);
    clearTimeout(timer);
    for (const conn of conns) if (conn.readyState !== 'closed') conn.terminate();
    this.hub.setRoomSink(null);
    // Presence removals of the closed connections go out before the engine's connections close.
    await this.engine.close?.(ENGINE_CLOSE_TIMEOUT_MS);
  }
}

/** Calls the authenticator; a synchronous throw becomes a rejection. */
function callAuthenticator(authenticator: TokenAuthenticator, token: string): Promise<UserInfo> {
  return settle(() => authenticator.authenticate(token));
}

/** Runs `fn` now; its result or throw as a promise. */
function settle<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

/** A session as the permission rules see it, for `channel`. */
function askerOf(session: ChannelSession, channel: string): Asker {
  return { anonymous: session.user === '', subscribed: session.subscriptions.has(channel) };
}

/** The session's ClientInfo without channel info (the publisher of a publication, a subscriber's base). */
function clientInfo(session: ChannelSession): ClientInfo {
  const info: ClientInfo = { user: session.user, client: session.id };
  if (session.info !== undefined) info.conn_info = session.info;
  return info;
}

/** A push whose body is given as JSON, in both encodings (the protobuf one encoded on first use). */
function bothEncodings(channel: string, kind: string, bodyJson: string, jl: boolean): PendingPush {
  return new PendingPush(jl, pushJson(channel, kind, bodyJson), () => encodePush(channel, kind, bodyJson));
}

/** A publication's JSON with its exact data bytes along as `b64data` (the protobuf encoder's source for `data`). */
function withBytes(json: string, bytes: Buffer): string {
  return `{"b64data":"${bytes.toString('base64')}",${json.slice(1)}`;
}

/**
 * Stored publications as a JSON list for a reply. For a JSON session those
 * without a JSON form are left out; for a protobuf session the exact bytes
 * of those that keep them go along (withBytes).
 */
function publicationList(publications: EnginePublication[], binary: boolean): string {
  let out = '';
  for (const p of publications) {
    let json = p.json;
    if (binary && p.raw !== undefined) json = withBytes(json, p.raw);
    else if (!binary && p.binary === true) continue;
    out = out === '' ? json : `${out},${json}`;
  }
  return out;
}

/** `fn` of a value now, or of a promise's value later. */
function then<T, R>(value: T | Promise<T>, fn: (value: T) => R): R | Promise<R> {
  return value instanceof Promise ? value.then(fn) : fn(value);
}

/**
 * An answer of an engine that does not deliver (the in-memory one), which
 * must come at once; a promise there is a programming error.
 */
function immediate<T>(value: T | Promise<T>): T {
  if (value instanceof Promise) {
    value.catch(ignore);
    throw new TypeError('a channel engine with delivers = false must answer at once, not with a promise');
  }
  return value;
}

/** The publication fields after `offset`: `,"info":…` and `,"tags":…`. */
function publicationTail(infoJson: string | undefined, tagsJson: string | undefined): string {
  return (
    (infoJson === undefined ? '' : `,"info":${infoJson}`) +
    (tagsJson === undefined ? '' : `,"tags":${tagsJson}`)
  );
}

/** The subscribe reply's fields of a recovery. */
function recoveryFields(
  fields: string[],
  r: { publications: EnginePublication[]; top: StreamPosition; recovered: boolean },
  binary: boolean,
): void {
  fields.push(`"epoch":${JSON.stringify(r.top.epoch)}`, `"offset":${r.top.offset}`);
  fields.push('"was_recovering":true', `"recovered":${r.recovered}`);
  const list = publicationList(r.publications, binary);
  if (list !== '') fields.push(`"publications":[${list}]`);
}

/**
 * The publications buffered during a shared-engine subscribe that come
 * after the position its reply announced, in order; null when they do not
 * follow on from it (a gap or another epoch). Without a position (not
 * positioned), everything buffered.
 */
function mergeBuffered(joining: Joining): string[] | null {
  const top = joining.top;
  if (top === null) return joining.buffer.map((p) => p.json);
  const out: string[] = [];
  let next = top.offset + 1;
  for (const p of joining.buffer) {
    if (p.epoch !== top.epoch) return null;
    if (p.offset < next) continue; // in the reply already, or before the position
    if (p.offset > next) return null;
    out.push(p.json);
    next++;
  }
  return out;
}

/** A server-side subscription cannot be refused alone: the connect fails with the matching disconnect. */
function serverSideFailure(error: unknown): never {
  if (error instanceof ReplyErrorException) {
    const code = error.error.code;
    throw new DisconnectException(
      code === ReplyErrors.BAD_REQUEST.code
        ? Disconnects.BAD_REQUEST
        : code === ReplyErrors.INTERNAL.code
          ? Disconnects.SERVER_ERROR
          : Disconnects.CHANNEL_LIMIT,
    );
  }
  throw error;
}

function ignore(): void {}

/** A stream position from a client (missing parts are the empty position). */
function readPosition(offset: unknown, epoch: unknown): { offset: number; epoch: string } {
  if (offset !== undefined && !(Number.isSafeInteger(offset) && (offset as number) >= 0))
    throw new ReplyErrorException(ReplyErrors.BAD_REQUEST);
  if (epoch !== undefined && typeof epoch !== 'string')
    throw new ReplyErrorException(ReplyErrors.BAD_REQUEST);
  return { offset: (offset as number | undefined) ?? 0, epoch: epoch ?? '' };
}

function readHistoryQuery(request: Record<string, unknown>): {
  limit: number;
  since: { offset: number; epoch: string } | undefined;
  reverse: boolean;
} {
  const limit = request.limit ?? 0;
  if (!Number.isSafeInteger(limit)) throw new ReplyErrorException(ReplyErrors.BAD_REQUEST);
  const since = request.since;
  if (since !== undefined && (typeof since !== 'object' || since === null || Array.isArray(since)))
    throw new ReplyErrorException(ReplyErrors.BAD_REQUEST);
  const reverse = request.reverse ?? false;
  if (typeof reverse !== 'boolean') throw new ReplyErrorException(ReplyErrors.BAD_REQUEST);
  const position = since === undefined ? undefined : (since as Record<string, unknown>);
  return {
    limit: limit as number,
    since: position === undefined ? undefined : readPosition(position.offset, position.epoch),
    reverse,
  };
}

/** `*` any run of characters, `?` one; everything else literal. */
function globMatcher(pattern: string): (name: string) => boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  const re = new RegExp(`^${source}$`, 's');
  return (name) => re.test(name);
}
