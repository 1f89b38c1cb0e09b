/**
 * Peer `wshub-production`: the `wshub` peer as production runs it — its
 * Prometheus metrics registered and scraped once a second, and every
 * per-client limit applied to the benchmark's loopback clients with caps no
 * run reaches (BENCH_CLIENT_LIMITS=on), so each upgrade and message passes
 * through the limit tables and the metrics. Compared with `wshub` started
 * with BENCH_CLIENT_LIMITS=off, it shows what metrics and limits cost.
 *
 * Run: node --import tsx bench/peers/wshub-production.ts --port 0
 */
process.env['WSHUB_BENCH_METRICS'] = '1';
process.env['BENCH_CLIENT_LIMITS'] = 'on';
await import('./wshub.ts');
