/**
 * Redis Cluster sharded pub/sub as a Transport (node-redis's cluster client).
 *
 * - Seed nodes: one or more `redis://` URLs of cluster members; the client
 *   asks one of them for the slot map and connects to every master.
 * - Always sharded: SPUBLISH goes to the master owning the channel's slot,
 *   and each master only carries the channels it owns. (Classic PUBLISH on a
 *   cluster is copied to every node over the cluster bus, which is what
 *   sharding avoids.)
 * - SSUBSCRIBE and SUNSUBSCRIBE need every channel of one command in one
 *   slot, so a batch is split per slot: one command per slot group, sent to
 *   the owning master's pub/sub connection.
 * - Two cluster clients, like the single-node transport: a publisher (no
 *   offline queue: a publish to an unreachable master rejects at once and is
 *   counted as lost) and a subscriber (offline queue: a subscription change
 *   made during an outage is sent once the master is back). The subscriber
 *   opens only pub/sub connections, one per master with subscriptions, so
 *   the cluster sees at most two connections per master from a node.
 * - MOVED/ASK replies to SPUBLISH are followed by the client (slot map
 *   refreshed, command retried). When a slot moves, Redis unsubscribes its
 *   channels on the old owner and the client subscribes them again on the
 *   new one; messages published in between are missed and show up as gaps.
 * - When a master's connection drops, `down` is reported; once every
 *   master's connections are ready again (their channels re-subscribed by
 *   the client), `up`.
 * - `start()` does not retry: an unreachable cluster is a clear error.
 */
import { createCluster, type RedisClusterOptions } from 'redis';
import type { Transport, TransportEvents, TransportListener } from './transport.ts';
import { groupBySlot } from './redis-slot.ts';
import { BASE_DELAY_MS, asError, backoffDelay, redactUrl, rootMessage } from './redis.ts';

export interface RedisClusterTransportOptions {
  /**
   * Seed nodes: `redis://[user:password@]host:port` (or `rediss://` for TLS)
   * of one or more cluster members. Credentials and TLS of the first URL
   * apply to every node.
   */
  rootNodes: string[];
  /** Upper bound of each node's reconnection backoff (ms, default 2000). */
  reconnectMaxDelayMs?: number;
  /** Bound on establishing a connection, at start and on each reconnection attempt (ms, default 5000). */
  connectTimeoutMs?: number;
  /** How long `close()` waits for pending replies before cutting the connections (ms, default 1000). */
  closeTimeoutMs?: number;
}

const newCluster = (options: RedisClusterOptions) => createCluster(options);
type ClusterClient = ReturnType<typeof newCluster>;

/** What the transport reads of a master as node-redis's cluster client keeps it. */
interface NodeState {
  client?: NodeClient | undefined;
  pubSub?: { client: NodeClient } | undefined;
}

interface NodeClient {
  isReady: boolean;
  destroy(): void;
}

/** Every connection a cluster client holds now (one per master, plus pub/sub ones). */
function nodeClients(cluster: ClusterClient): NodeClient[] {
  const out: NodeClient[] = [];
  for (const node of cluster.masters as NodeState[]) {
    if (node.client !== undefined) out.push(node.client);
    if (node.pubSub !== undefined) out.push(node.pubSub.client);
  }
  const pubSubNode = cluster.pubSubNode as { client: NodeClient } | undefined;
  if (pubSubNode !== undefined) out.push(pubSubNode.client);
  return out;
}

/**
 * A Transport over Redis Cluster sharded pub/sub.
 * `new RedisClusterTransport({ rootNodes: ['redis://10.0.0.1:6379'] })`,
 * then hand it to a Cluster.
 */
export class RedisClusterTransport implements Transport {
  readonly kind = 'redis-cluster';
  private readonly rootNodes: string[];
  private readonly maxDelay: number;
  private readonly connectTimeout: number;
  private readonly closeTimeout: number;
  private publisher: ClusterClient | null = null;
  private subscriber: ClusterClient | null = null;
  private listener: TransportListener | null = null;
  private events: TransportEvents = {};
  private starting = false;
  /** The last error reported while starting: the cause behind "all root nodes unavailable". */
  private startError: unknown = null;
  private isDown = false;
  private closing = false;
  /** One function for every channel, so SUNSUBSCRIBE without a listener drops them all. */
  private readonly onMessage = (message: Buffer, channel: Buffer): void => {
    this.listener?.(channel.toString(), message);
  };

  /** Takes the connection settings; nothing connects before `start()`. */
  constructor(options: RedisClusterTransportOptions) {
    if (options.rootNodes.length === 0) throw new RangeError('rootNodes must name at least one node');
    this.rootNodes = [...options.rootNodes];
    this.maxDelay = Math.max(BASE_DELAY_MS, options.reconnectMaxDelayMs ?? 2_000);
    this.connectTimeout = options.connectTimeoutMs ?? 5_000;
    this.closeTimeout = options.closeTimeoutMs ?? 1_000;
  }

  /** Whether every master's connections are ready (publishes to any slot can succeed). */
  get connected(): boolean {
    const publisher = this.publisher;
    const subscriber = this.subscriber;
    if (publisher?.isReady !== true || subscriber?.isReady !== true) return false;
    const published = publisher.masters as NodeState[];
    const subscribed = subscriber.masters as NodeState[];
    return (
      published.every((node) => node.client?.isReady === true) &&
      subscribed.every((node) => node.pubSub === undefined || node.pubSub.client.isReady)
    );
  }

  /** Open connections to the cluster: the publisher's, plus one pub/sub connection per master with subscriptions. */
  get connections(): number {
    const published = (this.publisher?.masters ?? []) as NodeState[];
    const subscribed = (this.subscriber?.masters ?? []) as NodeState[];
    return (
      published.filter((node) => node.client !== undefined).length +
      subscribed.filter((node) => node.pubSub !== undefined).length
    );
  }

  private options(offlineQueue: boolean): RedisClusterOptions {
    const first = new URL(this.rootNodes[0]!);
    return {
      rootNodes: this.rootNodes.map((url) => ({ url })),
      // The subscriber needs no command connections: only its pub/sub ones.
      minimizeConnections: offlineQueue,
      defaults: {
        ...(first.username !== '' ? { username: decodeURIComponent(first.username) } : {}),
        ...(first.password !== '' ? { password: decodeURIComponent(first.password) } : {}),
        disableOfflineQueue: !offlineQueue,
        socket: {
          ...(first.protocol === 'rediss:' ? { tls: true as const } : {}),
          connectTimeout: this.connectTimeout,
          reconnectStrategy: (retries: number, cause: Error) => this.retryDelay(retries, cause),
        },
      },
    };
  }

  /**
   * Discovers the cluster and connects to every master. Rejects (and leaves
   * nothing open) when no seed node answers within the connect timeout.
   */
  async start(listener: TransportListener, events: TransportEvents): Promise<void> {
    if (this.publisher !== null) throw new Error('RedisClusterTransport already started');
    this.listener = listener;
    this.events = events;
    this.starting = true;
    try {
      for (const url of this.rootNodes) {
        const parsed = new URL(url);
        if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
          throw new Error(`not a redis:// URL: ${redactUrl(url)}`);
        }
      }
      const publisher = newCluster(this.options(false));
      this.publisher = publisher;
      this.watch(publisher);
      await publisher.connect();
      const subscriber = newCluster(this.options(true));
      this.subscriber = subscriber;
      this.watch(subscriber);
      await subscriber.connect();
    } catch (error) {
      this.destroy();
      const where = this.rootNodes.map(redactUrl).join(',');
      const detail = this.startError === null ? '' : ` (${rootMessage(this.startError)})`;
      throw new Error(`redis cluster unreachable at ${where}: ${rootMessage(error)}${detail}`, {
        cause: error,
      });
    } finally {
      this.starting = false;
    }
  }

  /** Delay before reconnection attempt `retries` (0-based); an Error ends the attempts during start. */
  private retryDelay(retries: number, cause: Error): number | Error {
    if (this.starting || this.closing) return cause;
    return backoffDelay(retries, this.maxDelay);
  }

  private watch(client: ClusterClient): void {
    const failed = (error: unknown): void => {
      if (this.starting) this.startError = error;
      if (this.starting || this.closing) return;
      if (this.connected) {
        this.events.error?.(asError(error));
        return;
      }
      if (this.isDown) return;
      this.isDown = true;
      this.events.down?.(asError(error));
    };
    // Errors of one node's connection (each failed reconnection attempt too),
    // and of the cluster client itself (a failed slot map refresh).
    client.on('node-error', failed);
    client.on('error', failed);
    client.on('sharded-channel-moved-error', failed);
    client.on('node-ready', () => {
      // A node's pub/sub connection re-sends its subscriptions before it is
      // ready, so once every connection is ready the outage is over.
      if (this.isDown && !this.closing && this.connected) {
        this.isDown = false;
        this.events.up?.();
      }
    });
  }

  /** SSUBSCRIBE the batch: one command per hash slot, each sent to the slot's master. */
  async subscribe(channels: string[]): Promise<void> {
    const subscriber = this.subscriber;
    if (subscriber === null) throw new Error('RedisClusterTransport not started');
    await Promise.all(
      [...groupBySlot(channels).values()].map((group) => subscriber.sSubscribe(group, this.onMessage, true)),
    );
  }

  /** SUNSUBSCRIBE the batch: one command per hash slot. */
  async unsubscribe(channels: string[]): Promise<void> {
    const subscriber = this.subscriber;
    if (subscriber === null) throw new Error('RedisClusterTransport not started');
    await Promise.all([...groupBySlot(channels).values()].map((group) => subscriber.sUnsubscribe(group)));
  }

  /** SPUBLISH to the master owning the channel's slot; rejects at once while that master is unreachable. */
  async publish(channel: string, payload: Buffer): Promise<void> {
    const publisher = this.publisher;
    if (publisher === null) throw new Error('RedisClusterTransport not started');
    await publisher.sPublish(channel, payload);
  }

  /**
   * Closes both cluster clients: waits up to `closeTimeoutMs` (or
   * `timeoutMs`, if shorter) for pending replies, then cuts whatever is
   * left. Idempotent.
   */
  async close(timeoutMs?: number): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const clients = [this.publisher, this.subscriber].filter((c): c is ClusterClient => c !== null);
    // The cluster client forgets its node connections as soon as close()
    // starts, so a connection still waiting for a stalled master could no
    // longer be cut afterwards: remember them first.
    const connections = clients.flatMap(nodeClients);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.min(this.closeTimeout, timeoutMs ?? Infinity));
    });
    await Promise.race([Promise.allSettled(clients.map((c) => c.close())), deadline]);
    clearTimeout(timer);
    this.destroy(connections);
    this.listener = null;
  }

  private destroy(connections: NodeClient[] = []): void {
    for (const client of [this.publisher, this.subscriber, ...connections]) {
      try {
        client?.destroy();
      } catch {
        // Already closed: nothing left to tear down.
      }
    }
  }
}
