// An in-memory ChannelApi for tests of the server API: channels in
// namespaces (as Centrifugo names them: `ns:rest`), history and presence
// switched on per namespace, clients placed by the test, and every call
// recorded so a test can check what ran (and that nothing ran).
import type {
  ChannelApi,
  DisconnectOptions,
  HistoryQuery,
  HistoryReply,
  NodeInfo,
  PublishOptions,
  PublishResult,
} from '../../src/channels/api.ts';
import {
  Disconnects,
  ReplyErrorException,
  ReplyErrors,
  type ClientInfo,
  type Disconnect,
  type Json,
  type Publication,
} from '../../src/channels/protocol.ts';

export interface FakeChannelApiOptions {
  /** Namespaces that exist besides the default one (channels without `:`). */
  namespaces?: string[];
  /** Namespaces with history ('' is the default namespace). */
  history?: string[];
  /** Namespaces with presence. */
  presence?: string[];
  /** Publications kept per channel. */
  historySize?: number;
}

export interface RecordedCall {
  method: keyof ChannelApi;
  args: unknown[];
}

interface Stream {
  epoch: string;
  offset: number;
  publications: Publication[];
}

/** A connected client the test placed: its user and subscribed channels. */
interface FakeClient {
  info: ClientInfo;
  channels: Set<string>;
}

/** Behaves as a one-node channel engine would, in memory. */
export class FakeChannelApi implements ChannelApi {
  readonly calls: RecordedCall[] = [];
  /** Disconnects carried out: client id → disconnect. */
  readonly disconnected = new Map<string, Disconnect>();
  /** Unsubscribes carried out: `client@channel`. */
  readonly unsubscribed: string[] = [];
  /** Channels whose publish throws a plain Error (a broken engine). */
  readonly failing = new Set<string>();
  /** Channels whose publish never settles (a hung engine). */
  readonly hanging = new Set<string>();
  private readonly streams = new Map<string, Stream>();
  private readonly clients = new Map<string, FakeClient>();
  private readonly namespaces: Set<string>;
  private readonly history_: Set<string>;
  private readonly presence_: Set<string>;
  private readonly historySize: number;
  private epochs = 0;

  constructor(options: FakeChannelApiOptions = {}) {
    this.namespaces = new Set(['', ...(options.namespaces ?? [])]);
    this.history_ = new Set(options.history ?? []);
    this.presence_ = new Set(options.presence ?? []);
    this.historySize = options.historySize ?? 100;
  }

  /** Places a connected client subscribed to `channels`. */
  connect(client: string, user: string, channels: string[], connInfo?: Json): void {
    const info: ClientInfo = { user, client };
    if (connInfo !== undefined) info.conn_info = connInfo;
    this.clients.set(client, { info, channels: new Set(channels) });
  }

  /** The methods called, in order. */
  methods(): string[] {
    return this.calls.map((c) => c.method);
  }

  async publish(channel: string, data: Json, options: PublishOptions = {}): Promise<PublishResult> {
    this.record('publish', channel, data, options);
    await this.turn();
    this.known(channel);
    if (this.failing.has(channel)) throw new Error(`engine down for ${channel}`);
    if (this.hanging.has(channel)) return new Promise<never>(() => {});
    if (!this.history_.has(namespaceOf(channel))) return {};
    const stream = this.stream(channel);
    stream.offset++;
    if (options.skipHistory !== true) {
      const publication: Publication = { data, offset: stream.offset };
      if (options.tags !== undefined) publication.tags = options.tags;
      stream.publications.push(publication);
      if (stream.publications.length > this.historySize) stream.publications.shift();
    }
    return { offset: stream.offset, epoch: stream.epoch };
  }

  async history(channel: string, query: HistoryQuery = {}): Promise<HistoryReply> {
    this.record('history', channel, query);
    await this.turn();
    this.withHistory(channel);
    const stream = this.stream(channel);
    let publications = stream.publications;
    if (query.since !== undefined) {
      if (query.since.epoch !== undefined && query.since.epoch !== stream.epoch) {
        throw new ReplyErrorException(ReplyErrors.UNRECOVERABLE_POSITION);
      }
      const after = query.since.offset ?? 0;
      publications = publications.filter((p) => (p.offset ?? 0) > after);
    }
    if (query.reverse === true) publications = [...publications].reverse();
    const limit = query.limit ?? 0;
    publications = limit < 0 ? publications : publications.slice(0, limit);
    return { publications, offset: stream.offset, epoch: stream.epoch };
  }

  async historyRemove(channel: string): Promise<void> {
    this.record('historyRemove', channel);
    await this.turn();
    this.withHistory(channel);
    this.stream(channel).publications = [];
  }

  async presence(channel: string): Promise<Record<string, ClientInfo>> {
    this.record('presence', channel);
    await this.turn();
    this.withPresence(channel);
    const out: Record<string, ClientInfo> = {};
    for (const [id, c] of this.clients) if (c.channels.has(channel)) out[id] = c.info;
    return out;
  }

  async presenceStats(channel: string): Promise<{ num_clients: number; num_users: number }> {
    this.record('presenceStats', channel);
    await this.turn();
    this.withPresence(channel);
    const here = [...this.clients.values()].filter((c) => c.channels.has(channel));
    return { num_clients: here.length, num_users: new Set(here.map((c) => c.info.user)).size };
  }

  async unsubscribe(channel: string, user: string, client?: string): Promise<void> {
    this.record('unsubscribe', channel, user, client);
    await this.turn();
    this.known(channel);
    for (const [id, c] of this.clients) {
      if (c.info.user !== user || (client !== undefined && id !== client)) continue;
      if (c.channels.delete(channel)) this.unsubscribed.push(`${id}@${channel}`);
    }
  }

  async disconnect(user: string, options: DisconnectOptions = {}): Promise<void> {
    this.record('disconnect', user, options);
    await this.turn();
    for (const [id, c] of this.clients) {
      if (c.info.user !== user || (options.client !== undefined && id !== options.client)) continue;
      this.clients.delete(id);
      this.disconnected.set(id, options.disconnect ?? Disconnects.FORCE_NO_RECONNECT);
    }
  }

  async channels(pattern?: string): Promise<Record<string, { num_clients: number }>> {
    this.record('channels', pattern);
    await this.turn();
    const counts: Record<string, { num_clients: number }> = {};
    for (const c of this.clients.values()) {
      for (const channel of c.channels) {
        if (pattern !== undefined && !globMatch(pattern, channel)) continue;
        counts[channel] = { num_clients: (counts[channel]?.num_clients ?? 0) + 1 };
      }
    }
    return counts;
  }

  async info(): Promise<{ nodes: NodeInfo[] }> {
    this.record('info');
    await this.turn();
    const clients = [...this.clients.values()];
    const channels = new Set(clients.flatMap((c) => [...c.channels]));
    return {
      nodes: [
        {
          uid: 'fake-node-1',
          name: 'fake',
          version: '0.0.0-test',
          num_clients: clients.length,
          num_users: new Set(clients.map((c) => c.info.user)).size,
          num_channels: channels.size,
          num_subs: clients.reduce((n, c) => n + c.channels.size, 0),
          uptime: 7,
        },
      ],
    };
  }

  /** Answers on a later turn, as an engine behind a socket would. */
  private turn(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  private record(method: keyof ChannelApi, ...args: unknown[]): void {
    this.calls.push({ method, args });
  }

  private known(channel: string): void {
    if (!this.namespaces.has(namespaceOf(channel)))
      throw new ReplyErrorException(ReplyErrors.UNKNOWN_CHANNEL);
  }

  private withHistory(channel: string): void {
    this.known(channel);
    if (!this.history_.has(namespaceOf(channel))) throw new ReplyErrorException(ReplyErrors.NOT_AVAILABLE);
  }

  private withPresence(channel: string): void {
    this.known(channel);
    if (!this.presence_.has(namespaceOf(channel))) throw new ReplyErrorException(ReplyErrors.NOT_AVAILABLE);
  }

  private stream(channel: string): Stream {
    let stream = this.streams.get(channel);
    if (stream === undefined) {
      stream = { epoch: `epoch-${++this.epochs}`, offset: 0, publications: [] };
      this.streams.set(channel, stream);
    }
    return stream;
  }
}

function namespaceOf(channel: string): string {
  const colon = channel.indexOf(':');
  return colon < 0 ? '' : channel.slice(0, colon);
}

/** `*` any run, `?` one character; iterative, so no pattern backtracks exponentially. */
function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === text[t])) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}
