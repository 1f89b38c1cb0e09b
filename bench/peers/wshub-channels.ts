/**
 * Peer `wshub-channels`: this repository's server with its channel endpoint
 * (the Centrifuge client protocol v2, JSON, at /connection/websocket) and
 * its server API (`POST /api/publish` with `X-API-Key`), configured as the
 * channel benchmark configures Centrifugo: anonymous connections, any
 * client may subscribe to any channel, no history, no presence. With
 * `--broker URL` it is one node of a cluster joined through that broker,
 * so a publication through one node's API reaches the channel's
 * subscribers on every node; the channels keep no state in the broker
 * (unlike `wshub serve --broker redis://…`, which implies `--state`).
 *
 * `--history N` (with `--broker redis://…`) gives the node the Redis
 * channel engine on that same Redis and every channel a history of N
 * publications living `--history-ttl` seconds (default 300) with recovery
 * allowed, as Centrifugo's Redis engine with `history_size`,
 * `history_ttl` and `allow_recovery`: every publication then runs the
 * engine's publish script (stream append and pub/sub in one step).
 *
 * The API key comes from the environment variable WSHUB_BENCH_API_KEY (the
 * orchestrator makes a fresh one per start). Every channel option the
 * benchmark sets is in CHANNEL_OPTIONS and HISTORY_OPTIONS below, so a
 * renamed option is one edit.
 *
 * Run: WSHUB_BENCH_API_KEY=… node --import tsx bench/peers/wshub-channels.ts --port 0
 *        [--broker redis://… [--history N [--history-ttl SECONDS]]]
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { WshubConfig } from '../../src/index.ts';
import { HOST, fail, parsePeerArgs, peerReady } from './common.ts';

// The compiled package (what users run) when it has been built, else the sources through tsx.
const dist = new URL('../../dist/index.js', import.meta.url);
const source = existsSync(dist) ? dist.href : new URL('../../src/index.ts', import.meta.url).href;
const { Cluster, createWshub, transportFromUrl } = (await import(
  source
)) as typeof import('../../src/index.ts');
const redisSource = existsSync(dist)
  ? new URL('../../dist/redis.js', import.meta.url).href
  : new URL('../../src/redis.ts', import.meta.url).href;
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

/** Largest --history: the channel option's own cap. */
const MAX_HISTORY = 100_000;
/** Largest --history-ttl in seconds: 30 days, the channel option's own cap. */
const MAX_HISTORY_TTL_SEC = 30 * 24 * 3600;

/** The flags of this peer alone; the rest go to parsePeerArgs. */
interface HistoryFlags {
  /** Publications kept per channel, 0 = no history (and no channel engine). */
  size: number;
  ttlSec: number;
  rest: string[];
}

/** Takes `--history N` and `--history-ttl S` out of the arguments; exits with code 2 on bad values. */
function parseHistoryFlags(argv: string[]): HistoryFlags {
  const { values, tokens } = parseArgs({
    args: argv,
    options: { history: { type: 'string' }, 'history-ttl': { type: 'string' } },
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const own = new Set<number>();
  for (const token of tokens) {
    if (token.kind !== 'option' || (token.name !== 'history' && token.name !== 'history-ttl')) continue;
    own.add(token.index);
    // `--history 100` is two arguments, `--history=100` one.
    if (token.inlineValue === false) own.add(token.index + 1);
  }
  const integer = (
    name: string,
    raw: string | boolean | undefined,
    fallback: number,
    max: number,
  ): number => {
    if (raw === undefined) return fallback;
    const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < 1 || n > max) {
      fail(`wshub-channels: --${name} takes an integer from 1 to ${max}, got ${String(raw)}`, 2);
    }
    return n;
  };
  return {
    size: integer('history', values.history, 0, MAX_HISTORY),
    ttlSec: integer('history-ttl', values['history-ttl'], 300, MAX_HISTORY_TTL_SEC),
    rest: argv.filter((_, i) => !own.has(i)),
  };
}

const history = parseHistoryFlags(process.argv.slice(2));
const options = parsePeerArgs(history.rest);
if (history.size > 0 && !options.broker?.startsWith('redis://')) {
  fail('wshub-channels: --history needs --broker redis://… (the history is kept in that Redis)', 2);
}
const { RedisEngine } = (await import(redisSource)) as typeof import('../../src/redis.ts');
/** The history options of every channel, mirroring Centrifugo's history_size, history_ttl, allow_recovery. */
const HISTORY_OPTIONS =
  history.size > 0
    ? { historySize: history.size, historyTtl: history.ttlSec * 1000, allowRecovery: true }
    : {};
process.stderr.write(
  `wshub-channels: ${history.size > 0 ? `history ${history.size} publications, ${history.ttlSec} s, in Redis` : 'no history'}\n`,
);

const hub = (() => {
  try {
    return createWshub({
      allowUnauthenticated: true,
      messageValidation: false,
      allowAllOrigins: true,
      ...CHANNEL_OPTIONS,
      channels: { ...CHANNEL_OPTIONS.channels, ...HISTORY_OPTIONS },
      cluster: options.broker ? new Cluster({ transport: transportFromUrl(options.broker) }) : undefined,
      channelEngine:
        history.size > 0 && options.broker ? new RedisEngine({ url: options.broker }) : undefined,
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
