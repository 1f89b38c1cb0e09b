/**
 * wshub's metrics in the Prometheus text format through prom-client. The
 * counters and gauges stay plain numbers in wshub's own structures and are
 * read once per scrape (collect callbacks over one `metrics()` snapshot);
 * the two duration histograms are LatencyHistograms the hot path fills
 * without prom-client. Nothing goes into prom-client's global registry
 * unless that registry is the one passed in.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { constantTimeEqual } from '../auth/security.ts';
import { HttpRejection, refusal, sendRejection } from '../http/rejections.ts';
import type { ServerMetrics, WshubServer } from '../server/server.ts';
import { FANOUT_HISTOGRAM, METRIC_SPECS, QUEUE_DELAY_HISTOGRAM, type HistogramSpec } from './catalog.ts';
import type { LatencyHistogram } from './latency-histogram.ts';

/** The content type of the Prometheus text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** A prom-client Histogram whose values come from a LatencyHistogram at scrape time. */
class RecordedHistogram extends Histogram {
  private readonly spec: HistogramSpec;
  private readonly source: LatencyHistogram;

  constructor(spec: HistogramSpec, source: LatencyHistogram) {
    super({ name: spec.name, help: spec.help, buckets: [...source.bounds], registers: [] });
    this.spec = spec;
    this.source = source;
  }

  /** The histogram as prom-client's registry renders it (cumulative `le` buckets, sum, count). */
  override async get(): Promise<Awaited<ReturnType<Histogram['get']>>> {
    return Promise.resolve(this.snapshot());
  }

  /** Used by the registry's text rendering in place of get(); same values. */
  getForPromString(): Promise<Awaited<ReturnType<Histogram['get']>>> {
    return Promise.resolve(this.snapshot());
  }

  private snapshot(): Awaited<ReturnType<Histogram['get']>> {
    const h = this.source;
    const { name, help } = this.spec;
    const cumulative = h.cumulative();
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    h.bounds.forEach((bound, i) =>
      values.push({ metricName: `${name}_bucket`, labels: { le: bound }, value: cumulative[i]! }),
    );
    values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: h.count });
    values.push({ metricName: `${name}_sum`, labels: {}, value: h.sum });
    values.push({ metricName: `${name}_count`, labels: {}, value: h.count });
    const data = { name, help, type: 'histogram', values, aggregator: 'sum' };
    return data as unknown as Awaited<ReturnType<Histogram['get']>>;
  }
}

/**
 * Registers every counter and gauge `server` keeps (those of its parts that
 * exist: channels, server API, room passwords, cluster) and its fan-out and
 * send-queue delay histograms into `registry`, and starts recording those
 * durations. One server per registry: a second registration of the same
 * names throws (prom-client's error). Returns the registry.
 */
export function registerWshubMetrics(server: WshubServer, registry: Registry): Registry {
  let snapshot: ServerMetrics | null = null;
  // One metrics() call per scrape: the registry asks every metric in the same turn.
  const read = (): ServerMetrics => {
    if (snapshot === null) {
      snapshot = server.metrics();
      queueMicrotask(() => (snapshot = null));
    }
    return snapshot;
  };
  const present = server.metrics();
  for (const spec of METRIC_SPECS) {
    if (present[spec.field] === undefined) continue;
    const field = spec.field;
    const value = (): number => Number(read()[field] ?? 0);
    if (spec.type === 'gauge') {
      registry.registerMetric(
        new Gauge({
          name: spec.name,
          help: spec.help,
          registers: [],
          collect() {
            this.set(value());
          },
        }),
      );
    } else {
      registry.registerMetric(
        new Counter({
          name: spec.name,
          help: spec.help,
          registers: [],
          collect() {
            // wshub's counters only grow; the exposition shows their current value.
            this.reset();
            this.inc(value());
          },
        }),
      );
    }
  }
  const timings = server.recordTimings();
  registry.registerMetric(new RecordedHistogram(FANOUT_HISTOGRAM, timings.fanout));
  registry.registerMetric(new RecordedHistogram(QUEUE_DELAY_HISTOGRAM, timings.queueDelay));
  return registry;
}

/** A new registry (not prom-client's global one) holding `server`'s metrics. */
export function createMetricsRegistry(server: WshubServer): Registry {
  return registerWshubMetrics(server, new Registry());
}

/** How a metrics endpoint answers: its registry and, on a shared port, the bearer key it requires. */
export interface MetricsEndpoint {
  registry: Registry;
  /** Required as `Authorization: Bearer <key>`; undefined serves anyone (a port of its own). */
  key?: Uint8Array | undefined;
}

/**
 * Answers a request for the metrics: GET or HEAD only (405 otherwise), the
 * bearer key checked in constant time when one is set (401
 * METRICS_UNAUTHORIZED), then the registry in the Prometheus text format.
 */
export async function serveMetrics(
  request: IncomingMessage,
  response: ServerResponse,
  endpoint: MetricsEndpoint,
): Promise<void> {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    sendRejection(response, refusal(HttpRejection.METHOD_NOT_ALLOWED, 'use GET', { Allow: 'GET, HEAD' }));
    return;
  }
  if (endpoint.key !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    if (match === null || !constantTimeEqual(match[1]!, endpoint.key)) {
      sendRejection(response, refusal(HttpRejection.METRICS_UNAUTHORIZED), {
        'WWW-Authenticate': 'Bearer realm="metrics"',
      });
      return;
    }
  }
  const body = await endpoint.registry.metrics();
  response.writeHead(200, {
    'Content-Type': PROMETHEUS_CONTENT_TYPE,
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
  });
  response.end(request.method === 'HEAD' ? undefined : body);
}
