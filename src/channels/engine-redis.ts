/**
 * The Redis engine: channel history, positions and presence in Redis,
 * shared by every node (node-redis; a standalone server or, with
 * `cluster: true`, a Redis Cluster through the library's cluster client).
 *
 * - A publication to a channel with history is one script (redis-scripts.ts):
 *   the epoch is created when the channel's meta key is missing, the offset
 *   incremented, the publication added to the channel's stream (exact MAXLEN
 *   historySize, the stream expiring historyTtl after the last one) and
 *   published on the channel's pub/sub channel with its offset and epoch —
 *   atomically, so every node sees the same offsets, epoch and order.
 * - Every node listens to the pub/sub channels of the channels it serves and
 *   delivers what arrives (its own publications too), in Redis's order.
 * - Presence: per channel a hash of entries, a hash of their users and a
 *   sorted set of expiry times (Redis clock); nodes refresh their clients'
 *   entries every presenceTtl / 3; expired entries are removed when read.
 * - Every command is bounded in time (commandTimeout) and in number
 *   (maxPending waiting at once); a failure or timeout is a temporary 100
 *   internal error for whoever asked, counted in the metrics, never a hang.
 *
 * Keys, their slot and what a restart without persistence does: see
 * redis-keys.ts and docs/SCALE-OUT.md.
 */
import { randomBytes } from 'node:crypto';
import { createClient, createCluster } from 'redis';
import { backoffDelay } from '../broker/redis.ts';
import type {
  ChannelEngine,
  EngineMetrics,
  EnginePublication,
  EngineReceiver,
  PublicationInput,
  StreamPosition,
} from './engine.ts';
import { ReplyErrorException, ReplyErrors, type ClientInfo } from './protocol.ts';
import {
  channelKeys,
  channelOfPubsub,
  checkKeyPrefix,
  decodeStateMessage,
  encodeJoinLeave,
  encodeSync,
  publicationJson,
  type ChannelKeys,
} from './redis-keys.ts';
import {
  PRESENCE_ADD_SCRIPT,
  PRESENCE_READ_SCRIPT,
  PRESENCE_REMOVE_SCRIPT,
  PUBLISH_SCRIPT,
  READ_SCRIPT,
  runScript,
  type KeyedCommand,
} from './redis-scripts.ts';

export interface RedisEngineOptions {
  /**
   * `redis://[user:password@]host[:port][/db]` or `rediss://…`; with
   * `cluster`, nodes of the cluster to start from, comma-separated.
   */
  url: string;
  /** A Redis Cluster (createCluster); implies sharded pub/sub. */
  cluster?: boolean;
  /** SPUBLISH/SSUBSCRIBE (Redis 7+) instead of PUBLISH/SUBSCRIBE; always on with `cluster`. */
  sharded?: boolean;
  /** Key and channel prefix (default "wshub"); no braces. */
  prefix?: string;
  /** Life of a presence entry not refreshed (ms, default 60 000): a dead node's clients vanish within it. */
  presenceTtl?: number;
  /** Life of a stream's position and epoch after its last use (ms, default 24 h; at least the history ttl). */
  metaTtl?: number;
  /** Bound on every command (ms, default 5000): past it, a temporary 100 internal error. */
  commandTimeout?: number;
  /** Bound on connecting, at start and per reconnection attempt (ms, default 5000). */
  connectTimeout?: number;
  /** Commands waiting for Redis at once (default 10 000); beyond, refused at once (100). */
  maxPending?: number;
  /** Most presence entries one presence or presence_stats read handles (default 10 000); beyond, 106. */
  maxPresenceRead?: number;
}

/** What the engine needs of a node-redis client or cluster client's lifecycle. */
interface Connection {
  readonly isReady: boolean;
  on(event: 'error' | 'ready', listener: (error?: unknown) => void): unknown;
  close(): Promise<unknown>;
  destroy(): unknown;
}

/** Subscribing and unsubscribing one pub/sub channel with the engine's listener (buffer mode). */
interface PubSub {
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
}

const MAX_DELAY_MS = 2_000;
/** Presence entries per refresh script call. */
const REFRESH_CHUNK = 300;

/** A command Redis did not answer within commandTimeout. */
class TimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/** The engine's failure, with what happened for logs ("timeout", the server's error). */
export class RedisEngineError extends Error {
  constructor(
    readonly operation: string,
    cause: unknown,
  ) {
    super(`redis ${operation} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'RedisEngineError';
  }
}

/** History, positions and presence in Redis; see the module comment. */
export class RedisEngine implements ChannelEngine {
  readonly kind = 'redis';
  readonly delivers = true;
  readonly presenceRefreshInterval: number;
  /** Receives errors for logging. */
  onError: (error: Error) => void = () => {};
  private readonly url: string;
  private readonly clustered: boolean;
  private readonly sharded: boolean;
  private readonly prefix: string;
  private readonly presenceTtl: number;
  private readonly metaTtl: number;
  private readonly commandTimeout: number;
  private readonly connectTimeout: number;
  private readonly maxPending: number;
  private readonly maxPresenceRead: number;
  private client: Connection | null = null;
  private subscriber: Connection | null = null;
  private pubsub: PubSub | null = null;
  private command: KeyedCommand = () => Promise.reject(new Error('redis engine not started'));
  private receiver: EngineReceiver | null = null;
  private starting = false;
  private closing = false;
  private down = false;
  private pending = 0;
  private readonly keys = new Map<string, ChannelKeys>();
  private readonly counters = {
    appends: 0,
    reads: 0,
    presence: 0,
    errors: 0,
    timeouts: 0,
    refused: 0,
    received: 0,
    malformed: 0,
    resubscribes: 0,
  };
  private readonly onMessage = (message: Buffer, channel: Buffer): void => this.message(message, channel);
  /** Sync markers on their way, by token. */
  private readonly syncs = new Map<string, () => void>();
  private readonly syncPrefix = randomBytes(6).toString('hex');
  private syncCount = 0;

  /** Checks the options; nothing connects before start(). */
  constructor(options: RedisEngineOptions) {
    this.url = options.url;
    this.clustered = options.cluster === true;
    this.sharded = this.clustered || options.sharded === true;
    this.prefix = checkKeyPrefix(options.prefix ?? 'wshub');
    this.presenceTtl = positive('presenceTtl', options.presenceTtl ?? 60_000);
    this.metaTtl = positive('metaTtl', options.metaTtl ?? 24 * 60 * 60 * 1000);
    this.commandTimeout = positive('commandTimeout', options.commandTimeout ?? 5_000);
    this.connectTimeout = positive('connectTimeout', options.connectTimeout ?? 5_000);
    this.maxPending = positive('maxPending', options.maxPending ?? 10_000);
    this.maxPresenceRead = positive('maxPresenceRead', options.maxPresenceRead ?? 10_000);
    this.presenceRefreshInterval = Math.max(1, Math.floor(this.presenceTtl / 3));
  }

  /** Whether commands can currently succeed. */
  get connected(): boolean {
    return this.client?.isReady === true && !this.down;
  }

  /** Connects the command and pub/sub connections; rejects (leaving nothing open) when Redis cannot be reached. */
  async start(receiver: EngineReceiver): Promise<void> {
    if (this.client !== null) throw new Error('RedisEngine already started');
    this.receiver = receiver;
    this.starting = true;
    const socket = {
      connectTimeout: this.connectTimeout,
      reconnectStrategy: (retries: number, cause: Error): number | Error =>
        this.starting || this.closing ? cause : backoffDelay(retries, MAX_DELAY_MS),
    };
    const options = { timeout: this.commandTimeout };
    try {
      if (this.clustered) {
        const cluster = createCluster({
          rootNodes: this.url.split(',').map((url) => ({ url })),
          defaults: { socket, disableOfflineQueue: true },
        });
        this.client = cluster;
        this.watch(this.client);
        await cluster.connect();
        this.subscriber = this.client;
        this.pubsub = {
          subscribe: (channel) => cluster.sSubscribe(channel, this.onMessage, true),
          unsubscribe: (channel) => cluster.sUnsubscribe(channel, this.onMessage, true),
        };
        this.command = (key, args) => cluster.sendCommand(key, false, args, options);
      } else {
        const client = createClient({ url: this.url, disableOfflineQueue: true, socket });
        this.client = client;
        this.watch(this.client);
        await client.connect();
        // The subscriber queues (un)subscribes issued during an outage and re-sends them on reconnection.
        const subscriber = client.duplicate({ disableOfflineQueue: false });
        this.subscriber = subscriber;
        this.watch(this.subscriber);
        await subscriber.connect();
        const sharded = this.sharded;
        this.pubsub = {
          subscribe: (channel) =>
            sharded
              ? subscriber.sSubscribe(channel, this.onMessage, true)
              : subscriber.subscribe(channel, this.onMessage, true),
          unsubscribe: (channel) =>
            sharded
              ? subscriber.sUnsubscribe(channel, this.onMessage, true)
              : subscriber.unsubscribe(channel, this.onMessage, true),
        };
        this.command = (_key, args) => client.sendCommand(args, options);
      }
    } catch (error) {
      this.destroy();
      throw new Error(
        `redis unreachable at ${this.url.split(',').map(redact).join(',')}: ${String((error as Error).message ?? error)}`,
        {
          cause: error,
        },
      );
    } finally {
      this.starting = false;
    }
  }

  private watch(client: Connection): void {
    client.on('error', (error: unknown) => {
      if (this.starting || this.closing) return;
      if (!this.down) {
        this.down = true;
        this.onError(new RedisEngineError('connection', error));
      }
    });
    if (client === this.subscriber || !this.clustered) {
      client.on('ready', () => {
        if (!this.down || this.closing || this.client?.isReady !== true) return;
        this.down = false;
        this.counters.resubscribes++;
        // Subscriptions were re-sent before 'ready'; what was published meanwhile never arrived.
        this.receiver?.resubscribed();
      });
    }
  }

  // ---- commands ------------------------------------------------------------------

  /**
   * Runs one bounded operation: at most maxPending outstanding at once (a
   * command Redis has not answered stays outstanding after its caller's
   * timeout), each answered within commandTimeout. Any failure is counted
   * and becomes a temporary 100 for the caller.
   */
  private run<T>(operation: string, work: () => Promise<T>): Promise<T> {
    if (this.pending >= this.maxPending) {
      this.counters.refused++;
      return Promise.reject(new ReplyErrorException(ReplyErrors.INTERNAL));
    }
    this.pending++;
    const done = work().finally(() => this.pending--);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(this.commandTimeout)), this.commandTimeout);
    });
    return Promise.race([done, deadline])
      .catch((error: unknown) => {
        if (error instanceof ReplyErrorException) throw error;
        this.counters.errors++;
        if (error instanceof TimeoutError || (error instanceof Error && error.name === 'TimeoutError'))
          this.counters.timeouts++;
        this.onError(new RedisEngineError(operation, error));
        throw new ReplyErrorException(ReplyErrors.INTERNAL);
      })
      .finally(() => clearTimeout(timer));
  }

  /** The keys of `channel` (kept while the channel is listened to, computed otherwise). */
  private keysOf(channel: string): ChannelKeys {
    return this.keys.get(channel) ?? channelKeys(this.prefix, channel);
  }

  // ---- history ------------------------------------------------------------------

  /** The publish script: append, bound, publish; resolves with the new position. */
  append(channel: string, pub: PublicationInput, size: number, ttl: number): Promise<StreamPosition> {
    return this.run('publish', async () => {
      const k = this.keysOf(channel);
      const reply = (await runScript(
        this.command,
        PUBLISH_SCRIPT,
        [k.stream, k.meta],
        [
          k.pubsub,
          size,
          ttl,
          Math.max(this.metaTtl, ttl),
          newEpoch(),
          pub.dataJson,
          pub.tail,
          pub.raw ?? '',
          this.sharded ? 's' : 'p',
        ],
      )) as [number, string];
      this.counters.appends++;
      return { offset: Number(reply[0]), epoch: String(reply[1]) };
    });
  }

  /** The stream's position (created, with a new epoch, for a channel never used). */
  async top(channel: string): Promise<StreamPosition> {
    return (await this.readStream(channel, '0', '0', 0, false, 0)).top;
  }

  private readStream(
    channel: string,
    from: string,
    to: string,
    count: number,
    reverse: boolean,
    ttl: number,
  ): Promise<{ publications: EnginePublication[]; top: StreamPosition }> {
    return this.run('read', async () => {
      const k = this.keysOf(channel);
      const reply = (await runScript(
        this.command,
        READ_SCRIPT,
        [k.stream, k.meta],
        [newEpoch(), Math.max(this.metaTtl, ttl), from, to, count, reverse ? '1' : '0', ttl],
      )) as unknown[];
      this.counters.reads++;
      const top = { epoch: String(reply[0]), offset: Number(reply[1]) };
      const publications: EnginePublication[] = [];
      for (let i = 2; i + 2 < reply.length; i += 3) {
        const offset = Number(reply[i]);
        publications.push({
          offset,
          json: publicationJson(String(reply[i + 1]), offset, String(reply[i + 2])),
        });
      }
      return { publications, top };
    });
  }

  /** See HistoryEngine.read. */
  async read(
    channel: string,
    query: { since?: StreamPosition; limit: number; reverse: boolean; ttl: number },
  ): Promise<{ publications: EnginePublication[]; top: StreamPosition }> {
    const { since, reverse } = query;
    if (since !== undefined && !(Number.isSafeInteger(since.offset) && since.offset >= 0))
      throw new ReplyErrorException(ReplyErrors.BAD_REQUEST);
    let from = '0';
    let to = '0';
    let limit = Math.max(0, Math.floor(query.limit));
    if (since !== undefined) {
      if (reverse) {
        if (since.offset <= 1) limit = 0;
        else to = String(since.offset - 1);
      } else from = String(since.offset + 1);
    }
    const r = await this.readStream(channel, from, to, limit, reverse, query.ttl);
    if (since !== undefined && since.epoch !== r.top.epoch)
      throw new ReplyErrorException(ReplyErrors.UNRECOVERABLE_POSITION);
    return r;
  }

  /** See HistoryEngine.recover: all or nothing. */
  async recover(
    channel: string,
    since: StreamPosition,
    max: number,
    ttl: number,
  ): Promise<{ publications: EnginePublication[]; top: StreamPosition; recovered: boolean }> {
    const count = max < 0 ? 0 : max + 1;
    const r = await this.readStream(channel, String(since.offset + 1), '0', count, false, ttl);
    const fail = { publications: [], top: r.top, recovered: false };
    const missing = r.top.offset - since.offset;
    if (since.epoch !== r.top.epoch || missing < 0) return fail;
    if (missing === 0) return { publications: [], top: r.top, recovered: true };
    if (max >= 0 && missing > max) return fail;
    const pubs = r.publications.slice(0, missing);
    if (pubs.length !== missing || pubs[0]!.offset !== since.offset + 1) return fail;
    return { publications: pubs, top: r.top, recovered: true };
  }

  /** Deletes the stream (history_remove); the meta key keeps the position and epoch. */
  remove(channel: string): Promise<void> {
    return this.run('remove', async () => {
      const k = this.keysOf(channel);
      await this.command(k.stream, ['DEL', k.stream]);
    });
  }

  // ---- presence -----------------------------------------------------------------

  private presenceKeys(channel: string): string[] {
    const k = this.keysOf(channel);
    return [k.presence, k.presenceUsers, k.presenceExpiry];
  }

  /** Adds (or refreshes) one entry. */
  async presenceAdd(channel: string, clientId: string, info: ClientInfo): Promise<boolean> {
    await this.presenceRefresh(channel, [[clientId, info]]);
    return true;
  }

  /** Refreshes entries of one channel, REFRESH_CHUNK per script call. */
  async presenceRefresh(channel: string, entries: Array<[string, ClientInfo]>): Promise<void> {
    const keys = this.presenceKeys(channel);
    for (let i = 0; i < entries.length; i += REFRESH_CHUNK) {
      const args: Array<string | number> = [this.presenceTtl];
      for (const [client, info] of entries.slice(i, i + REFRESH_CHUNK))
        args.push(client, info.user, JSON.stringify(info));
      await this.run('presence', async () => {
        await runScript(this.command, PRESENCE_ADD_SCRIPT, keys, args);
        this.counters.presence++;
      });
    }
  }

  /** Removes one entry. */
  presenceRemove(channel: string, clientId: string): Promise<void> {
    return this.run('presence', async () => {
      await runScript(this.command, PRESENCE_REMOVE_SCRIPT, this.presenceKeys(channel), [clientId]);
      this.counters.presence++;
    });
  }

  private async presenceRead(channel: string, mode: 'get' | 'stats'): Promise<unknown[]> {
    const reply = await this.run('presence', async () => {
      const r = (await runScript(this.command, PRESENCE_READ_SCRIPT, this.presenceKeys(channel), [
        this.maxPresenceRead,
        mode,
      ])) as unknown[];
      this.counters.presence++;
      return r;
    });
    if (reply[0] === -1) throw new ReplyErrorException(ReplyErrors.LIMIT_EXCEEDED);
    return reply;
  }

  /** Live entries (expired ones removed first); 106 beyond maxPresenceRead. */
  async presenceGet(channel: string): Promise<Record<string, ClientInfo>> {
    const reply = await this.presenceRead(channel, 'get');
    const out: Record<string, ClientInfo> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) {
      try {
        const info = JSON.parse(String(reply[i + 1])) as ClientInfo;
        // defineProperty: a client id like "__proto__" stays a plain key.
        Object.defineProperty(out, String(reply[i]), { value: info, enumerable: true, writable: true });
      } catch {
        this.counters.malformed++;
      }
    }
    return out;
  }

  /** Live clients and distinct users; 106 beyond maxPresenceRead. */
  async presenceStats(channel: string): Promise<{ numClients: number; numUsers: number }> {
    const reply = await this.presenceRead(channel, 'stats');
    return { numClients: Number(reply[0]), numUsers: Number(reply[1]) };
  }

  // ---- pub/sub -------------------------------------------------------------------

  /** Subscribes to the channel's pub/sub channel; resolves once Redis confirmed it. */
  async listen(channel: string): Promise<void> {
    const pubsub = this.pubsub;
    if (pubsub === null) throw new Error('RedisEngine not started');
    const k = channelKeys(this.prefix, channel);
    this.keys.set(channel, k);
    try {
      await pubsub.subscribe(k.pubsub);
    } catch (error) {
      this.counters.errors++;
      this.onError(new RedisEngineError('subscribe', error));
      throw new ReplyErrorException(ReplyErrors.INTERNAL);
    }
  }

  /** Unsubscribes from the channel's pub/sub channel. */
  unlisten(channel: string): void {
    const pubsub = this.pubsub;
    const k = this.keys.get(channel);
    if (pubsub === null || k === undefined) return;
    this.keys.delete(channel);
    pubsub.unsubscribe(k.pubsub).catch((error: unknown) => {
      this.counters.errors++;
      this.onError(new RedisEngineError('unsubscribe', error));
    });
  }

  /** PUBLISH (SPUBLISH) of a join or leave on the channel's pub/sub channel. */
  publishJoinLeave(channel: string, kind: 'join' | 'leave', infoJson: string): Promise<void> {
    return this.run('join_leave', async () => {
      const k = this.keysOf(channel);
      await this.command(k.pubsub, [
        this.sharded ? 'SPUBLISH' : 'PUBLISH',
        k.pubsub,
        encodeJoinLeave(kind, infoJson),
      ]);
    });
  }

  /** See ChannelEngine.sync: a marker through the channel's pub/sub, bounded by the command timeout. */
  sync(channel: string): Promise<void> {
    const token = `${this.syncPrefix}.${++this.syncCount}`;
    let arrived!: () => void;
    const back = new Promise<void>((resolve) => (arrived = resolve));
    this.syncs.set(token, arrived);
    return this.run('sync', async () => {
      const k = this.keysOf(channel);
      await this.command(k.pubsub, [this.sharded ? 'SPUBLISH' : 'PUBLISH', k.pubsub, encodeSync(token)]);
      await back;
    }).finally(() => this.syncs.delete(token));
  }

  private message(message: Buffer, pubsub: Buffer): void {
    const channel = channelOfPubsub(this.prefix, pubsub.toString());
    const decoded = channel === null ? null : decodeStateMessage(message);
    if (channel === null || decoded === null) {
      this.counters.malformed++;
      return;
    }
    this.counters.received++;
    if (decoded.kind === 'pub')
      this.receiver?.publication(
        channel,
        { offset: decoded.offset, epoch: decoded.epoch },
        { dataJson: decoded.dataJson, tail: decoded.tail, raw: decoded.raw ?? undefined },
      );
    // Another node's marker is nobody's business here.
    else if (decoded.kind === 'sync') this.syncs.get(decoded.token)?.();
    else this.receiver?.joinLeave(channel, decoded.kind, decoded.infoJson);
  }

  // ---- the rest ------------------------------------------------------------------

  /** Counters, named after the engine. */
  metrics(): EngineMetrics {
    const c = this.counters;
    return {
      redis_state_connected: this.connected ? 1 : 0,
      redis_state_history_appends: c.appends,
      redis_state_history_reads: c.reads,
      redis_state_presence_ops: c.presence,
      redis_state_errors: c.errors,
      redis_state_timeouts: c.timeouts,
      redis_state_refused: c.refused,
      redis_state_pending: this.pending,
      redis_state_received: c.received,
      redis_state_malformed: c.malformed,
      redis_state_resubscribes: c.resubscribes,
      redis_state_listened: this.keys.size,
    };
  }

  /** Closes both connections within `timeoutMs`, then cuts them. Idempotent. */
  async close(timeoutMs: number): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const clients = [...new Set([this.client, this.subscriber])].filter((c): c is Connection => c !== null);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(clients.map((c) => c.close())),
      new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
    this.destroy();
    this.receiver = null;
  }

  private destroy(): void {
    for (const client of new Set([this.client, this.subscriber])) {
      try {
        client?.destroy();
      } catch {
        // Already closed.
      }
    }
  }
}

/** A new random epoch: 6 random bytes as 8 base64url characters (never a space). */
function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > 2 ** 31 - 1)
    throw new RangeError(`RedisEngine ${name} must be a whole number from 1 to 2^31-1, got ${String(value)}`);
  return value;
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(invalid URL)';
  }
}
