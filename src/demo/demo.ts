/**
 * The demo chat: a page (web/) on the official `centrifuge` SDK, a token
 * endpoint, the `chat` namespace it chats in (history, recovery, presence,
 * join/leave, publishing by subscribers), and the hooks of the raw `/ws`
 * room chat beside it, with presence counts. A channel `chat:x` and the
 * room `chat:x` are one: raw members see channel messages and the other
 * way round. `wshub serve --dev` wires it up; see createDemo for the order.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RoomAuthContext, RoomPasswords } from '../auth/room-password.ts';
import type { NamespaceConfig, ChannelsConfig } from '../channels/options.ts';
import type { ChannelClient } from '../channels/session.ts';
import type { WshubConfig } from '../config.ts';
import type { Connection } from '../connection/connection.ts';
import type { Hub } from '../hub/hub.ts';
import { Opcode } from '../protocol/frame.ts';
import { HttpRejection, refusal, sendRejection } from '../http/rejections.ts';
import type { WshubServer } from '../server/server.ts';
import { parseClientMessage, type ChatMessage, type PresenceMessage } from './chat.ts';
import { isStaticPath, serveStatic } from './static-files.ts';
import { handleTokenRequest, type TokenEndpointOptions } from './token-endpoint.ts';

/** Where the page asks for its token. */
export const DEMO_TOKEN_PATH = '/demo/token';
/** Token lifetime unless configured otherwise, in seconds. */
export const DEFAULT_DEMO_TOKEN_TTL_SECONDS = 3600;
/** Channel connection token lifetime unless configured otherwise: short, so the page shows refreshes. */
export const DEFAULT_DEMO_CHANNEL_TOKEN_TTL_SECONDS = 60;

/**
 * The namespace the page chats in: the last 100 messages of the last hour
 * kept per channel and recovered after a reconnect, presence with
 * join/leave pushed to every subscriber, and publishing by subscribers.
 * Any client with a token may subscribe, except to a channel that has a
 * room password (see createDemo).
 */
export const DEMO_NAMESPACE: Readonly<NamespaceConfig> = Object.freeze({
  name: 'chat',
  historySize: 100,
  historyTtl: 3_600_000,
  forceRecovery: true,
  presence: true,
  joinLeave: true,
  forcePushJoinLeave: true,
  allowPublishForSubscriber: true,
  allowPresenceForSubscriber: true,
  allowHistoryForSubscriber: true,
});

/**
 * Adds DEMO_NAMESPACE to configured channel options; a namespace of the
 * same name that the configuration already has wins.
 */
export function withDemoNamespace(channels: ChannelsConfig = {}): ChannelsConfig {
  const namespaces = channels.namespaces ?? [];
  if (namespaces.some((ns) => ns.name === DEMO_NAMESPACE.name)) return channels;
  return { ...channels, namespaces: [...namespaces, { ...DEMO_NAMESPACE }] };
}

export interface DemoOptions {
  /** HS256 secret (≥ 32 bytes) the demo's token endpoint signs with; the same secret the server verifies with. */
  secret: Uint8Array;
  /** Room passwords (already set); protected rooms need the password to get a token for that room. */
  roomPasswords: RoomPasswords;
  /** Token lifetime in seconds (default 3600). */
  tokenTtlSeconds?: number;
  /** Channel connection token lifetime in seconds (default 60). */
  channelTokenTtlSeconds?: number;
  /** The configured channel options; the demo adds its `chat` namespace to them. */
  channels?: ChannelsConfig;
}

export interface Demo {
  /**
   * Options to merge into the server config: onConnect, onClose, onMessage
   * and roomAuthorizer (which accepts a room when the token's claims grant
   * it, or when the room is open); `channels` (the given ones plus the
   * `chat` namespace) and `channelHooks.authorizeSubscribe` (the same rule
   * for channels, without the password).
   */
  config: Partial<WshubConfig>;
  /** Serves GET / (the chat page from web/), its static assets, and POST /demo/token. Returns false for any other request. */
  handleRequest(request: IncomingMessage, response: ServerResponse): boolean;
  /** Must be called once the WshubServer exists (the demo broadcasts presence counts through its hub). */
  bind(server: WshubServer): void;
}

/**
 * Creates the demo. Takes the signing secret, the room passwords and an
 * optional token lifetime; returns the config to merge into createWshub's,
 * the HTTP handler for the page and token endpoint, and `bind`.
 *
 * Usage: `const demo = createDemo(opts); const ws = createWshub({ ...config,
 * secret, ...demo.config }); demo.bind(ws); ws.createServer((req, res) => {
 * if (!demo.handleRequest(req, res)) notFound(res) })`.
 *
 * Before `bind`, joins and leaves send no presence and messages are dropped.
 */
export function createDemo(options: DemoOptions): Demo {
  const tokenTtlSeconds = options.tokenTtlSeconds ?? DEFAULT_DEMO_TOKEN_TTL_SECONDS;
  const channelTokenTtlSeconds = options.channelTokenTtlSeconds ?? DEFAULT_DEMO_CHANNEL_TOKEN_TTL_SECONDS;
  for (const [key, value] of Object.entries({ tokenTtlSeconds, channelTokenTtlSeconds })) {
    if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${key} must be a positive number`);
  }
  const endpoint: TokenEndpointOptions = {
    secret: options.secret,
    roomPasswords: options.roomPasswords,
    tokenTtlSeconds,
    channelTokenTtlSeconds,
  };
  const { roomPasswords } = options;
  let hub: Hub | undefined;
  // The hub clears conn.room when a connection leaves, before onClose runs,
  // so the room is remembered here to announce the new count.
  const roomOf = new WeakMap<Connection, string>();

  const sendToRoom = (room: string, value: ChatMessage | PresenceMessage): void => {
    hub?.broadcastRoom(room, Opcode.TEXT, JSON.stringify(value));
  };
  const announcePresence = (room: string): void => {
    if (hub === undefined) return;
    sendToRoom(room, { type: 'presence', room, count: hub.getRoomCount(room) });
  };

  /** A channel named like a protected room is open only to tokens granted that room. */
  const mayEnter = (channel: string, claims: Readonly<Record<string, unknown>>): boolean => {
    if (!roomPasswords.hasRoomPassword(channel)) return true;
    const granted = claims.rooms;
    return Array.isArray(granted) && granted.includes(channel);
  };

  const config: Partial<WshubConfig> = {
    channels: withDemoNamespace(options.channels),
    channelHooks: {
      authorizeSubscribe: (client: ChannelClient, channel: string) =>
        channel.startsWith(`${DEMO_NAMESPACE.name}:`) && mayEnter(channel, client.claims),
    },
    roomAuthorizer: {
      async authorize(ctx: RoomAuthContext): Promise<boolean> {
        if (!roomPasswords.hasRoomPassword(ctx.room)) return true;
        const granted = ctx.claims?.rooms;
        if (Array.isArray(granted) && granted.includes(ctx.room)) return true;
        return roomPasswords.verify(ctx.room, ctx.password);
      },
    },
    onConnect(conn) {
      if (conn.room === undefined) return;
      roomOf.set(conn, conn.room);
      announcePresence(conn.room);
    },
    onClose(conn) {
      const room = roomOf.get(conn);
      if (room === undefined) return;
      roomOf.delete(conn);
      announcePresence(room);
    },
    onMessage(conn, data, binary) {
      const text = parseClientMessage(data, binary);
      const room = roomOf.get(conn);
      if (text === null || room === undefined) return;
      // The name comes from the verified token, never from the message.
      const from = conn.user?.name ?? 'anonymous';
      sendToRoom(room, { type: 'message', from, text, at: Date.now() });
    },
  };

  return {
    config,
    handleRequest(request, response) {
      const path = pathOf(request);
      if (path === DEMO_TOKEN_PATH) {
        void handleTokenRequest(request, response, endpoint);
        return true;
      }
      if (isStaticPath(path)) {
        serveStatic(path, request, response).catch(() => {
          sendRejection(response, refusal(HttpRejection.INTERNAL_ERROR));
        });
        return true;
      }
      return false;
    },
    bind(server) {
      hub = server.hub;
      // Guesses through the token endpoint count against the same lockout as upgrades.
      endpoint.passwordAttempt = (request, room) => server.roomPasswordAttempt(request, room);
    },
  };
}

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
