/**
 * Peer `wshub`: this repository's hub (src/index.ts) with its built-in room
 * fan-out, no message validation, every origin allowed, and the default
 * heartbeat. Without --jwt-secret-file it accepts unauthenticated clients;
 * with it, its own HS256 authenticator checks `Authorization: Bearer` (the
 * secret must then be at least 32 bytes, as wshub requires).
 *
 * Counters: dropped = the hub's `broadcast_dropped`; closed = connections
 * that ended with SLOW_CONSUMER_CLOSE_CODE (only the "close" send behaviour
 * closes for slowness, and validation, the other source of that code, is off).
 *
 * Variant `wshub-metrics` (bench/peers/wshub-metrics.ts, WSHUB_BENCH_METRICS=1):
 * the same hub with its Prometheus metrics registered (so the fan-out and
 * send-queue delay histograms record) and scraped once a second, to show
 * what metrics cost next to the plain hub in the same run. Variant
 * `wshub-production` (bench/peers/wshub-production.ts): metrics as above and
 * BENCH_CLIENT_LIMITS=on.
 * Per-client limits: BENCH_CLIENT_LIMITS=off switches them all off; =on applies
 * them to the benchmark's loopback clients (`limitExempt: []`) with caps no run
 * reaches, so every upgrade and message goes through the tables; unset keeps
 * the defaults (loopback exempt).
 *
 * Run: node --import tsx bench/peers/wshub.ts --port 0 [--send-behavior drop|close|block] [--jwt-secret-file FILE] [--deflate]
 */
import { existsSync } from 'node:fs';

// The compiled package (what users run) when it has been built, else the sources through tsx.
const dist = new URL('../../dist/index.js', import.meta.url);
const source = existsSync(dist) ? dist.href : new URL('../../src/index.ts', import.meta.url).href;
const { Cluster, SLOW_CONSUMER_CLOSE_CODE, createWshub, createMetricsRegistry, transportFromUrl } =
  (await import(source)) as typeof import('../../src/index.ts');
process.stderr.write(`wshub: using ${existsSync(dist) ? 'dist/' : 'src/'}\n`);
import { HOST, fail, parsePeerArgs, peerReady } from './common.ts';

const options = parsePeerArgs();
let closedSlow = 0;

/** The per-client limit options BENCH_CLIENT_LIMITS asks for. */
function clientLimits(): Record<string, unknown> {
  const mode = process.env.BENCH_CLIENT_LIMITS;
  if (mode === 'off')
    return {
      maxConnsPerIp: 0,
      maxHandshakesPerIp: 0,
      maxMessagesPerSec: 0,
      maxBytesPerSec: 0,
      passwordLockout: 0,
    };
  if (mode === 'on')
    return {
      limitExempt: [],
      maxConnsPerIp: 1_000_000,
      maxHandshakesPerIp: 1_000_000_000,
      maxMessagesPerSec: 1_000_000_000,
      maxBytesPerSec: 1_000_000_000_000,
      maxConnsPerUser: 1_000_000,
    };
  return {};
}

const hub = (() => {
  try {
    return createWshub({
      allowUnauthenticated: options.jwtSecret === undefined,
      secret: options.jwtSecret,
      messageValidation: false,
      sendBehavior: options.sendBehavior,
      allowAllOrigins: true,
      perMessageDeflate: options.deflate,
      cluster: options.broker ? new Cluster({ transport: transportFromUrl(options.broker) }) : undefined,
      onClose: (_conn, code) => {
        if (code === SLOW_CONSUMER_CLOSE_CODE) closedSlow++;
      },
      ...clientLimits(),
    });
  } catch (error) {
    return fail(`wshub: ${error instanceof Error ? error.message : String(error)}`);
  }
})();

await hub.start().catch((error: unknown) => fail(`wshub: broker: ${String(error)}`));
if (process.env['WSHUB_BENCH_METRICS'] === '1') {
  const registry = createMetricsRegistry(hub);
  // A Prometheus scrape a second, as a typical scrape interval (15 s) would cost, only more often.
  setInterval(() => void registry.metrics(), 1000).unref();
}
const server = hub.createServer();
server.listen(options.port, HOST, () => {
  const address = server.address();
  peerReady(typeof address === 'object' && address !== null ? address.port : options.port, {
    connections: () => hub.hub.getActiveConnectionCount(),
    dropped: () => hub.metrics().broadcast_dropped,
    closed: () => closedSlow,
  });
});
