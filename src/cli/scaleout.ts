/**
 * The scale-out part of `wshub serve`: checks the --broker, --broker-sharded,
 * --broker-cluster, --node-id and --workers flags, builds the Cluster a node (or worker)
 * runs with, logs broker outages, and connects it before the node listens.
 * The Redis or NATS client is loaded only when --broker names it.
 */
import {
  BrokerUrlError,
  Cluster,
  IpcTransport,
  loadBrokerTransport,
  redactBrokerUrl,
  transportFromUrl,
} from '../broker/index.ts';
import type { Transport, TransportEvents, TransportListener } from '../broker/transport.ts';
import type { WshubServer } from '../server/server.ts';
import { UsageError } from './args.ts';
import type { Logger } from './logger.ts';

/** How long a node waits for its broker at start before giving up (exit code 1). */
export const BROKER_CONNECT_TIMEOUT_MS = 10_000;
/** Largest --workers value. */
export const MAX_WORKERS = 256;

/** The scale-out choices of a `serve` run. */
export interface ScaleOutPlan {
  /** --broker URL, if given. */
  broker: string | undefined;
  brokerSharded: boolean;
  /** --broker-cluster: the --broker URLs are Redis Cluster seed nodes. */
  brokerCluster?: boolean | undefined;
  nodeId: string | undefined;
  /** --workers N, if given. */
  workers: number | undefined;
  /** --broker-max-in-flight-bytes, if given (the Cluster's maxInFlightBytes). */
  maxInFlightBytes?: number | undefined;
  /** --broker-max-remote-rooms, if given (the Cluster's maxRemoteRooms). */
  maxRemoteRooms?: number | undefined;
}

/** The scale-out flags as parsed. */
export interface ScaleOutFlags {
  broker?: string | undefined;
  'broker-sharded'?: boolean | undefined;
  'broker-cluster'?: boolean | undefined;
  'node-id'?: string | undefined;
  workers?: string | undefined;
  'broker-max-in-flight-bytes'?: string | undefined;
  'broker-max-remote-rooms'?: string | undefined;
}

/** Checks the scale-out flags; UsageError for every bad value. */
export function planScaleOut(flags: ScaleOutFlags, dev: boolean): ScaleOutPlan {
  const broker = flags.broker;
  const brokerSharded = flags['broker-sharded'] === true;
  const brokerCluster = flags['broker-cluster'] === true;
  if (broker !== undefined) {
    // Building a transport checks the URL without connecting anything.
    brokerTransport(broker, brokerSharded, brokerCluster);
  } else if (brokerSharded) {
    throw new UsageError('--broker-sharded needs --broker redis://…');
  } else if (brokerCluster) {
    throw new UsageError('--broker-cluster needs --broker redis://…');
  }
  const nodeId = flags['node-id'];
  if (nodeId !== undefined && !/^[\x21-\x7e]{1,56}$/.test(nodeId)) {
    throw new UsageError('--node-id must be 1-56 printable ASCII characters without spaces');
  }
  if (nodeId !== undefined && broker === undefined && flags.workers === undefined) {
    throw new UsageError('--node-id needs --broker or --workers');
  }
  let workers: number | undefined;
  if (flags.workers !== undefined) {
    if (!/^\d+$/.test(flags.workers)) {
      throw new UsageError(`--workers must be a whole number, got "${flags.workers}"`);
    }
    workers = Number(flags.workers);
    if (workers < 1 || workers > MAX_WORKERS) {
      throw new UsageError(`--workers must be between 1 and ${MAX_WORKERS}, got ${flags.workers}`);
    }
    if (dev) throw new UsageError('--dev cannot be combined with --workers');
  }
  const maxInFlightBytes = flags['broker-max-in-flight-bytes'];
  if (maxInFlightBytes !== undefined) {
    if (
      !/^\d+$/.test(maxInFlightBytes) ||
      !Number.isSafeInteger(Number(maxInFlightBytes)) ||
      Number(maxInFlightBytes) < 1
    ) {
      throw new UsageError(
        `--broker-max-in-flight-bytes must be a whole number of at least 1, got "${maxInFlightBytes}"`,
      );
    }
    if (broker === undefined && workers === undefined) {
      throw new UsageError('--broker-max-in-flight-bytes needs --broker or --workers');
    }
  }
  const maxRemoteRooms = flags['broker-max-remote-rooms'];
  if (maxRemoteRooms !== undefined) {
    if (
      !/^\d+$/.test(maxRemoteRooms) ||
      !Number.isSafeInteger(Number(maxRemoteRooms)) ||
      Number(maxRemoteRooms) < 1
    ) {
      throw new UsageError(
        `--broker-max-remote-rooms must be a whole number of at least 1, got "${maxRemoteRooms}"`,
      );
    }
    if (broker === undefined && workers === undefined) {
      throw new UsageError('--broker-max-remote-rooms needs --broker or --workers');
    }
  }
  return {
    broker,
    brokerSharded,
    brokerCluster,
    nodeId,
    workers,
    maxInFlightBytes: maxInFlightBytes === undefined ? undefined : Number(maxInFlightBytes),
    maxRemoteRooms: maxRemoteRooms === undefined ? undefined : Number(maxRemoteRooms),
  };
}

function brokerTransport(url: string, sharded: boolean, cluster: boolean | undefined): Transport {
  try {
    return transportFromUrl(url, { sharded, cluster: cluster === true });
  } catch (error) {
    if (error instanceof BrokerUrlError) throw new UsageError(`--broker: ${error.message}`);
    throw error;
  }
}

/**
 * Loads the client package the --broker URL needs (`redis` or
 * `@nats-io/transport-node`, optional peer dependencies), so that a missing
 * one stops the command before any worker starts, with a message that says
 * what to install.
 */
export async function loadBrokerClient(plan: ScaleOutPlan): Promise<void> {
  if (plan.broker === undefined) return;
  await loadBrokerTransport(
    brokerTransport(plan.broker, plan.brokerSharded, plan.brokerCluster).kind === 'nats' ? 'nats' : 'redis',
  );
}

/**
 * The Cluster of this node: over the --broker transport, or over the
 * primary's IPC relay in a --workers worker without a broker. `workerId`
 * (a worker's number) is appended to --node-id so ids stay unique. Returns
 * undefined when the node runs alone.
 */
export function buildCluster(plan: ScaleOutPlan, logger: Logger, workerId?: number): Cluster | undefined {
  let transport: Transport;
  if (plan.broker !== undefined)
    transport = brokerTransport(plan.broker, plan.brokerSharded, plan.brokerCluster);
  else if (workerId !== undefined) transport = new IpcTransport();
  else return undefined;
  const nodeId =
    plan.nodeId !== undefined && workerId !== undefined ? `${plan.nodeId}-${workerId}` : plan.nodeId;
  const cluster = new Cluster({
    transport: new LoggedTransport(transport, logger),
    nodeId,
    maxInFlightBytes: plan.maxInFlightBytes,
    maxRemoteRooms: plan.maxRemoteRooms,
  });
  cluster.onError = (error) => logger.warn('broker_error', { kind: transport.kind, error: error.message });
  return cluster;
}

/**
 * Connects the cluster (if any) before the node listens. No retry: an
 * unreachable broker at start is reported on one stderr line and the
 * caller exits with code 1, leaving restarts to the process supervisor.
 * Returns whether the node may go on.
 */
export async function connectCluster(
  ws: WshubServer,
  plan: ScaleOutPlan,
  /** The --state Redis URL, if any (also connected by ws.start()). */
  state?: string,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${BROKER_CONNECT_TIMEOUT_MS} ms`)),
      BROKER_CONNECT_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([ws.start(), timeout]);
    return true;
  } catch (error) {
    const what =
      plan.broker !== undefined
        ? `broker ${redactBrokerUrl(plan.broker)}`
        : state !== undefined
          ? `state ${redactBrokerUrl(state)}`
          : 'the primary process';
    const detail = error instanceof Error ? error.message : String(error);
    process.stderr.write(`wshub: cannot connect to ${what}: ${oneLine(detail)}\n`);
    await ws.shutdown({ timeout: 0 }).catch(() => {});
    return false;
  } finally {
    clearTimeout(timer);
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim() || 'connection failed';
}

/**
 * A Transport wrapper that logs the connection going down and coming back
 * (Cluster has no hook for these) and otherwise passes everything through.
 */
export class LoggedTransport implements Transport {
  constructor(
    private readonly inner: Transport,
    private readonly logger: Logger,
  ) {}

  get kind(): string {
    return this.inner.kind;
  }

  get connected(): boolean {
    return this.inner.connected;
  }

  start(listener: TransportListener, events: TransportEvents): Promise<void> {
    const kind = this.inner.kind;
    return this.inner.start(listener, {
      up: () => {
        this.logger.info('broker_up', { kind });
        events.up?.();
      },
      down: (error) => {
        this.logger.error('broker_down', { kind, error: error?.message });
        // Logged here already; passing the error on would log it again through Cluster.onError.
        events.down?.();
      },
      error: (error) => events.error?.(error),
    });
  }

  subscribe(channels: string[]): Promise<void> {
    return this.inner.subscribe(channels);
  }

  unsubscribe(channels: string[]): Promise<void> {
    return this.inner.unsubscribe(channels);
  }

  publish(channel: string, payload: Buffer): Promise<void> {
    return this.inner.publish(channel, payload);
  }

  close(timeoutMs?: number): Promise<void> {
    return this.inner.close(timeoutMs);
  }
}
