/**
 * Channels with the official Centrifuge SDKs: a `chat` namespace whose
 * subscribers may publish, with history, recovery, presence and join/leave;
 * an RPC method; a token endpoint for the page; and the server API, which
 * Centrifugo's server SDKs call unchanged.
 *
 * Run it (in this repository, after `npm run build`):
 *   WS_SECRET=… WS_API_KEY=… node --import tsx examples/channels.ts
 * then connect with `new Centrifuge('ws://127.0.0.1:3000/connection/websocket', { getToken })`,
 * where getToken fetches `GET /token?user=alice`, and publish with
 *   curl -H "X-API-Key: $WS_API_KEY" -d '{"channel":"chat:general","data":{"text":"hi"}}' \
 *        http://127.0.0.1:3000/api/publish
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { createWshub, ReplyErrorException, signHS256, type WshubServer } from 'wshub';

export interface ChannelsExampleOptions {
  /** Token secret (≥ 32 bytes). Defaults to `process.env.WS_SECRET`. */
  secret?: Uint8Array | string | undefined;
  /** Server API key (≥ 32 bytes, not the secret). Defaults to `process.env.WS_API_KEY`. */
  apiKey?: Uint8Array | string | undefined;
  port?: number;
  host?: string;
}

export interface RunningChannelsExample {
  server: Server;
  ws: WshubServer;
  /** `http://host:port` of the running server. */
  url: string;
  close(): Promise<void>;
}

/** Starts the example (port 0 picks a free port); rejects on a listen or configuration error. */
export async function startChannelsExample(
  options: ChannelsExampleOptions = {},
): Promise<RunningChannelsExample> {
  const secret = options.secret ?? process.env.WS_SECRET;
  const ws = createWshub({
    secret,
    apiKey: options.apiKey ?? process.env.WS_API_KEY,
    channels: {
      namespaces: [
        {
          name: 'chat',
          allowSubscribeForClient: true,
          allowPublishForSubscriber: true,
          historySize: 100,
          historyTtl: 10 * 60_000,
          forceRecovery: true,
          presence: true,
          allowPresenceForSubscriber: true,
          joinLeave: true,
          forcePushJoinLeave: true,
        },
      ],
    },
    channelHooks: {
      // client.rpc('time', {}) → { now: … }; any other method is the protocol's 104.
      onRpc: ({ method }) => {
        if (method === 'time') return { now: Date.now() };
        throw new ReplyErrorException({ code: 104, message: 'method not found' });
      },
    },
  });

  // A toy token endpoint: a real application authenticates the user first.
  const server = ws.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const user = url.searchParams.get('user');
    if (
      url.pathname !== '/token' ||
      user === null ||
      !/^[a-z0-9_-]{1,32}$/i.test(user) ||
      secret === undefined
    ) {
      response.writeHead(404).end();
      return;
    }
    void signHS256({ sub: user, info: { name: user } }, secret, { expiresInSeconds: 300 }).then((token) =>
      response.writeHead(200, { 'content-type': 'text/plain' }).end(token),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    server,
    ws,
    url: `http://${address.address}:${address.port}`,
    close: async () => {
      await ws.shutdown({ timeout: 10_000 });
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const running = await startChannelsExample({ port: Number(process.env.PORT ?? 3000) });
  console.log(`wshub channels on ${running.url} (/connection/websocket, GET /token?user=…, POST /api/…)`);
  process.once('SIGINT', () => void running.close());
  process.once('SIGTERM', () => void running.close());
}
