/**
 * `wshub/redis`: the Redis pub/sub transports for scale-out (one Redis
 * server, or a Redis Cluster) and the Redis channel engine (history and
 * presence shared by nodes). A separate entry
 * point so that `wshub` itself never loads the `redis` client, an optional
 * peer dependency installed only by those who use it.
 */
export { RedisTransport, type RedisTransportOptions } from './broker/redis.ts';
export { RedisClusterTransport, type RedisClusterTransportOptions } from './broker/redis-cluster.ts';
export { Cluster, type ClusterMetrics, type ClusterOptions } from './broker/cluster.ts';
export type { Transport } from './broker/transport.ts';
export { RedisEngine, RedisEngineError, type RedisEngineOptions } from './channels/engine-redis.ts';
export type { ChannelEngine } from './channels/engine.ts';
