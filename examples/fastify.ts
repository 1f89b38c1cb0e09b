/**
 * wshub next to a Fastify 5 app on one http server. Fastify serves its
 * routes; wshub is attached to `fastify.server` once Fastify is ready, takes
 * the upgrades to `/ws` and the admin broadcast endpoint, and is shut down
 * from Fastify's `preClose` hook so `fastify.close()` stops both.
 *
 * Run it (in this repository, after `npm run build`):
 *   WS_SECRET=… WS_BROADCAST_SECRET=… node --import tsx examples/fastify.ts
 */
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import Fastify from 'fastify';
import { createWshub } from 'wshub';
import type { ExampleOptions, RunningExample } from './express.ts';

/**
 * Starts the Fastify app with wshub attached (port 0 picks a free port).
 * Resolves once listening; rejects on a listen error, and with
 * WeakSecretError / SecretReuseError for missing, short or reused secrets.
 */
export async function startFastifyExample(options: ExampleOptions = {}): Promise<RunningExample> {
  const ws = createWshub({
    secret: options.secret ?? process.env.WS_SECRET,
    broadcastEnabled: true,
    broadcastSecret: options.broadcastSecret ?? process.env.WS_BROADCAST_SECRET,
  });

  const fastify = Fastify({ logger: false });
  fastify.get('/hello', () => ({ hello: 'world', connections: ws.hub.getActiveConnectionCount() }));
  fastify.get('/healthz', async (_request, reply) => {
    const health = ws.health();
    return reply.code(health.status === 'healthy' ? 200 : 503).send(health);
  });
  // Before the server stops listening and waits for its sockets: WebSocket
  // connections get their 1001 close frame first.
  fastify.addHook('preClose', async () => {
    await ws.shutdown({ timeout: 10_000 });
  });

  // Attach after `ready()`, when Fastify has installed its own request handler.
  await fastify.ready();
  ws.attach(fastify.server);
  await fastify.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' });

  const address = fastify.server.address() as AddressInfo;
  return {
    server: fastify.server,
    ws,
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    close: () => fastify.close(),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const running = await startFastifyExample({ port: Number(process.env.PORT ?? 3000) });
  console.log(`fastify + wshub on ${running.url} (GET /hello, /ws, POST /_admin/broadcast)`);
  process.once('SIGINT', () => void running.close());
  process.once('SIGTERM', () => void running.close());
}
