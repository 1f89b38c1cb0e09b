/**
 * wshub next to an Express 5 app on one http server: Express serves the
 * normal routes, wshub takes the upgrades to `/ws` and the admin broadcast
 * endpoint. `attach()` keeps Express as the handler of every other request.
 *
 * Run it (in this repository, after `npm run build`):
 *   WS_SECRET=… WS_BROADCAST_SECRET=… node --import tsx examples/express.ts
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import express from 'express';
import { createWshub, type WshubServer } from 'wshub';

export interface ExampleOptions {
  /** Token secret (≥ 32 bytes). Defaults to `process.env.WS_SECRET`. */
  secret?: Uint8Array | string | undefined;
  /** Admin broadcast secret (≥ 32 bytes, not the token secret). Defaults to `process.env.WS_BROADCAST_SECRET`. */
  broadcastSecret?: Uint8Array | string | undefined;
  port?: number;
  host?: string;
}

/** A running example: its server, its hub, its base URL and a way to stop both. */
export interface RunningExample {
  server: Server;
  ws: WshubServer;
  /** `http://host:port` of the running server. */
  url: string;
  /** Closes every WebSocket with 1001, then stops the http server. */
  close(): Promise<void>;
}

/**
 * Starts the Express app with wshub attached (port 0 picks a free port).
 * Resolves once listening; rejects on a listen error, and with
 * WeakSecretError / SecretReuseError for missing, short or reused secrets.
 */
export async function startExpressExample(options: ExampleOptions = {}): Promise<RunningExample> {
  const ws = createWshub({
    secret: options.secret ?? process.env.WS_SECRET,
    broadcastEnabled: true,
    broadcastSecret: options.broadcastSecret ?? process.env.WS_BROADCAST_SECRET,
  });

  const app = express();
  app.get('/hello', (_req, res) => {
    res.json({ hello: 'world', connections: ws.hub.getActiveConnectionCount() });
  });
  app.get('/healthz', (_req, res) => {
    const health = ws.health();
    res.status(health.status === 'healthy' ? 200 : 503).json(health);
  });

  const server = await new Promise<Server>((resolve, reject) => {
    const listening: Server = app.listen(options.port ?? 0, options.host ?? '127.0.0.1', (error?: Error) =>
      error ? reject(error) : resolve(listening),
    );
  });
  ws.attach(server);

  const address = server.address() as AddressInfo;
  return {
    server,
    ws,
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    close: async () => {
      // The hub first: its connections hold the server open until they close.
      await ws.shutdown({ timeout: 10_000 });
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const running = await startExpressExample({ port: Number(process.env.PORT ?? 3000) });
  console.log(`express + wshub on ${running.url} (GET /hello, /ws, POST /_admin/broadcast)`);
  process.once('SIGINT', () => void running.close());
  process.once('SIGTERM', () => void running.close());
}
