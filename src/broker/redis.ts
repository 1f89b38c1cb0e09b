/**
 * Redis pub/sub as a Transport (node-redis).
 *
 * Two connections: one publishes and a duplicate subscribes, so subscription
 * changes never queue behind a burst of publishes, and the subscriber's
 * pub/sub state is independent of the publisher's failures.
 * Payloads are Buffers both ways (the subscriber listens in buffer mode),
 * so binary envelopes survive untouched.
 *
 * - `sharded: true` uses SSUBSCRIBE/SPUBLISH (Redis >= 7), which Redis
 *   Cluster routes to the shard owning the channel instead of to every node.
 * - A batch of channels is one SUBSCRIBE (or UNSUBSCRIBE) command.
 * - After a connection drops, node-redis reconnects with the bounded
 *   exponential backoff below and re-subscribes every channel before it
 *   reports ready; `down` and `up` bracket the outage.
 * - The publisher has no offline queue: while disconnected a publish
 *   rejects at once, so the Cluster counts it as lost instead of buffering
 *   without bound.
 * - `start()` does not retry: an unreachable Redis is a clear error, and so
 *   is `sharded: true` against a Redis Cluster node (one connection cannot
 *   reach every shard: use RedisClusterTransport).
 */
import { createClient } from 'redis';
import type { Transport, TransportEvents, TransportListener } from './transport.ts';

export interface RedisTransportOptions {
  /** `redis://[user:password@]host[:port][/db]` or `rediss://…` for TLS. */
  url: string;
  /** Sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis >= 7), for Redis Cluster. */
  sharded?: boolean;
  /** Upper bound of the reconnection backoff (ms, default 2000). */
  reconnectMaxDelayMs?: number;
  /** Bound on establishing a connection, at start and on each reconnection attempt (ms, default 5000). */
  connectTimeoutMs?: number;
  /** How long `close()` waits for pending replies before cutting the connections (ms, default 1000). */
  closeTimeoutMs?: number;
}

type RedisClient = ReturnType<typeof createClient>;

/** First delay of the reconnection backoff; it doubles per failed attempt up to the maximum. */
export const BASE_DELAY_MS = 50;

/** Delay before reconnection attempt `retries` (0-based): BASE_DELAY_MS doubling per attempt, at most `maxDelay`. */
export function backoffDelay(retries: number, maxDelay: number): number {
  return Math.min(BASE_DELAY_MS * 2 ** Math.min(retries, 20), maxDelay);
}

/** The URL without its password, for error messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(invalid URL)';
  }
}

/** `value` if it is an Error, else an Error carrying its text. */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/** The innermost cause's message (node-redis wraps the socket error when it gives up). */
export function rootMessage(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 5; depth++) {
    const next = (current as { originalError?: unknown; cause?: unknown } | null)?.originalError;
    if (next === undefined || next === null) break;
    current = next;
  }
  const message = asError(current).message;
  const code = (current as { code?: unknown } | null)?.code;
  return typeof code === 'string' && !message.includes(code) ? `${code} ${message}` : message;
}

/** Whether the server runs in cluster mode (`INFO cluster` says cluster_enabled:1). */
async function isClusterNode(client: RedisClient): Promise<boolean> {
  return /^cluster_enabled:1\r?$/m.test(await client.info('cluster'));
}

/**
 * A Transport over Redis pub/sub. `new RedisTransport({ url })`, then hand it
 * to a Cluster; the Cluster calls `start`, `subscribe`, `publish` and `close`.
 */
export class RedisTransport implements Transport {
  readonly kind = 'redis';
  private readonly url: string;
  private readonly sharded: boolean;
  private readonly maxDelay: number;
  private readonly connectTimeout: number;
  private readonly closeTimeout: number;
  private publisher: RedisClient | null = null;
  private subscriber: RedisClient | null = null;
  private listener: TransportListener | null = null;
  private events: TransportEvents = {};
  /** True until the first connection of both clients succeeded: no retries then. */
  private starting = false;
  private isDown = false;
  private closing = false;
  /** One function for every channel, so UNSUBSCRIBE without a listener drops them all. */
  private readonly onMessage = (message: Buffer, channel: Buffer): void => {
    this.listener?.(channel.toString(), message);
  };

  /** Takes the connection settings; nothing connects before `start()`. */
  constructor(options: RedisTransportOptions) {
    this.url = options.url;
    this.sharded = options.sharded ?? false;
    this.maxDelay = Math.max(BASE_DELAY_MS, options.reconnectMaxDelayMs ?? 2_000);
    this.connectTimeout = options.connectTimeoutMs ?? 5_000;
    this.closeTimeout = options.closeTimeoutMs ?? 1_000;
  }

  /** Whether both connections are ready (publishes can succeed and deliveries arrive). */
  get connected(): boolean {
    return this.publisher?.isReady === true && this.subscriber?.isReady === true;
  }

  /**
   * Connects the publisher and the subscriber. Rejects (and leaves nothing
   * open) when Redis cannot be reached within the connect timeout.
   */
  async start(listener: TransportListener, events: TransportEvents): Promise<void> {
    if (this.publisher !== null) throw new Error('RedisTransport already started');
    this.listener = listener;
    this.events = events;
    this.starting = true;
    let wrongMode: Error | null = null;
    const publisher: RedisClient = createClient({
      url: this.url,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: this.connectTimeout,
        reconnectStrategy: (retries, cause) => this.retryDelay(retries, cause),
      },
    });
    this.publisher = publisher;
    this.watch(publisher);
    try {
      await publisher.connect();
      if (this.sharded && (await isClusterNode(publisher))) {
        wrongMode = new Error(
          `redis at ${redactUrl(this.url)} is a Redis Cluster node: sharded pub/sub on a cluster needs the cluster client (--broker-cluster, or RedisClusterTransport)`,
        );
        throw wrongMode;
      }
      // The subscriber keeps an offline queue: a (un)subscribe issued during
      // an outage is sent once the connection is back.
      const subscriber = publisher.duplicate({ disableOfflineQueue: false });
      this.subscriber = subscriber;
      this.watch(subscriber);
      await subscriber.connect();
    } catch (error) {
      this.destroy();
      if (error === wrongMode) throw error;
      throw new Error(`redis unreachable at ${redactUrl(this.url)}: ${rootMessage(error)}`, {
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

  private watch(client: RedisClient): void {
    // node-redis emits 'error' for every failed socket and reconnection
    // attempt; only the transition to "down" is worth reporting.
    client.on('error', (error: unknown) => {
      if (this.starting || this.closing) return;
      if (this.connected) {
        this.events.error?.(asError(error));
        return;
      }
      if (this.isDown) return;
      this.isDown = true;
      this.events.down?.(asError(error));
    });
    client.on('ready', () => {
      // Subscriptions were re-sent before 'ready' (node-redis does that in
      // its connection initiator), so once both are ready the outage is over.
      if (this.isDown && !this.closing && this.connected) {
        this.isDown = false;
        this.events.up?.();
      }
    });
  }

  /** Subscribes to every channel of the batch with one SUBSCRIBE (SSUBSCRIBE when sharded). */
  async subscribe(channels: string[]): Promise<void> {
    const subscriber = this.subscriber;
    if (subscriber === null) throw new Error('RedisTransport not started');
    if (channels.length === 0) return;
    if (this.sharded) await subscriber.sSubscribe(channels, this.onMessage, true);
    else await subscriber.subscribe(channels, this.onMessage, true);
  }

  /** Unsubscribes every channel of the batch with one UNSUBSCRIBE (SUNSUBSCRIBE when sharded). */
  async unsubscribe(channels: string[]): Promise<void> {
    const subscriber = this.subscriber;
    if (subscriber === null) throw new Error('RedisTransport not started');
    if (channels.length === 0) return;
    if (this.sharded) await subscriber.sUnsubscribe(channels);
    else await subscriber.unsubscribe(channels);
  }

  /** PUBLISH (SPUBLISH when sharded); rejects at once while the publisher is disconnected. */
  async publish(channel: string, payload: Buffer): Promise<void> {
    const publisher = this.publisher;
    if (publisher === null) throw new Error('RedisTransport not started');
    if (this.sharded) await publisher.sPublish(channel, payload);
    else await publisher.publish(channel, payload);
  }

  /**
   * Closes both connections: waits up to `closeTimeoutMs` (or `timeoutMs`,
   * if shorter) for pending replies, then cuts whatever is left. Idempotent.
   */
  async close(timeoutMs?: number): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const clients = [this.publisher, this.subscriber].filter((c): c is RedisClient => c !== null);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.min(this.closeTimeout, timeoutMs ?? Infinity));
    });
    await Promise.race([
      Promise.allSettled(clients.map((c) => (c.isReady ? c.close() : Promise.resolve(c.destroy())))),
      deadline,
    ]);
    clearTimeout(timer);
    this.destroy();
    this.listener = null;
  }

  /** Tears down both clients at once (idempotent in node-redis). */
  private destroy(): void {
    for (const client of [this.publisher, this.subscriber]) {
      try {
        client?.destroy();
      } catch {
        // Already closed: nothing left to tear down.
      }
    }
  }
}
