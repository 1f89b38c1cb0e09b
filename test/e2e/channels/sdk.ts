/**
 * Tools for the channel tests: a wshub server with channels on a loopback
 * port, and the official `centrifuge` SDK (with `ws` as its WebSocket)
 * connected to it, plus small waits for SDK events.
 */
import type { Socket } from 'node:net';
import { Centrifuge, type Options, type Subscription, type SubscriptionOptions } from 'centrifuge';
import WebSocket from 'ws';
import { signHS256 } from '../../../src/auth/token.ts';
import type { WshubConfig } from '../../../src/config.ts';
import { defaultChannelBounds, type ChannelBounds } from '../../../src/config.ts';
import { SECRET, startHub, type RunningHub } from '../server/harness.ts';

export { SECRET };

/** The channel endpoint's path. */
export const CHANNEL_PATH = '/connection/websocket';

/** Starts a hub serving channels with `channels` options (and any other config). */
export function startChannelHub(config: Partial<WshubConfig> = {}): Promise<RunningHub> {
  return startHub({ pingPeriod: 0, ...config });
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
export class RawChannelClient {
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
  static async open(hub: RunningHub): Promise<RawChannelClient> {
    const socket = new WebSocket(hub.url(CHANNEL_PATH));
    rawSockets.add(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new RawChannelClient(socket);
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

/** Terminates every raw channel client made by RawChannelClient.open(). */
export function closeRawClients(): void {
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

/** The default channel bounds with `overrides` (for `channelLimits`). */
export function channelLimits(overrides: Partial<ChannelBounds>): ChannelBounds {
  return { ...defaultChannelBounds(), ...overrides };
}

/** The next `event` of an SDK client or subscription, or a rejection after `timeoutMs`. */
export function nextEvent<T>(emitter: Emitter, event: string, timeoutMs = 3000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, (ctx: never) => {
      clearTimeout(timer);
      resolve(ctx);
    });
  });
}
