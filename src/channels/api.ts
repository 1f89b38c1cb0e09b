/**
 * What the server side of an application (the library API and the
 * Centrifugo-compatible HTTP API) can ask of the channel node. Every method
 * is asynchronous, so a shared engine (Redis) can stand behind it; every
 * refusal is a ReplyErrorException carrying one of the protocol's
 * ReplyErrors (e.g. 102 unknown channel, 108 not available, 112
 * unrecoverable position, 107 bad request).
 */
import type { ClientInfo, Disconnect, Json, Publication, StreamPosition } from './protocol.ts';

export interface PublishOptions {
  /** Do not append to the channel's history (the publication is delivered only). */
  skipHistory?: boolean;
  /** Tags delivered with the publication. */
  tags?: Record<string, string>;
}

export interface PublishResult {
  /** Position of the publication in the channel's history; absent for a channel without history. */
  offset?: number;
  epoch?: string;
}

export interface HistoryQuery {
  /** Publications to return: 0 = none (only the current position), < 0 = all kept. */
  limit?: number;
  since?: StreamPosition;
  reverse?: boolean;
}

export interface HistoryReply {
  publications: Publication[];
  offset: number;
  epoch: string;
}

export interface DisconnectOptions {
  /** Only this client id (otherwise every connection of the user). */
  client?: string;
  /** Close code and reason (default: Disconnects.FORCE_NO_RECONNECT). */
  disconnect?: Disconnect;
}

export interface NodeInfo {
  uid: string;
  name: string;
  version: string;
  num_clients: number;
  num_users: number;
  num_channels: number;
  num_subs: number;
  uptime: number;
}

export interface ChannelApi {
  /** Publishes `data` (any JSON value) to `channel`: subscribers, raw room members and other nodes. */
  publish(channel: string, data: Json, options?: PublishOptions): Promise<PublishResult>;
  history(channel: string, query?: HistoryQuery): Promise<HistoryReply>;
  /** Forgets the channel's stored publications (its position and epoch stay). */
  historyRemove(channel: string): Promise<void>;
  /** Client id → info of the channel's subscribers (108 when presence is off for the channel). */
  presence(channel: string): Promise<Record<string, ClientInfo>>;
  presenceStats(channel: string): Promise<{ num_clients: number; num_users: number }>;
  /** Unsubscribes the user's connections (or one client's) from `channel`. */
  unsubscribe(channel: string, user: string, client?: string): Promise<void>;
  /** Disconnects the user's connections (or one client). */
  disconnect(user: string, options?: DisconnectOptions): Promise<void>;
  /** Channels with subscribers on this node, with their counts; `pattern` is a glob (`*` any run, `?` one char) when given. */
  channels(pattern?: string): Promise<Record<string, { num_clients: number }>>;
  info(): Promise<{ nodes: NodeInfo[] }>;
}
