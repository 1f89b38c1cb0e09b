/**
 * Peer `wshub-metrics`: the `wshub` peer with its Prometheus metrics
 * registered and scraped once a second (see bench/peers/wshub.ts).
 *
 * Run: node --import tsx bench/peers/wshub-metrics.ts --port 0
 */
process.env['WSHUB_BENCH_METRICS'] = '1';
await import('./wshub.ts');
