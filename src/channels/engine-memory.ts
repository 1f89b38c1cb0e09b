/**
 * The in-memory engine: history and presence in this process (history.ts,
 * presence.ts), answering at once. The default, and the reference the
 * Redis engine is tested against. With several nodes each keeps its own
 * streams (see docs/CHANNELS.md, "Across nodes").
 */
import type { ChannelEngine, EngineMetrics, PublicationInput, StreamPosition } from './engine.ts';
import { MemoryHistory, type HistoryLimits } from './history.ts';
import { MemoryPresence, type PresenceLimits } from './presence.ts';
import type { ClientInfo } from './protocol.ts';
import { publicationJson } from './redis-keys.ts';

/** History and presence in this process's memory. */
export class MemoryEngine implements ChannelEngine {
  readonly kind = 'memory';
  readonly delivers = false;
  readonly history: MemoryHistory;
  readonly presence: MemoryPresence;

  /** Takes the bounds of both stores (RangeError for an invalid one). */
  constructor(history: Partial<HistoryLimits> = {}, presence: Partial<PresenceLimits> = {}) {
    this.history = new MemoryHistory(history);
    this.presence = new MemoryPresence(presence);
  }

  /** Appends; returns the position and the publication's JSON. */
  append(
    channel: string,
    pub: PublicationInput,
    size: number,
    ttl: number,
  ): StreamPosition & { json: string } {
    let json = '';
    const position = this.history.append(
      channel,
      (offset) => (json = publicationJson(pub.dataJson, offset, pub.tail)),
      size,
      ttl,
    );
    return { ...position, json };
  }

  /** The stream's position. */
  top(channel: string): StreamPosition {
    return this.history.top(channel);
  }

  /** See HistoryEngine.read (ages are the stream's own). */
  read(
    channel: string,
    query: { since?: StreamPosition; limit: number; reverse: boolean },
  ): ReturnType<MemoryHistory['read']> {
    return this.history.read(channel, query);
  }

  /** See HistoryEngine.recover. */
  recover(channel: string, since: StreamPosition, max: number): ReturnType<MemoryHistory['recover']> {
    return this.history.recover(channel, since, max);
  }

  /** Forgets the stored publications. */
  remove(channel: string): void {
    this.history.remove(channel);
  }

  /** Forgets the stream entirely (a new epoch next time). */
  reset(channel: string): void {
    this.history.reset(channel);
  }

  /** Drops expired publications and idle streams. */
  sweep(): void {
    this.history.sweep();
  }

  /** Adds an entry; false when presenceMaxEntries is reached. */
  presenceAdd(channel: string, clientId: string, info: ClientInfo): boolean {
    return this.presence.add(channel, clientId, info);
  }

  /** Removes an entry. */
  presenceRemove(channel: string, clientId: string): void {
    this.presence.remove(channel, clientId);
  }

  /** Client id → info. */
  presenceGet(channel: string): Record<string, ClientInfo> {
    return this.presence.get(channel);
  }

  /** Clients and distinct users. */
  presenceStats(channel: string): { numClients: number; numUsers: number } {
    return this.presence.stats(channel);
  }

  /** The history and presence counters, under their existing names. */
  metrics(): EngineMetrics {
    const h = this.history.stats();
    return {
      history_streams: h.streams,
      history_publications: h.publications,
      history_bytes: h.bytes,
      history_trimmed: h.trimmed,
      presence_entries: this.presence.size(),
    };
  }
}
