/**
 * Scale-out entry point: the Cluster, the transports, and transportFromUrl
 * which picks a transport from a broker URL (what `wshub serve --broker`
 * takes).
 */
import { WshubError } from '../errors.ts';
import { NatsTransport } from './nats.ts';
import { RedisTransport } from './redis.ts';
import type { Transport } from './transport.ts';

export { Cluster, PRESENCE_MAX_BYTES, PRESENCE_MAX_PARTS, PRESENCE_MAX_ROOMS } from './cluster.ts';
export type { ClusterDelivery, ClusterMetrics, ClusterOptions } from './cluster.ts';
export { MemoryBus, MemoryTransport } from './memory.ts';
export { IpcRelay, IpcTransport } from './ipc.ts';
export type { IpcDelivery, IpcEndpoint, IpcRelayMetrics, IpcUpstream, RelayPeer } from './ipc.ts';
export type { Transport, TransportEvents, TransportListener } from './transport.ts';
export { NatsTransport } from './nats.ts';
export { RedisTransport } from './redis.ts';

/** A broker URL that names no supported messaging system, or is malformed. */
export class BrokerUrlError extends WshubError {
  constructor(message: string) {
    super('INVALID_BROKER_URL', message);
  }
}

/** Options of transportFromUrl. */
export interface TransportFromUrlOptions {
  /** Redis only: sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis ≥ 7) for Redis Cluster. */
  sharded?: boolean;
}

/**
 * Returns `url` with any password replaced by "***", for logs and error
 * messages. Unparsable input comes back unchanged.
 */
export function redactBrokerUrl(url: string): string {
  return url
    .split(',')
    .map((part) => {
      try {
        const parsed = new URL(part.trim());
        if (parsed.password !== '') parsed.password = '***';
        return parsed.toString().replace(/\/$/, '');
      } catch {
        return part;
      }
    })
    .join(',');
}

/**
 * Creates the transport for a broker URL: `redis://` and `rediss://` →
 * RedisTransport, `nats://` → NatsTransport (several NATS servers may be
 * given comma-separated). Nothing connects until the transport is started.
 * Throws BrokerUrlError for any other scheme, a malformed URL, or `sharded`
 * with a non-Redis URL.
 */
export function transportFromUrl(url: string, options: TransportFromUrlOptions = {}): Transport {
  const parts = url.split(',').map((part) => part.trim());
  const parsed = parts.map((part) => {
    let u: URL;
    try {
      u = new URL(part);
    } catch {
      throw new BrokerUrlError(
        `broker URL must look like redis://HOST:PORT or nats://HOST:PORT, got "${redactBrokerUrl(part)}"`,
      );
    }
    if (u.hostname === '') throw new BrokerUrlError(`broker URL has no host: "${redactBrokerUrl(part)}"`);
    return u;
  });
  const schemes = new Set(parsed.map((u) => u.protocol));
  if (schemes.size !== 1) throw new BrokerUrlError('all broker URLs must use the same scheme');
  const scheme = parsed[0]!.protocol;
  switch (scheme) {
    case 'redis:':
    case 'rediss:':
      if (parts.length !== 1) throw new BrokerUrlError('give exactly one redis:// URL');
      return new RedisTransport({ url: parts[0]!, sharded: options.sharded === true });
    case 'nats:':
      if (options.sharded === true)
        throw new BrokerUrlError('sharded pub/sub applies to redis:// brokers only');
      return new NatsTransport({ servers: parts.length === 1 ? parts[0]! : parts });
    default:
      throw new BrokerUrlError(
        `unsupported broker URL scheme "${scheme}" (use redis://, rediss:// or nats://)`,
      );
  }
}
