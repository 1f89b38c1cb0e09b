/** Both Redis transports, loaded together when a redis:// broker starts. */
export { RedisTransport, type RedisTransportOptions } from './redis.ts';
export { RedisClusterTransport, type RedisClusterTransportOptions } from './redis-cluster.ts';
