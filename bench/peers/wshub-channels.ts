/**
 * Peer `wshub-channels`: this repository's server with its channel endpoint
 * (the Centrifuge client protocol v2, JSON, at /connection/websocket) and
 * its server API (`POST /api/publish` with `X-API-Key`), configured as the
 * channel benchmark configures Centrifugo: anonymous connections, any
 * client may subscribe to any channel, no history, no presence. With
 * `--broker URL` it is one node of a cluster joined through that broker
 * (as `wshub serve --broker`), so a publication through one node's API
 * reaches the channel's subscribers on every node.
 *
 * The API key comes from the environment variable WSHUB_BENCH_API_KEY (the
 * orchestrator makes a fresh one per start). Every channel option the
 * benchmark sets is in CHANNEL_OPTIONS below, so a renamed option is one
 * edit.
 *
 * Run: WSHUB_BENCH_API_KEY=… node --import tsx bench/peers/wshub-channels.ts --port 0 [--broker redis://…]
 */
import { existsSync } from 'node:fs';
import type { WshubConfig } from '../../src/index.ts';
import { HOST, fail, parsePeerArgs, peerReady } from './common.ts';

// The compiled package (what users run) when it has been built, else the sources through tsx.
const dist = new URL('../../dist/index.js', import.meta.url);
const source = existsSync(dist) ? dist.href : new URL('../../src/index.ts', import.meta.url).href;
const { Cluster, createWshub, transportFromUrl } = (await import(
  source
)) as typeof import('../../src/index.ts');
process.stderr.write(`wshub-channels: using ${existsSync(dist) ? 'dist/' : 'src/'}\n`);

const apiKey = process.env['WSHUB_BENCH_API_KEY'];
if (apiKey === undefined || apiKey === '') fail('wshub-channels: WSHUB_BENCH_API_KEY is not set', 2);

/** The channel options of the benchmark, the only place that names them. */
const CHANNEL_OPTIONS = {
  apiKey,
  channels: {
    allowSubscribeForClient: true,
    allowSubscribeForAnonymous: true,
  } satisfies WshubConfig['channels'],
  // createWshub merges channel limits over their defaults, so only the one that changes is given.
  channelLimits: { allowAnonymousConnect: true } as WshubConfig['channelLimits'],
};

const options = parsePeerArgs();
const hub = (() => {
  try {
    return createWshub({
      allowUnauthenticated: true,
      messageValidation: false,
      allowAllOrigins: true,
      ...CHANNEL_OPTIONS,
      cluster: options.broker ? new Cluster({ transport: transportFromUrl(options.broker) }) : undefined,
    });
  } catch (error) {
    return fail(`wshub-channels: ${error instanceof Error ? error.message : String(error)}`);
  }
})();

await hub
  .start()
  .catch((error: unknown) => fail(`wshub-channels: ${options.broker ? 'broker: ' : ''}${String(error)}`));
const server = hub.createServer();
server.listen(options.port, HOST, () => {
  const address = server.address();
  peerReady(typeof address === 'object' && address !== null ? address.port : options.port, {
    connections: () => hub.hub.getActiveConnectionCount(),
    dropped: () => -1,
    closed: () => -1,
  });
});
