/**
 * A TCP proxy on a free loopback port in front of a server, whose replies
 * on chosen connections reach the client late (every chunk held the lag of
 * the moment it arrived, order kept): a slow path for one of a client's
 * connections, such as the pub/sub connection of a Redis client whose
 * command connection stays fast.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface LaggingProxy {
  port: number;
  /** Changes the lag of chunks that arrive from now on (earlier ones keep theirs; order is kept). */
  setLag(ms: number): void;
  stop(): Promise<void>;
}

/**
 * Proxies to `target` (host:port); the `lagged(n)` callback says which
 * accepted connections (0 = the first) get their server→client bytes late.
 */
export async function startLaggingProxy(
  target: { host: string; port: number },
  lagMs: number,
  lagged: (index: number) => boolean,
): Promise<LaggingProxy> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let currentLag = lagMs;
  const server: Server = createServer((client) => {
    const lag = lagged(accepted++);
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    // When each chunk goes out: never before an earlier one, so a shorter lag cannot reorder them.
    let lastRelease = 0;
    const releaseIn = (): number => {
      lastRelease = Math.max(Date.now() + currentLag, lastRelease);
      return lastRelease - Date.now();
    };
    if (!lag) upstream.pipe(client);
    else
      upstream.on('data', (chunk: Buffer) => {
        setTimeout(() => {
          if (!client.destroyed) client.write(chunk);
        }, releaseIn());
      });
    upstream.on('end', () => setTimeout(() => client.end(), lag ? releaseIn() : 0));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    setLag(ms) {
      currentLag = ms;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
