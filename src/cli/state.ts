/**
 * The channel-state part of `wshub serve`: the --state, --state-cluster and
 * --state-presence-ttl flags, and the channel engine they give.
 *
 * - `--state memory`: history and presence per node (the default without
 *   a Redis broker).
 * - `--state redis://…` (or `rediss://…`): history and presence in that Redis,
 *   shared by every node.
 * - No --state with `--broker redis://X`: state in the same Redis X (a Redis
 *   Cluster with --broker-cluster; sharded pub/sub with --broker-sharded).
 *   `--state memory` keeps it per node.
 * - With `--broker nats://…`, --state redis://… keeps history and presence in
 *   Redis while NATS carries rooms and channels without history.
 */
import { loadBrokerTransport } from '../broker/index.ts';
import type { ChannelEngine } from '../channels/engine.ts';
import { UsageError } from './args.ts';
import type { Logger } from './logger.ts';

/** The channel-state choices of a `serve` run. */
export interface StatePlan {
  /** Redis URL of the shared state; undefined: in memory, per node. */
  redis: string | undefined;
  /** A Redis Cluster (createCluster, sharded pub/sub); `redis` may then list several seed nodes, comma-separated. */
  cluster: boolean;
  /** Sharded pub/sub on one Redis server. */
  sharded: boolean;
  /** --state-presence-ttl (ms), if given. */
  presenceTtl: number | undefined;
}

/** The state flags as parsed. */
export interface StateFlags {
  state?: string | undefined;
  'state-cluster'?: boolean | undefined;
  'state-presence-ttl'?: string | undefined;
  broker?: string | undefined;
  'broker-sharded'?: boolean | undefined;
  'broker-cluster'?: boolean | undefined;
}

const REDIS_URL = /^rediss?:\/\//;

/** Checks the state flags against the broker's; UsageError for every bad combination. */
export function planState(flags: StateFlags): StatePlan {
  const state = flags.state;
  let redis: string | undefined;
  let cluster = flags['state-cluster'] === true;
  let sharded = false;
  if (state === undefined) {
    if (flags.broker !== undefined && REDIS_URL.test(flags.broker)) {
      redis = flags.broker;
      cluster ||= flags['broker-cluster'] === true;
      sharded = flags['broker-sharded'] === true;
    }
  } else if (state !== 'memory') {
    const urls = state.split(',');
    if (!urls.every((url) => REDIS_URL.test(url)))
      throw new UsageError(`--state must be memory, redis://… or rediss://…, got "${state}"`);
    if (urls.length > 1 && !cluster)
      throw new UsageError('--state lists several URLs only with --state-cluster');
    for (const url of urls) {
      try {
        new URL(url);
      } catch {
        throw new UsageError('--state: not a valid URL');
      }
    }
    redis = state;
  }
  if (redis === undefined && flags['state-cluster'] === true)
    throw new UsageError('--state-cluster needs --state redis://…');
  const ttl = flags['state-presence-ttl'];
  let presenceTtl: number | undefined;
  if (ttl !== undefined) {
    if (redis === undefined) throw new UsageError('--state-presence-ttl needs state in Redis');
    presenceTtl = Number(ttl);
    if (!/^\d+$/.test(ttl) || presenceTtl < 1 || presenceTtl > 2 ** 31 - 1)
      throw new UsageError(
        `--state-presence-ttl must be a whole number of ms from 1 to 2147483647, got "${ttl}"`,
      );
  }
  return { redis, cluster, sharded, presenceTtl };
}

/** Loads the `redis` client when the plan needs it (a missing one stops `serve` before any worker starts). */
export async function loadStateClient(plan: StatePlan): Promise<void> {
  if (plan.redis !== undefined) await loadBrokerTransport('redis');
}

/** The channel engine of the plan (undefined: the in-memory default), logging its errors. */
export async function buildChannelEngine(
  plan: StatePlan,
  logger: Logger,
): Promise<ChannelEngine | undefined> {
  if (plan.redis === undefined) return undefined;
  await loadStateClient(plan);
  const { RedisEngine } = await import('../channels/engine-redis.ts');
  const engine = new RedisEngine({
    url: plan.redis,
    cluster: plan.cluster,
    sharded: plan.sharded,
    ...(plan.presenceTtl === undefined ? {} : { presenceTtl: plan.presenceTtl }),
  });
  engine.onError = (error) => logger.warn('state_error', { kind: 'redis', error: error.message });
  return engine;
}
