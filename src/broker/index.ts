/**
 * Scale-out without a messaging client: the Cluster, the in-process and IPC
 * transports, and transportFromUrl. The Redis and NATS transports live in
 * their own entry points (`wshub/redis`, `wshub/nats`) because their clients
 * are optional peer dependencies that take a few hundred milliseconds to
 * load; transportFromUrl imports the one a URL names only when it starts.
 */
import { WshubError } from '../errors.ts';
import type { NatsTransportOptions } from './nats.ts';
import type { RedisTransportOptions } from './redis.ts';
import type { RedisClusterTransportOptions } from './redis-cluster.ts';
import type { Transport, TransportEvents, TransportListener } from './transport.ts';

export { Cluster, PRESENCE_MAX_BYTES, PRESENCE_MAX_PARTS, PRESENCE_MAX_ROOMS } from './cluster.ts';
export type { ClusterDelivery, ClusterMetrics, ClusterOptions } from './cluster.ts';
export { MemoryBus, MemoryTransport } from './memory.ts';
export { IpcRelay, IpcTransport } from './ipc.ts';
export type { IpcDelivery, IpcEndpoint, IpcRelayMetrics, IpcUpstream, RelayPeer } from './ipc.ts';
export type { Transport, TransportEvents, TransportListener } from './transport.ts';

/** A broker URL that names no supported messaging system, or is malformed. */
export class BrokerUrlError extends WshubError {
  constructor(message: string) {
    super('INVALID_BROKER_URL', message);
  }
}

/** Options of transportFromUrl. */
export interface TransportFromUrlOptions {
  /** Redis only: sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis ≥ 7). Implied by `cluster`. */
  sharded?: boolean;
  /**
   * Redis only: the URLs are seed nodes of a Redis Cluster, served through
   * the cluster client with sharded pub/sub (a RedisClusterTransport).
   */
  cluster?: boolean;
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
 * a RedisTransport (with `cluster`: a RedisClusterTransport, the URLs —
 * several may be given comma-separated — being seed nodes), `nats://` → a
 * NatsTransport (several NATS servers may be given comma-separated). Nothing
 * connects, and the client package (`redis` or `@nats-io/transport-node`) is
 * not even loaded, until the transport is started; `start()` rejects with
 * BrokerClientMissingError when that package is not installed.
 * Throws BrokerUrlError for any other scheme, a malformed URL, or `sharded`
 * or `cluster` with a non-Redis URL.
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
      if (options.cluster === true) return new DeferredTransport('redis', { rootNodes: parts });
      if (parts.length !== 1) {
        throw new BrokerUrlError('give exactly one redis:// URL (several only as Redis Cluster seed nodes)');
      }
      return new DeferredTransport('redis', { url: parts[0]!, sharded: options.sharded === true });
    case 'nats:':
      if (options.sharded === true)
        throw new BrokerUrlError('sharded pub/sub applies to redis:// brokers only');
      if (options.cluster === true)
        throw new BrokerUrlError('Redis Cluster applies to redis:// brokers only');
      return new DeferredTransport('nats', { servers: parts.length === 1 ? parts[0]! : parts });
    default:
      throw new BrokerUrlError(
        `unsupported broker URL scheme "${scheme}" (use redis://, rediss:// or nats://)`,
      );
  }
}

/** The messaging systems transportFromUrl knows. */
export type BrokerKind = 'redis' | 'nats';

/** The npm package (an optional peer dependency of wshub) that each broker kind loads. */
const CLIENT_PACKAGE: Readonly<Record<BrokerKind, string>> = {
  redis: 'redis',
  nats: '@nats-io/transport-node',
};

/** The package a broker URL needs (an optional peer dependency of wshub) is not installed. */
export class BrokerClientMissingError extends WshubError {
  /** The npm package to install: "redis" or "@nats-io/transport-node". */
  readonly packageName: string;

  constructor(
    /** The kind of broker the URL named. */
    readonly kind: BrokerKind,
    cause?: unknown,
  ) {
    const packageName = CLIENT_PACKAGE[kind];
    super(
      'BROKER_CLIENT_MISSING',
      `a ${kind}:// broker needs the "${packageName}" package, which is not installed (npm install ${packageName})`,
    );
    this.packageName = packageName;
    if (cause !== undefined) this.cause = cause;
  }
}

interface BrokerSettings {
  redis: RedisTransportOptions | RedisClusterTransportOptions;
  nats: NatsTransportOptions;
}

const loaded = new Map<BrokerKind, Promise<unknown>>();

/**
 * Loads the transport module of `kind` (and with it its client package) once.
 * Rejects with BrokerClientMissingError when the client package is missing,
 * so a caller can fail early with a message that says what to install.
 */
export function loadBrokerTransport(kind: 'redis'): Promise<typeof import('./redis-transports.ts')>;
export function loadBrokerTransport(kind: 'nats'): Promise<typeof import('./nats.ts')>;
export function loadBrokerTransport(kind: BrokerKind): Promise<unknown>;
export function loadBrokerTransport(kind: BrokerKind): Promise<unknown> {
  let module = loaded.get(kind);
  if (module === undefined) {
    const load = kind === 'redis' ? import('./redis-transports.ts') : import('./nats.ts');
    module = load.catch((error: unknown) => {
      loaded.delete(kind);
      throw isMissingPackage(error, CLIENT_PACKAGE[kind]) ? new BrokerClientMissingError(kind, error) : error;
    });
    loaded.set(kind, module);
  }
  return module;
}

function isMissingPackage(error: unknown, name: string): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    typeof message === 'string' &&
    (message.includes(`'${name}'`) || message.includes(`"${name}"`))
  );
}

/**
 * The transport transportFromUrl returns: it knows its kind and settings at
 * once (so a bad URL fails before anything starts) and builds the real
 * transport when started, which is when the client package gets loaded.
 */
class DeferredTransport<K extends BrokerKind> implements Transport {
  /** The transport's kind, as the real one will report it ("redis", "redis-cluster" or "nats"). */
  readonly kind: string;
  private inner: Transport | null = null;
  private closed = false;

  constructor(
    private readonly client: K,
    private readonly settings: BrokerSettings[K],
  ) {
    this.kind = 'rootNodes' in settings ? 'redis-cluster' : client;
  }

  get connected(): boolean {
    return this.inner?.connected ?? false;
  }

  async start(listener: TransportListener, events: TransportEvents): Promise<void> {
    if (this.inner !== null) throw new Error(`${this.kind} transport already started`);
    const inner = await this.create();
    if (this.closed) throw new Error(`${this.kind} transport closed before it started`);
    this.inner = inner;
    await inner.start(listener, events);
  }

  private async create(): Promise<Transport> {
    if (this.client === 'redis') {
      const { RedisTransport, RedisClusterTransport } = await loadBrokerTransport('redis');
      const settings = this.settings as BrokerSettings['redis'];
      return 'rootNodes' in settings ? new RedisClusterTransport(settings) : new RedisTransport(settings);
    }
    const { NatsTransport } = await loadBrokerTransport('nats');
    return new NatsTransport(this.settings as NatsTransportOptions);
  }

  private started(): Transport {
    if (this.inner === null) throw new Error(`${this.kind} transport not started`);
    return this.inner;
  }

  async subscribe(channels: string[]): Promise<void> {
    await this.started().subscribe(channels);
  }

  async unsubscribe(channels: string[]): Promise<void> {
    await this.started().unsubscribe(channels);
  }

  publish(channel: string, payload: Buffer): Promise<void> {
    // Not async: a publish before start rejects like one on the real transport, without an extra tick afterwards.
    if (this.inner === null) return Promise.reject(new Error(`${this.kind} transport not started`));
    return this.inner.publish(channel, payload);
  }

  async close(timeoutMs?: number): Promise<void> {
    this.closed = true;
    await this.inner?.close(timeoutMs);
  }
}
