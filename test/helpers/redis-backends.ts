/**
 * The Redis deployments scale-out tests run against, behind one interface:
 * a single redis-server and a 3-master Redis Cluster. A test file loops over
 * REDIS_BACKENDS instead of being copied per deployment.
 *
 *   for (const backend of REDIS_BACKENDS) {
 *     describe(`rooms over ${backend.name}`, backend.requirement(), () => {
 *       before(async () => (redis = await backend.start()));
 *       ... redis.transport() ... redis.cliArgs ...
 *     });
 *   }
 */
import { createClient } from 'redis';
import { RedisClusterTransport } from '../../src/broker/redis-cluster.ts';
import { RedisTransport } from '../../src/broker/redis.ts';
import type { Transport } from '../../src/broker/transport.ts';
import { redisSlot } from '../../src/broker/redis-slot.ts';
import type { SkipOption } from './binaries.ts';
import { redisClusterRequirement, startRedisCluster, type RedisCluster } from './redis-cluster.ts';
import { redisRequirement, startRedis, type RedisServer } from './redis.ts';

/** Redis's own count of a channel's subscribers, asked through a plain client. */
export interface RedisView {
  /** Subscribers of `channel`: SHARDNUMSUB when `sharded`, else NUMSUB (summed over masters on a cluster). */
  subscribers(channel: string, sharded: boolean): Promise<number>;
  close(): void;
}

/** A running Redis deployment. */
export interface RunningRedis {
  /** `--broker` value: one URL, or the cluster's seed URLs comma-separated. */
  readonly url: string;
  /** The `wshub serve` flags that select it. */
  readonly cliArgs: string[];
  /** Whether it is a Redis Cluster (pub/sub is then always sharded). */
  readonly cluster: boolean;
  /** A transport for it (`sharded` applies to a single server; a cluster is always sharded). */
  transport(options?: { sharded?: boolean }): Transport;
  /** A plain client asking Redis for its own view of subscriptions. */
  view(): Promise<RedisView>;
  /**
   * Kills the server a channel lives on (the single server, or the master
   * owning the channel's slot) and returns a function that starts it again on
   * the same port and waits until the deployment is healthy.
   */
  killOwnerOf(channel: string): Promise<() => Promise<void>>;
  /** SIGSTOP / SIGCONT of every server process. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

export interface RedisBackend {
  /** For test titles: "redis" or "redis cluster". */
  readonly name: string;
  readonly cluster: boolean;
  requirement(): SkipOption;
  start(): Promise<RunningRedis>;
}

function standalone(redis: RedisServer): RunningRedis {
  return {
    url: redis.url,
    cliArgs: ['--broker', redis.url],
    cluster: false,
    transport: (options = {}) => new RedisTransport({ url: redis.url, sharded: options.sharded ?? false }),
    async view() {
      const client = createClient({ url: redis.url });
      client.on('error', () => {});
      await client.connect();
      return {
        async subscribers(channel, sharded) {
          if (!sharded) return (await client.pubSubNumSub(channel))[channel] ?? -1;
          const reply = await client.sendCommand<[string, number]>(['PUBSUB', 'SHARDNUMSUB', channel]);
          return Number(reply[1]);
        },
        close: () => client.destroy(),
      };
    },
    async killOwnerOf() {
      await redis.kill();
      return () => redis.restart();
    },
    pause: () => redis.pause(),
    resume: () => redis.resume(),
    stop: () => redis.stop(),
  };
}

function clustered(cluster: RedisCluster): RunningRedis {
  const url = cluster.rootUrls.join(',');
  return {
    url,
    cliArgs: ['--broker', url, '--broker-cluster'],
    cluster: true,
    transport: () => new RedisClusterTransport({ rootNodes: cluster.rootUrls }),
    view() {
      return Promise.resolve({
        async subscribers(channel: string, sharded: boolean) {
          if (sharded) {
            // Asked of the master that owns the channel's slot, as it is now.
            const port = await cluster.ownerOf(redisSlot(channel));
            const lines = (await cluster.command(port, 'PUBSUB', 'SHARDNUMSUB', channel)).trim().split('\n');
            return Number(lines[1] ?? -1);
          }
          // Classic subscriptions are per node: add up every master's.
          let total = 0;
          for (const port of cluster.ports) {
            const lines = (await cluster.command(port, 'PUBSUB', 'NUMSUB', channel)).trim().split('\n');
            total += Number(lines[1] ?? 0);
          }
          return total;
        },
        close: () => {},
      });
    },
    async killOwnerOf(channel) {
      const port = await cluster.ownerOf(redisSlot(channel));
      const node = cluster.nodes.find((n) => n.port === port)!;
      await node.kill();
      return async () => {
        await node.restart();
        await cluster.waitHealthy();
      };
    },
    pause() {
      for (const node of cluster.nodes) node.pause();
    },
    resume() {
      for (const node of cluster.nodes) node.resume();
    },
    stop: () => cluster.stop(),
  };
}

/** A single redis-server, and a 3-master Redis Cluster. */
export const REDIS_BACKENDS: readonly RedisBackend[] = [
  {
    name: 'redis',
    cluster: false,
    requirement: redisRequirement,
    start: async () => standalone(await startRedis()),
  },
  {
    name: 'redis cluster',
    cluster: true,
    requirement: redisClusterRequirement,
    start: async () => clustered(await startRedisCluster()),
  },
];
