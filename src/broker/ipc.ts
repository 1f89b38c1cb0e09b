/**
 * The built-in inter-process transport of `wshub serve --workers N` when no
 * broker is given: each worker's IpcTransport talks to the primary process
 * over the node:cluster IPC channel, and the primary's IpcRelay forwards
 * every publish to the other workers subscribed to that channel.
 *
 * Messages on the IPC channel (all carry `wshub` as their kind):
 * - worker → primary: `{ wshub: 'sub' | 'unsub', channels: string[] }`,
 *   `{ wshub: 'pub', channel, payload }` (payload base64);
 * - primary → worker: `{ wshub: 'msg', channel, payload }`.
 * One IPC channel is an ordered byte stream and the relay forwards in the
 * order it receives, so messages from one publisher keep their order.
 */
import type { Transport, TransportEvents, TransportListener } from './transport.ts';

/** A worker-to-primary message of the IPC transport. */
export type IpcUpstream =
  | { wshub: 'sub'; channels: string[] }
  | { wshub: 'unsub'; channels: string[] }
  | { wshub: 'pub'; channel: string; payload: string };

/** A primary-to-worker delivery of the IPC transport. */
export interface IpcDelivery {
  wshub: 'msg';
  channel: string;
  payload: string;
}

/** The part of a process's IPC channel IpcTransport uses (process itself in a worker). */
export interface IpcEndpoint {
  send?: (
    message: unknown,
    sendHandle?: undefined,
    options?: undefined,
    callback?: (error: Error | null) => void,
  ) => boolean;
  readonly connected?: boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'disconnect', listener: () => void): unknown;
}

/**
 * Worker side of the IPC transport. `endpoint` defaults to `process`; start()
 * rejects when the process has no IPC channel (it was not forked).
 */
export class IpcTransport implements Transport {
  readonly kind = 'ipc';
  private listener: TransportListener | null = null;
  private events: TransportEvents = {};
  private closed = false;
  private readonly onMessage = (message: unknown): void => this.receive(message);
  private readonly onDisconnect = (): void =>
    this.events.down?.(new Error('IPC channel to the primary closed'));

  constructor(private readonly endpoint: IpcEndpoint = process) {}

  get connected(): boolean {
    return this.listener !== null && !this.closed && this.endpoint.connected === true;
  }

  start(listener: TransportListener, events: TransportEvents): Promise<void> {
    if (typeof this.endpoint.send !== 'function' || this.endpoint.connected !== true) {
      return Promise.reject(new Error('no IPC channel: the IPC transport runs only in a forked worker'));
    }
    this.listener = listener;
    this.events = events;
    this.endpoint.on('message', this.onMessage);
    this.endpoint.on('disconnect', this.onDisconnect);
    return Promise.resolve();
  }

  subscribe(channels: string[]): Promise<void> {
    return this.send({ wshub: 'sub', channels });
  }

  unsubscribe(channels: string[]): Promise<void> {
    return this.send({ wshub: 'unsub', channels });
  }

  publish(channel: string, payload: Buffer): Promise<void> {
    return this.send({ wshub: 'pub', channel, payload: payload.toString('base64') });
  }

  // Resolves once the message is written to the channel, so the Cluster's
  // in-flight bound also bounds what waits in this process's IPC queue.
  private send(message: IpcUpstream): Promise<void> {
    if (!this.connected) return Promise.reject(new Error('IPC channel to the primary is closed'));
    return new Promise((resolve, reject) => {
      try {
        this.endpoint.send!(message, undefined, undefined, (error) => (error ? reject(error) : resolve()));
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  private receive(message: unknown): void {
    if (!isDelivery(message) || this.listener === null) return;
    this.listener(message.channel, Buffer.from(message.payload, 'base64'));
  }

  close(): Promise<void> {
    this.closed = true;
    this.listener = null;
    this.endpoint.off('message', this.onMessage);
    this.endpoint.off('disconnect', this.onDisconnect);
    return Promise.resolve();
  }
}

function isDelivery(message: unknown): message is IpcDelivery {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as Record<string, unknown>;
  return m.wshub === 'msg' && typeof m.channel === 'string' && typeof m.payload === 'string';
}

/** A worker as the relay sees it: an id and a way to send it a delivery. */
export interface RelayPeer {
  readonly id: number;
  /** Sends `message`; `done` is called once it was written (or failed). */
  send(message: IpcDelivery, done: (error: Error | null) => void): void;
}

/** Counters of the relay. */
export interface IpcRelayMetrics {
  /** Publishes received from workers. */
  published: number;
  /** Deliveries handed to workers. */
  delivered: number;
  /** Deliveries dropped because a worker's queue was full (the receiver counts them as gaps). */
  dropped: number;
}

/**
 * Primary side of the IPC transport: remembers which channels each worker
 * subscribed to and forwards each publish to the other subscribed workers,
 * never back to the sender. At most `maxPending` deliveries per worker may
 * wait to be written; beyond that they are dropped and counted.
 */
export class IpcRelay {
  private readonly peers = new Map<number, { peer: RelayPeer; channels: Set<string>; pending: number }>();
  private readonly maxPending: number;
  private readonly counters: IpcRelayMetrics = { published: 0, delivered: 0, dropped: 0 };

  constructor(options: { maxPending?: number } = {}) {
    this.maxPending = options.maxPending ?? 10_000;
  }

  /**
   * Handles one message from `from`. Returns true when it was an IPC
   * transport message (so the caller can ignore the rest).
   */
  handle(from: RelayPeer, message: unknown): boolean {
    if (typeof message !== 'object' || message === null) return false;
    const m = message as Record<string, unknown>;
    if (m.wshub === 'sub' || m.wshub === 'unsub') {
      if (!Array.isArray(m.channels)) return true;
      const entry = this.entry(from);
      for (const channel of m.channels) {
        if (typeof channel !== 'string') continue;
        if (m.wshub === 'sub') entry.channels.add(channel);
        else entry.channels.delete(channel);
      }
      return true;
    }
    if (m.wshub === 'pub') {
      if (typeof m.channel !== 'string' || typeof m.payload !== 'string') return true;
      this.counters.published++;
      this.forward(from.id, { wshub: 'msg', channel: m.channel, payload: m.payload });
      return true;
    }
    return false;
  }

  private entry(peer: RelayPeer) {
    let entry = this.peers.get(peer.id);
    if (entry === undefined) {
      entry = { peer, channels: new Set(), pending: 0 };
      this.peers.set(peer.id, entry);
    }
    return entry;
  }

  private forward(senderId: number, delivery: IpcDelivery): void {
    for (const [id, entry] of this.peers) {
      if (id === senderId || !entry.channels.has(delivery.channel)) continue;
      if (entry.pending >= this.maxPending) {
        this.counters.dropped++;
        continue;
      }
      entry.pending++;
      this.counters.delivered++;
      entry.peer.send(delivery, () => {
        entry.pending--;
      });
    }
  }

  /** Forgets a worker (it exited); its subscriptions go with it. */
  remove(peer: RelayPeer | number): void {
    this.peers.delete(typeof peer === 'number' ? peer : peer.id);
  }

  /** Channels `peer` is subscribed to (for tests and diagnostics). */
  channelsOf(peerId: number): string[] {
    return [...(this.peers.get(peerId)?.channels ?? [])].sort();
  }

  metrics(): IpcRelayMetrics {
    return { ...this.counters };
  }
}
