/**
 * `wshub/nats`: the NATS transport for scale-out. A separate entry point so
 * that `wshub` itself never loads the NATS client
 * (`@nats-io/transport-node`), an optional peer dependency installed only by
 * those who use it.
 */
export { NatsTransport, type NatsTransportOptions } from './broker/nats.ts';
export { Cluster, type ClusterMetrics, type ClusterOptions } from './broker/cluster.ts';
export type { Transport } from './broker/transport.ts';
