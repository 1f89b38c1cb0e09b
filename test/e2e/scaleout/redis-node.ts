/**
 * One wshub node in its own process, for tests that must kill a node for
 * real (SIGKILL):
 * `node --import tsx redis-node.ts <redisUrl> <presenceIntervalMs> [single|cluster]`
 * (with `cluster`, redisUrl is the comma-separated seed nodes of a Redis Cluster).
 * Serves unauthenticated clients on a free loopback port, shares rooms
 * through Redis, and prints `listening on http://127.0.0.1:<port>`.
 */
import { Cluster } from '../../../src/broker/cluster.ts';
import { RedisClusterTransport } from '../../../src/broker/redis-cluster.ts';
import { RedisTransport } from '../../../src/broker/redis.ts';
import { createWshub } from '../../../src/server/server.ts';

const [url, interval, mode] = process.argv.slice(2);
if (url === undefined)
  throw new Error('usage: redis-node.ts <redisUrl> [presenceIntervalMs] [single|cluster]');
const ws = createWshub({
  allowUnauthenticated: true,
  pingPeriod: 0,
  cluster: new Cluster({
    transport:
      mode === 'cluster'
        ? new RedisClusterTransport({ rootNodes: url.split(',') })
        : new RedisTransport({ url }),
    presenceInterval: Number(interval ?? 1_000),
  }),
});
await ws.start();
const server = ws.createServer();
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.stdout.write(`listening on http://127.0.0.1:${port}\n`);
});
process.on('SIGTERM', () => {
  void ws.shutdown({ timeout: 500 }).then(() => server.close(() => process.exit(0)));
});
