/**
 * Tools for the channel tests: a wshub server with channels on a loopback
 * port, and the official `centrifuge` SDK (with `ws` as its WebSocket)
 * connected to it, plus small waits for SDK events.
 */
import { Centrifuge, type Options, type Subscription, type SubscriptionOptions } from 'centrifuge';
import WebSocket from 'ws';
import { signHS256 } from '../../../src/auth/token.ts';
import type { WshubConfig } from '../../../src/config.ts';
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
