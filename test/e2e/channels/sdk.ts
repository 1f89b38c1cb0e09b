/**
 * Tools for the channel tests: a wshub server with channels on a loopback
 * port, and the official `centrifuge` SDK (with `ws` as its WebSocket)
 * connected to it, plus small waits for SDK events.
 */
import type { Socket } from 'node:net';
import { Centrifuge, type Options, type Subscription, type SubscriptionOptions } from 'centrifuge';
import { Centrifuge as CentrifugeProtobuf } from 'centrifuge/build/protobuf';
import WebSocket from 'ws';
import { signHS256 } from '../../../src/auth/token.ts';
import { defaultChannelBounds, type ChannelBounds, type WshubConfig } from '../../../src/config.ts';
import { SECRET, startHub, type RunningHub } from '../server/harness.ts';

export { SECRET };

/** The channel endpoint's path. */
export const CHANNEL_PATH = '/connection/websocket';

/** Starts a hub serving channels with `channels` options (and any other config). */
export function startChannelHub(config: Partial<WshubConfig> = {}): Promise<RunningHub> {
  return startHub({ pingPeriod: 0, channelsEnabled: true, ...config });
}

/** A connection token for `sub`, with extra claims, valid for `seconds` (default 1 h). */
export function connectionToken(
  sub: string,
  claims: Record<string, unknown> = {},
  seconds = 3600,
): Promise<string> {
  return signHS256({ sub, ...claims }, SECRET, { expiresInSeconds: seconds });
}

/** A subscription token for `sub` in `channel`. */
export function subscriptionToken(
  sub: string,
  channel: string,
  claims: Record<string, unknown> = {},
  seconds = 3600,
): Promise<string> {
  return signHS256({ sub, channel, ...claims }, SECRET, { expiresInSeconds: seconds });
}

const clients = new Set<Centrifuge>();

interface Emitter {
  once(event: string, listener: (ctx: never) => void): unknown;
}

/** The first `event` of an SDK client or subscription. */
export function once<T>(emitter: Emitter, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, resolve));
}

/** An SDK client for `hub` (not yet connected). Closed by closeClients(). */
export function sdkClient(hub: RunningHub, options: Partial<Options> = {}): Centrifuge {
  const client = new Centrifuge(hub.url(CHANNEL_PATH), {
    websocket: WebSocket,
    minReconnectDelay: 50,
    maxReconnectDelay: 200,
    timeout: 3000,
    ...options,
  });
  clients.add(client);
  return client;
}

/**
 * An SDK client of the protobuf build for `hub` (the `centrifuge-protobuf`
 * subprotocol; data is bytes), typed as the JSON build's client, whose API
 * it shares. Closed by closeClients().
 */
export function sdkProtobufClient(hub: RunningHub, options: Partial<Options> = {}): Centrifuge {
  const client = new CentrifugeProtobuf(hub.url(CHANNEL_PATH), {
    websocket: WebSocket,
    minReconnectDelay: 50,
    maxReconnectDelay: 200,
    timeout: 3000,
    ...options,
  }) as unknown as Centrifuge;
  clients.add(client);
  return client;
}

/** Connects an SDK client and waits for its 'connected' event (rejects on a final disconnect). */
export async function connected(client: Centrifuge): Promise<{ client: string }> {
  const done = Promise.race([
    once<{ client: string }>(client, 'connected'),
    once(client, 'disconnected').then((ctx) => {
      throw new Error(`disconnected: ${JSON.stringify(ctx)}`);
    }),
  ]);
  client.connect();
  return done;
}

/** Subscribes and waits for 'subscribed' (rejects on 'unsubscribed' or a subscription error). */
export async function subscribed(
  client: Centrifuge,
  channel: string,
  options: Partial<SubscriptionOptions> = {},
): Promise<{ sub: Subscription; ctx: Record<string, unknown> }> {
  const sub = client.newSubscription(channel, options);
  const done = Promise.race([
    once<Record<string, unknown>>(sub, 'subscribed'),
    once(sub, 'unsubscribed').then((ctx) => {
      throw new Error(`unsubscribed: ${JSON.stringify(ctx)}`);
    }),
  ]);
  sub.subscribe();
  return { sub, ctx: await done };
}

/** Collects the data of `n` publications of a subscription, in order. */
export function publications(sub: Subscription, n: number, timeoutMs = 5000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const got: unknown[] = [];
    const timer = setTimeout(() => reject(new Error(`got ${got.length} of ${n} publications`)), timeoutMs);
    sub.on('publication', (ctx) => {
      got.push(ctx.data);
      if (got.length === n) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

/** Disconnects every SDK client made by sdkClient(). */
export function closeClients(): void {
  for (const client of clients) client.disconnect();
  clients.clear();
}

// ---- connection-level tools: raw protocol clients, timed waits, header auth ----------

/** How a raw channel connection ended. */
export interface RawClose {
  code: number;
  reason: string;
  /** ms from the open to the close. */
  afterMs: number;
}

/**
 * A channel connection without the SDK, for clients the SDK would never
 * be: it sends whatever it is told and records every line it receives
 * (server pings `{}` included). Closed by closeRawClients().
 */
export interface RawChannelClient {
  ws: WebSocket;
  /** Every received line, parsed, in order. */
  readonly messages: Record<string, unknown>[];
  /** Received lines that were not JSON (none, from a correct server). */
  readonly invalid: string[];
  /** Settles when the connection ends. */
  readonly closed: Promise<RawClose>;
  /** Sends the commands as one frame, one JSON object per line. */
  send(...commands: unknown[]): void;
  /** The reply with `id`, waiting up to `timeoutMs`. */
  reply(id: number, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends connect (id 1) with `token` and waits for its reply. */
  connect(token?: string): Promise<Record<string, unknown>>;
}

const rawClients = new Set<WebSocket>();

/**
 * Opens a raw channel connection to `hub`. `answerPings` (default true)
 * answers each server ping `{}` with `{}`, as the SDK does.
 */
export function rawChannelClient(
  hub: RunningHub,
  options: { answerPings?: boolean; headers?: Record<string, string> } = {},
): Promise<RawChannelClient> {
  const answerPings = options.answerPings ?? true;
  const ws = new WebSocket(hub.url(CHANNEL_PATH), { headers: options.headers ?? {} });
  rawClients.add(ws);
  const messages: Record<string, unknown>[] = [];
  const invalid: string[] = [];
  const waiters = new Set<() => void>();
  let openedAt = performance.now();
  const closed = new Promise<RawClose>((resolve) =>
    ws.once('close', (code, reason) => {
      rawClients.delete(ws);
      resolve({ code, reason: reason.toString(), afterMs: performance.now() - openedAt });
      for (const wake of waiters) wake();
    }),
  );
  ws.on('message', (data: Buffer) => {
    for (const line of data.toString('utf8').split('\n')) {
      if (line === '') continue;
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        invalid.push(line);
        continue;
      }
      messages.push(message);
      if (answerPings && Object.keys(message).length === 0 && ws.readyState === WebSocket.OPEN) ws.send('{}');
    }
    for (const wake of waiters) wake();
  });
  const client: RawChannelClient = {
    ws,
    messages,
    invalid,
    closed,
    send: (...commands) => ws.send(commands.map((c) => JSON.stringify(c)).join('\n')),
    reply: (id, timeoutMs = 3000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const found = messages.find((m) => m.id === id);
          if (found !== undefined || ws.readyState >= WebSocket.CLOSING) {
            waiters.delete(check);
            clearTimeout(timer);
            if (found !== undefined) resolve(found);
            else reject(new Error(`connection closed before the reply to ${id}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no reply to ${id} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    async connect(token) {
      client.send({ id: 1, connect: token === undefined ? {} : { token } });
      return client.reply(1);
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      openedAt = performance.now();
      resolve(client);
    });
    ws.once('error', reject);
  });
}

/** Terminates every raw client still open. */
export function closeRawClients(): void {
  for (const ws of rawClients) ws.terminate();
  rawClients.clear();
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The next `event` of an SDK client or subscription, within `ms`. */
export function nextEvent<T>(emitter: Emitter, event: string, ms = 5000): Promise<T> {
  return within(once<T>(emitter, event), ms, `event '${event}'`);
}

/** A WebSocket class for the SDK that sends `headers` with the upgrade (a Node client's `Authorization`). */
export function websocketWithHeaders(headers: Record<string, string>): typeof WebSocket {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { headers });
    }
  } as typeof WebSocket;
}

/** Records every event of the given names an SDK client emits, in order, as `name:code`. */
export function recordEvents(
  emitter: { on(event: string, listener: (ctx: { code?: number }) => void): unknown },
  names: string[],
): string[] {
  const seen: string[] = [];
  for (const name of names) emitter.on(name, (ctx) => seen.push(`${name}:${ctx?.code ?? ''}`));
  return seen;
}

/** The default channel bounds with `changes` over them. */
export function channelLimits(changes: Partial<ChannelBounds>): ChannelBounds {
  return { ...defaultChannelBounds(), ...changes };
}

// ---- channel-level tests: refusals, event logs, a raw protocol client, dropped sockets ----

/** The 'unsubscribed' of a subscribe the server refused: its code and reason (rejects if it subscribes). */
export async function refusedSubscribe(
  client: Centrifuge,
  channel: string,
  options: Partial<SubscriptionOptions> = {},
): Promise<{ code: number; reason: string }> {
  const sub = client.newSubscription(channel, options);
  const done = Promise.race([
    once<{ code: number; reason: string }>(sub, 'unsubscribed'),
    once(sub, 'subscribed').then(() => {
      throw new Error(`subscribed to ${channel}, expected a refusal`);
    }),
  ]);
  sub.subscribe();
  const ctx = await done;
  client.removeSubscription(sub);
  return { code: ctx.code, reason: ctx.reason };
}

/** The error of a subscription call (presence, history, publish…) as `{ code, message }`. */
export async function callError(call: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call;
  } catch (error) {
    const e = error as { code?: number; message?: string };
    return { code: e.code ?? -1, message: e.message ?? '' };
  }
  throw new Error('the call succeeded, expected an error');
}

interface Listener {
  on(event: string, listener: (ctx: never) => void): unknown;
}

/** Every `event` of an emitter from now on, in order (the array fills as they come). */
export function record<T>(emitter: Listener, event: string): T[] {
  const got: T[] = [];
  emitter.on(event, (ctx: never) => got.push(ctx));
  return got;
}

/** Waits until `list` holds at least `n` entries (rejects after `timeoutMs`). */
export async function atLeast<T>(list: T[], n: number, timeoutMs = 3000): Promise<T[]> {
  const deadline = performance.now() + timeoutMs;
  while (list.length < n) {
    if (performance.now() > deadline) throw new Error(`got ${list.length} of ${n}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return list;
}

/** Waits `ms` milliseconds. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One reply or push of the channel protocol as a raw client receives it. */
export type RawFrame = Record<string, unknown>;

/**
 * A channel-protocol client over a bare `ws` WebSocket, for what the SDK
 * never sends: commands go out as given; replies are matched by id; pushes
 * and the close are recorded.
 */
export class RawProtocolClient {
  readonly pushes: RawFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly waiting = new Map<number, (reply: RawFrame) => void>();
  private nextId = 1;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => {
      for (const line of data.toString('utf8').split('\n')) {
        if (line === '') continue;
        const frame = JSON.parse(line) as RawFrame;
        const id = typeof frame.id === 'number' ? frame.id : 0;
        if (id > 0) this.waiting.get(id)?.(frame);
        else this.pushes.push(frame);
      }
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })),
    );
  }

  /** Opens a raw connection to the hub's channel endpoint (no connect command yet). */
  static async open(hub: RunningHub): Promise<RawProtocolClient> {
    const socket = new WebSocket(hub.url(CHANNEL_PATH));
    rawSockets.add(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new RawProtocolClient(socket);
  }

  /** Sends `{"id":N,"<method>":body}` and waits for its reply (rejects after `timeoutMs`). */
  call(method: string, body: Record<string, unknown>, timeoutMs = 3000): Promise<RawFrame> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${method} ${id}`)), timeoutMs);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(reply);
      });
      this.socket.send(JSON.stringify({ id, [method]: body }));
    });
  }

  /** Sends text as it is. */
  sendRaw(text: string): void {
    this.socket.send(text);
  }

  close(): void {
    this.socket.terminate();
  }
}

const rawSockets = new Set<WebSocket>();

/** Terminates every raw client made by RawProtocolClient.open(). */
export function closeRawProtocolClients(): void {
  for (const socket of rawSockets) socket.terminate();
  rawSockets.clear();
}

/** Server-side sockets accepted while capturing, to destroy later. */
export interface CapturedSockets {
  /** Stops adding new connections (those captured stay). */
  stop(): void;
  /** Destroys, from the server side, every captured socket still open (no close frame); returns how many. */
  drop(): number;
}

/**
 * Remembers every TCP connection the hub's server accepts from now until
 * `stop()`: connect the client to drop (and only it) in between.
 */
export function captureSockets(hub: RunningHub): CapturedSockets {
  const sockets = new Set<Socket>();
  const onConnection = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  hub.server.on('connection', onConnection);
  return {
    stop: () => hub.server.off('connection', onConnection),
    drop: () => {
      const n = sockets.size;
      for (const socket of sockets) socket.destroy();
      return n;
    },
  };
}
