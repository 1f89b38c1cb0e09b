/**
 * In-memory presence: who is subscribed to each channel (client id → info),
 * with the distinct users counted as entries come and go, so presence_stats
 * costs O(1) however many subscribers a channel has. One cap bounds the
 * entries over all channels.
 */
import type { ClientInfo } from './protocol.ts';

export interface PresenceLimits {
  /** Entries kept over all channels; default 1 000 000. */
  maxEntries: number;
}

export const defaultPresenceLimits: Readonly<PresenceLimits> = Object.freeze({ maxEntries: 1_000_000 });

/** One channel's entries and, per user, how many of them carry that user. */
interface ChannelPresence {
  clients: Map<string, ClientInfo>;
  users: Map<string, number>;
}

/** In-memory presence for every channel with presence on. */
export class MemoryPresence {
  readonly #maxEntries: number;
  readonly #channels = new Map<string, ChannelPresence>();
  #entries = 0;

  /** Takes the limits (default as in defaultPresenceLimits); throws RangeError for a maxEntries that is not a number above 0. */
  constructor(limits: Partial<PresenceLimits> = {}) {
    const maxEntries = limits.maxEntries ?? defaultPresenceLimits.maxEntries;
    if (typeof maxEntries !== 'number' || !(maxEntries > 0)) {
      throw new RangeError(`presence limit maxEntries must be a number above 0, got ${String(maxEntries)}`);
    }
    this.#maxEntries = maxEntries;
  }

  /** Adds or replaces the entry of `clientId` in `channel` (the info is kept as given, not copied); false when the total cap is reached (nothing added). A replacement always succeeds. */
  add(channel: string, clientId: string, info: ClientInfo): boolean {
    let presence = this.#channels.get(channel);
    const previous = presence?.clients.get(clientId);
    if (previous === undefined && this.#entries >= this.#maxEntries) return false;
    if (presence === undefined) {
      presence = { clients: new Map(), users: new Map() };
      this.#channels.set(channel, presence);
    }
    if (previous !== undefined) uncount(presence.users, previous.user);
    else this.#entries++;
    presence.clients.set(clientId, info);
    presence.users.set(info.user, (presence.users.get(info.user) ?? 0) + 1);
    return true;
  }

  /** Removes the entry of `clientId` from `channel`, if there is one. */
  remove(channel: string, clientId: string): void {
    const presence = this.#channels.get(channel);
    const info = presence?.clients.get(clientId);
    if (presence === undefined || info === undefined) return;
    presence.clients.delete(clientId);
    uncount(presence.users, info.user);
    this.#entries--;
    if (presence.clients.size === 0) this.#channels.delete(channel);
  }

  /** Client id → info for `channel` (a new object each call; empty for a channel nobody is in). */
  get(channel: string): Record<string, ClientInfo> {
    const presence = this.#channels.get(channel);
    // fromEntries defines own properties, so a client id like "__proto__" stays a plain key.
    return presence === undefined ? {} : Object.fromEntries(presence.clients);
  }

  /** Distinct clients and distinct users of `channel`; as in Centrifugo, anonymous clients (user '') count as one user. */
  stats(channel: string): { numClients: number; numUsers: number } {
    const presence = this.#channels.get(channel);
    return { numClients: presence?.clients.size ?? 0, numUsers: presence?.users.size ?? 0 };
  }

  /** Entries over all channels. */
  size(): number {
    return this.#entries;
  }

  /** Channels with at least one entry. */
  channels(): number {
    return this.#channels.size;
  }
}

function uncount(users: Map<string, number>, user: string): void {
  const n = users.get(user) ?? 0;
  if (n <= 1) users.delete(user);
  else users.set(user, n - 1);
}
