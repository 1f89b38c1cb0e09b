/**
 * The in-process transport: several hubs in one process share a MemoryBus.
 * It is the reference behaviour for the other transports and what tests
 * use to run many nodes without a server. Delivery is asynchronous (a
 * microtask later), like a real broker's.
 */
import type { Transport, TransportEvents, TransportListener } from './transport.ts';

/** A shared bus; each MemoryTransport attached to it is one node. */
export class MemoryBus {
  private readonly members = new Set<MemoryTransport>();
  /** Whether the bus is "up"; tests flip it to simulate an outage. */
  private up = true;

  join(transport: MemoryTransport): void {
    this.members.add(transport);
  }

  leave(transport: MemoryTransport): void {
    this.members.delete(transport);
  }

  get available(): boolean {
    return this.up;
  }

  /** Simulates the messaging system going away (false) or coming back (true). */
  setAvailable(up: boolean): void {
    if (this.up === up) return;
    this.up = up;
    for (const member of this.members) member.availabilityChanged(up);
  }

  deliver(channel: string, payload: Buffer): void {
    for (const member of this.members) member.receive(channel, payload);
  }

  /** Number of transports subscribed to `channel` (like PUBSUB NUMSUB). */
  subscribers(channel: string): number {
    let n = 0;
    for (const member of this.members) if (member.isSubscribed(channel)) n++;
    return n;
  }
}

export class MemoryTransport implements Transport {
  readonly kind = 'memory';
  private readonly channels = new Set<string>();
  private listener: TransportListener | null = null;
  private events: TransportEvents = {};

  constructor(private readonly bus: MemoryBus) {}

  get connected(): boolean {
    return this.listener !== null && this.bus.available;
  }

  start(listener: TransportListener, events: TransportEvents): Promise<void> {
    if (!this.bus.available) return Promise.reject(new Error('memory bus unavailable'));
    this.listener = listener;
    this.events = events;
    this.bus.join(this);
    return Promise.resolve();
  }

  subscribe(channels: string[]): Promise<void> {
    for (const channel of channels) this.channels.add(channel);
    return Promise.resolve();
  }

  unsubscribe(channels: string[]): Promise<void> {
    for (const channel of channels) this.channels.delete(channel);
    return Promise.resolve();
  }

  publish(channel: string, payload: Buffer): Promise<void> {
    if (!this.connected) return Promise.reject(new Error('memory bus unavailable'));
    const copy = Buffer.from(payload);
    queueMicrotask(() => this.bus.deliver(channel, copy));
    return Promise.resolve();
  }

  isSubscribed(channel: string): boolean {
    return this.channels.has(channel);
  }

  /** @internal */
  receive(channel: string, payload: Buffer): void {
    if (this.listener !== null && this.bus.available && this.channels.has(channel))
      this.listener(channel, payload);
  }

  /** @internal */
  availabilityChanged(up: boolean): void {
    if (up) this.events.up?.();
    else this.events.down?.(new Error('memory bus unavailable'));
  }

  close(): Promise<void> {
    this.bus.leave(this);
    this.listener = null;
    this.channels.clear();
    return Promise.resolve();
  }
}
