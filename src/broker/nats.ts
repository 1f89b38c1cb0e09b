/**
 * The NATS transport: one connection (`@nats-io/transport-node` 3.x, the
 * maintained nats.js client), one subject per channel.
 *
 * Channel → subject mapping. Channels look like `wshub:room:<room>` and room
 * names may contain `.`, which NATS treats as a token separator, and any
 * channel could in principle contain `*` or `>` (wildcards) or `$` (system
 * subjects). Every byte outside `[A-Za-z0-9_:-]` is therefore written as
 * `%XX` (upper-case hex of its UTF-8 byte), `%` included, so a channel is
 * always one literal token and the mapping is reversible:
 *
 *   wshub:room:a.b   → wshub:room:a%2Eb
 *   wshub:room:a.*   → wshub:room:a%2E%2A
 *
 * Delivery guarantees. NATS core is at-most-once. A publish resolves once the
 * server has answered a PING sent after it (one PING per batch of publishes
 * made in the same turn), so the Cluster's in-flight bound also bounds what
 * sits in socket buffers when the server is slow.
 *
 * Offline buffering. While disconnected, the client appends every publish to
 * an outbound buffer that has no size limit, and empties it (dropping its
 * contents) at each reconnection attempt; the PINGs waiting behind it are
 * rejected then. So publish rejects at once while the connection is down
 * (the Cluster counts the loss) and never hands the client anything to
 * buffer. A publish caught in the short window between the socket closing
 * and the `disconnect` status arriving still fails, because its PING is
 * rejected when the buffer is emptied: every lost message is counted.
 *
 * Reconnection is the client's own (forever, a fixed wait plus jitter between
 * attempts); it re-sends every subscription by itself after a reconnect.
 */
import { connect, type NatsConnection, type Status, type Subscription } from '@nats-io/transport-node';
import type { Transport, TransportEvents, TransportListener } from './transport.ts';

export interface NatsTransportOptions {
  /** Server URL(s), e.g. `nats://127.0.0.1:4222`. */
  servers: string | string[];
  /** Wait between reconnection attempts (ms, default 1000); a random ≤ 100 ms is added. */
  reconnectMaxDelayMs?: number;
  /** How long the first connection may take before `start()` rejects (ms, default 5000). */
  connectTimeoutMs?: number;
  /** Client-initiated PING period used to notice a dead server (ms, default 10,000). */
  pingIntervalMs?: number;
  /** Connection name shown in the server's monitoring pages. */
  name?: string;
}

/** How long close() lets a drain take before closing outright. */
const CLOSE_TIMEOUT_MS = 2_000;

const SAFE = /^[A-Za-z0-9_:-]$/;

/** Maps a channel to the single literal NATS subject token that carries it (see the file comment). */
export function channelToSubject(channel: string): string {
  let out = '';
  for (const char of channel) {
    if (SAFE.test(char)) {
      out += char;
      continue;
    }
    for (const byte of Buffer.from(char, 'utf8'))
      out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of {@link channelToSubject}; throws a RangeError for a subject it could not have produced. */
export function subjectToChannel(subject: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < subject.length; i++) {
    const char = subject[i]!;
    if (char === '%') {
      const hex = subject.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) throw new RangeError(`bad escape in subject ${subject}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (SAFE.test(char)) {
      bytes.push(char.charCodeAt(0));
    } else {
      throw new RangeError(`unexpected character in subject ${subject}`);
    }
  }
  const decoded = Buffer.from(bytes);
  const text = decoded.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(decoded)) throw new RangeError(`invalid UTF-8 in subject ${subject}`);
  return text;
}

/** The server address or error text a status notification carries. */
function detail(status: Status): string {
  if ('server' in status) return status.server;
  if ('error' in status) return status.error.message;
  return status.type;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

/** A Transport over one NATS connection; see the file comment for the guarantees. */
export class NatsTransport implements Transport {
  readonly kind = 'nats';
  private readonly options: NatsTransportOptions;
  private conn: NatsConnection | null = null;
  private listener: TransportListener | null = null;
  private events: TransportEvents = {};
  private readonly subscriptions = new Map<string, Subscription>();
  private up = false;
  private closing = false;
  /** Publishes waiting for the PING that will confirm them. */
  private unconfirmed: Waiter[] = [];
  private confirmScheduled = false;

  /** `options.servers` is required; nothing connects until `start()`. */
  constructor(options: NatsTransportOptions) {
    this.options = options;
  }

  get connected(): boolean {
    return this.up && this.conn !== null && !this.conn.isClosed();
  }

  /** Connects; rejects with an Error naming the servers when NATS cannot be reached. */
  async start(listener: TransportListener, events: TransportEvents): Promise<void> {
    if (this.conn !== null) throw new Error('NatsTransport already started');
    const wait = Math.max(10, this.options.reconnectMaxDelayMs ?? 1_000);
    let conn: NatsConnection;
    try {
      conn = await connect({
        servers: this.options.servers,
        name: this.options.name ?? 'wshub',
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: wait,
        reconnectJitter: Math.min(100, wait),
        waitOnFirstConnect: false,
        timeout: this.options.connectTimeoutMs ?? 5_000,
        pingInterval: this.options.pingIntervalMs ?? 10_000,
        maxPingOut: 2,
      });
    } catch (error) {
      const servers = [this.options.servers].flat().join(', ');
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`NATS unreachable at ${servers}: ${reason}`, { cause: error });
    }
    this.conn = conn;
    this.listener = listener;
    this.events = events;
    this.up = true;
    void this.watch(conn);
  }

  /** Turns the client's status notifications into `down` / `up` / `error`. */
  private async watch(conn: NatsConnection): Promise<void> {
    for await (const status of conn.status()) {
      if (status.type === 'disconnect') {
        if (!this.up) continue;
        this.up = false;
        this.events.down?.(new Error(`NATS connection lost (${detail(status)})`));
      } else if (status.type === 'reconnect') {
        if (this.up) continue;
        this.up = true;
        this.events.up?.();
      } else if (status.type === 'error') {
        this.events.error?.(new Error(`NATS error: ${detail(status)}`, { cause: status.error }));
      }
    }
    // The iterator ends when the connection is closed for good.
    if (!this.closing && this.up) {
      this.up = false;
      this.events.down?.(new Error('NATS connection closed'));
    }
  }

  /** One SUB per new channel, all sent in one write and confirmed by one PING. */
  async subscribe(channels: string[]): Promise<void> {
    const conn = this.requireConn();
    for (const channel of channels) {
      if (this.subscriptions.has(channel)) continue;
      const sub = conn.subscribe(channelToSubject(channel), {
        callback: (error, msg) => {
          if (error !== null) this.events.error?.(error);
          else this.listener?.(channel, Buffer.from(msg.data));
        },
      });
      this.subscriptions.set(channel, sub);
    }
    await this.confirm(conn);
  }

  /** One UNSUB per subscribed channel, confirmed by one PING. */
  async unsubscribe(channels: string[]): Promise<void> {
    const conn = this.requireConn();
    for (const channel of channels) {
      const sub = this.subscriptions.get(channel);
      if (sub === undefined) continue;
      this.subscriptions.delete(channel);
      sub.unsubscribe();
    }
    await this.confirm(conn);
  }

  /**
   * Waits for the server to have processed what was written so far. While
   * disconnected there is nothing to wait for: the client keeps the subscription
   * list and sends it as a whole after reconnecting.
   */
  private async confirm(conn: NatsConnection): Promise<void> {
    if (!this.connected) return;
    try {
      await conn.flush();
    } catch (error) {
      if (this.connected) throw error;
    }
  }

  /** Publishes; rejects at once while disconnected, else resolves when the server confirmed it. */
  publish(channel: string, payload: Buffer): Promise<void> {
    const conn = this.conn;
    if (conn === null || !this.connected || this.closing)
      return Promise.reject(new Error('NATS not connected'));
    try {
      conn.publish(channelToSubject(channel), payload);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return new Promise<void>((resolve, reject) => {
      this.unconfirmed.push({ resolve, reject });
      if (this.confirmScheduled) return;
      this.confirmScheduled = true;
      // Every publish made in this turn is confirmed by the same PING.
      queueMicrotask(() => {
        this.confirmScheduled = false;
        const batch = this.unconfirmed;
        this.unconfirmed = [];
        conn.flush().then(
          () => batch.forEach((w) => w.resolve()),
          (error: unknown) => {
            const e = error instanceof Error ? error : new Error(String(error));
            batch.forEach((w) => w.reject(e));
          },
        );
      });
    });
  }

  private requireConn(): NatsConnection {
    if (this.conn === null || this.conn.isClosed()) throw new Error('NatsTransport is not started');
    return this.conn;
  }

  /**
   * Drains when connected (pending publishes go out first) for at most 2 s
   * (or `timeoutMs`, if shorter), else closes at once.
   */
  async close(timeoutMs?: number): Promise<void> {
    const conn = this.conn;
    if (conn === null || this.closing) return;
    this.closing = true;
    this.listener = null;
    this.subscriptions.clear();
    if (this.up && !conn.isClosed()) {
      // drain() never settles if the server vanishes in the middle of it.
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>(
        (resolve) => (timer = setTimeout(resolve, Math.min(CLOSE_TIMEOUT_MS, timeoutMs ?? Infinity))),
      );
      await Promise.race([conn.drain().catch(() => {}), bound]);
      clearTimeout(timer);
    }
    if (!conn.isClosed()) await conn.close();
    await conn.closed();
    this.up = false;
  }
}
