/**
 * The seed guide ("Real-Time with WebSockets"), steps 1–6, in TypeScript.
 *
 * One http server carries two hubs: the main one on `/ws` (steps 1–3) and a
 * chat hub with its own token authenticator, room passwords and send policy
 * on `/ws/chat` (step 4). `startSeedGuide()` wires everything and returns the
 * handles the later steps use, so a test can drive the whole guide in-process.
 *
 * Run it (in this repository, after `npm run build`):
 *   WS_SECRET=… WS_BROADCAST_SECRET=… WS_VIP_PASSWORD=… node --import tsx examples/seed-guide.ts
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import {
  HS256TokenAuthenticator,
  Hub,
  Opcode,
  RoomPasswords,
  WshubServer,
  createWshub,
  defaultConfig,
} from 'wshub';

export interface SeedGuideOptions {
  /** Token secret (≥ 32 bytes). Defaults to `process.env.WS_SECRET`. */
  secret?: Uint8Array | string | undefined;
  /** Admin broadcast secret (≥ 32 bytes, not the token secret). Defaults to `process.env.WS_BROADCAST_SECRET`. */
  broadcastSecret?: Uint8Array | string | undefined;
  /** Password of `vip-room` on the chat hub. Defaults to `process.env.WS_VIP_PASSWORD`. */
  vipPassword?: string | undefined;
  /** Origins the chat hub accepts (browsers send Origin). */
  chatOrigins?: string[];
  /** PBKDF2 iterations for room passwords (default: the library's 210 000). */
  passwordIterations?: number;
  port?: number;
  host?: string;
}

/** What step 5 reads from a hub. */
export interface HubState {
  /** Connections in `chat:general`. */
  roomCount: number;
  /** Connection-room registrations across all rooms. */
  registrations: number;
  /** Every room name, sorted. */
  rooms: string[];
}

export interface SeedGuideApp {
  /** The http server both hubs are mounted on. */
  server: Server;
  /** `http://host:port` of the running server. */
  url: string;
  /** The main server of steps 1–3 (`/ws`, admin broadcast on). */
  ws: WshubServer;
  /** The custom chat server of step 4 (`/ws/chat`). */
  chat: WshubServer;
  /** Step 3: a message to `chat:general`, then a ping to everyone. */
  announce(): void;
  /** Step 5: the state of a hub (the main one unless told otherwise). */
  inspect(hub?: Hub): HubState;
  /** Step 6: graceful shutdown of both hubs (10 s bound), then the http server. */
  shutdown(): Promise<void>;
}

/** The room the guide broadcasts to and inspects. */
export const GENERAL_ROOM = 'chat:general';
/** The password-protected room of step 4. */
export const VIP_ROOM = 'vip-room';

/**
 * Runs steps 1–4 and listens (port 0 picks a free port). Resolves with the
 * running app; rejects with WeakSecretError / SecretReuseError when the
 * secrets are missing, short or reused, and with an Error when no VIP
 * password is given.
 */
export async function startSeedGuide(options: SeedGuideOptions = {}): Promise<SeedGuideApp> {
  const secret = options.secret ?? process.env.WS_SECRET;
  const broadcastSecret = options.broadcastSecret ?? process.env.WS_BROADCAST_SECRET;
  const vipPassword = options.vipPassword ?? process.env.WS_VIP_PASSWORD;
  if (vipPassword === undefined || vipPassword === '') {
    throw new Error('a password for vip-room is required (WS_VIP_PASSWORD)');
  }

  // Step 1 — Create the server: the defaults, the secret from the
  // application's wiring, room limits, and admin broadcast with its own secret.
  const ws = createWshub({
    ...defaultConfig(),
    wsRoutePath: '/ws',
    secret,
    maxRoomRegistrations: 1000,
    maxRoomConnections: 100,
    broadcastEnabled: true,
    broadcastSecret,
  });

  // Step 2 — Register routes: an http server with the upgrade endpoint at
  // `/ws` and the admin broadcast endpoint mounted.
  const server = ws.createServer();

  // Step 4 — Custom handler with rooms and auth: its own hub, token
  // authenticator and room authorizer, and its own send policy, served at
  // `/ws/chat` on the same http server (the seed's ServeWSWithConfig).
  const tokenAuth = new HS256TokenAuthenticator(requiredSecret(secret));
  const roomAuth = new RoomPasswords(
    options.passwordIterations === undefined ? {} : { iterations: options.passwordIterations },
  );
  await roomAuth.setRoomPassword(VIP_ROOM, vipPassword);
  const chatHub = new Hub({ workerCount: 4, jobQueueSize: 512 });
  const chat = new WshubServer(
    {
      wsRoutePath: '/ws/chat',
      tokenAuthenticator: tokenAuth,
      roomAuthorizer: roomAuth,
      sendQueueSize: 256,
      sendTimeout: 5_000,
      sendBehavior: 'drop',
      allowedOrigins: options.chatOrigins ?? ['https://app.example.com'],
    },
    chatHub,
  );
  chat.attach(server);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    server,
    url: `http://${host}:${address.port}`,
    ws,
    chat,
    announce: () => announce(ws.hub),
    inspect: (hub = ws.hub) => inspect(hub),
    shutdown: () => shutdown(server, [ws, chat]),
  };
}

/**
 * Step 3 — Broadcast to a room: a JSON text message to every connection in
 * `chat:general`, then a ping to every connected client across all rooms.
 */
export function announce(hub: Hub): void {
  hub.broadcastRoom(GENERAL_ROOM, Opcode.TEXT, JSON.stringify({ type: 'message', text: 'Hello' }));
  hub.broadcastAll(Opcode.TEXT, JSON.stringify({ type: 'ping' }));
}

/** Step 5 — Inspect hub state: takes a hub, returns its counts and room names. */
export function inspect(hub: Hub): HubState {
  return {
    roomCount: hub.getRoomCount(GENERAL_ROOM),
    registrations: hub.getRoomRegistrationCount(),
    rooms: hub.getRooms().sort(),
  };
}

/**
 * Step 6 — Graceful shutdown: each hub stops accepting, drains its broadcast
 * jobs and closes every connection with 1001 (bounded by 10 s, the seed's
 * context timeout); then the http server stops listening.
 */
export async function shutdown(server: Server, hubs: WshubServer[]): Promise<void> {
  const results = await Promise.allSettled(hubs.map((hub) => hub.shutdown({ timeout: 10_000 })));
  for (const result of results) {
    if (result.status === 'rejected') console.error('websocket shutdown error', result.reason);
  }
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

function requiredSecret(secret: Uint8Array | string | undefined): Uint8Array | string {
  // createWshub has already rejected a missing secret; this only narrows the type.
  if (secret === undefined) throw new Error('WS_SECRET is required');
  return secret;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const app = await startSeedGuide({ port: Number(process.env.PORT ?? 8080) });
  console.log(`seed guide listening on ${app.url} (/ws, /ws/chat, POST /_admin/broadcast)`);
  process.once('SIGINT', () => void app.shutdown());
  process.once('SIGTERM', () => void app.shutdown());
}
