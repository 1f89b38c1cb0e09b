/**
 * A transport is the only part of scale-out that differs between Redis,
 * NATS and in-process buses: named channels carrying opaque bytes. Everything
 * else (envelopes, interest, presence, loss accounting) lives in Cluster.
 */

/** Receives every message on a subscribed channel. */
export type TransportListener = (channel: string, payload: Buffer) => void;

export interface TransportEvents {
  /** The connection came back after `down` (not called for the first connect). */
  up?(): void;
  /** The connection is down; publishes fail until `up`. */
  down?(error?: Error): void;
  /** A non-fatal error worth counting and logging. */
  error?(error: Error): void;
}

export interface Transport {
  /** Short name for logs and metrics, e.g. "redis". */
  readonly kind: string;
  /** Connects; rejects when the messaging system cannot be reached. */
  start(listener: TransportListener, events: TransportEvents): Promise<void>;
  /** Adds channels to the subscription (one round trip for the batch where the system allows). */
  subscribe(channels: string[]): Promise<void>;
  unsubscribe(channels: string[]): Promise<void>;
  /** Publishes; rejects when the message could not be handed to the messaging system. */
  publish(channel: string, payload: Buffer): Promise<void>;
  /** Whether publishes can currently succeed. */
  readonly connected: boolean;
  /**
   * Closes in order (pending publishes go out first) for at most `timeoutMs`
   * when given, then cuts the connections: a stalled broker must not hold
   * up shutdown.
   */
  close(timeoutMs?: number): Promise<void>;
}
