/**
 * CPU cost of the upgrade steps the handshake profile pointed at, each the
 * way it was done before and the way it is done now, in one process:
 *
 * - the exemption check of the per-client limits (asked two or three times
 *   per upgrade): node:net's BlockList.check, which builds a SocketAddress
 *   per call, against AddressSet's remembered answers;
 * - Sec-WebSocket-Accept: createHash → update → digest against the
 *   one-shot hash;
 * - an HS256 token never seen before: jose's compactVerify handed the
 *   secret as a KeyObject, as the authenticator did before (jose imports it
 *   into WebCrypto again for every token), against the authenticator's
 *   whole check now (HS256TokenAuthenticator.authenticate: jose with a
 *   CryptoKey imported once, then the claims).
 *
 * CPU µs per call (process.cpuUsage, thread-pool time included), median
 * of 5 rounds with min–max. Run pinned for steadier figures:
 * taskset -c 0 node --import tsx bench/upgrade-steps.ts
 */
import { createHash, createSecretKey } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { compactVerify } from 'jose';
import { AddressSet, unmapped } from '../src/http/trusted-proxy.ts';
import { acceptKey } from '../src/upgrade/handshake.ts';
import { HS256TokenAuthenticator } from '../src/auth/token.ts';
import { signTokenPool } from './scenarios/handshakes.ts';
import { formatSummary, summarize } from './summary.ts';

const ROUNDS = 5;

/** CPU µs per call of `body` run `n` times (awaited when it returns a promise), per round. */
async function measure(n: number, body: (i: number) => unknown): Promise<number[]> {
  const out: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const before = process.cpuUsage();
    const pending: unknown[] = [];
    for (let i = 0; i < n; i++) pending.push(body(round * n + i));
    await Promise.all(pending);
    const used = process.cpuUsage(before);
    out.push((used.user + used.system) / n);
  }
  return out;
}

function report(step: string, before: number[], after: number[]): void {
  const b = summarize(before);
  const a = summarize(after);
  const fmt = (n: number) => n.toFixed(2);
  process.stdout.write(
    `| ${step} | ${formatSummary(b, fmt)} | ${formatSummary(a, fmt)} | ${(b.median / a.median).toFixed(1)}× |\n`,
  );
}

const addresses = Array.from({ length: 250 }, (_, i) => `127.0.0.${i + 2}`);
const list = new BlockList();
list.addSubnet('127.0.0.0', 8, 'ipv4');
list.addSubnet('::1', 128, 'ipv6');
const set = new AddressSet(['127.0.0.0/8', '::1/128'], 'limitExempt');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const keys = Array.from({ length: 1000 }, (_, i) =>
  Buffer.from(`key-${i}`.padEnd(16, '.')).toString('base64'),
);

const secret = Buffer.from('b'.repeat(64));
const TOKENS = 20_000;
const tokens = await signTokenPool(secret, TOKENS);
const key = createSecretKey(secret);
const fast = new HS256TokenAuthenticator(secret, { cacheSize: 0 });

process.stdout.write('| Step | Before: CPU µs per call | After: CPU µs per call | Before / after |\n');
process.stdout.write('| --- | ---: | ---: | ---: |\n');
report(
  'exemption check (per call; 2–3 per upgrade)',
  // As AddressSet.has did: unmap, find the family, ask the BlockList.
  await measure(100_000, (i) => {
    const bare = unmapped(addresses[i % 250]!);
    return list.check(bare, isIP(bare) === 4 ? 'ipv4' : 'ipv6');
  }),
  await measure(100_000, (i) => set.has(addresses[i % 250])),
);
report(
  'Sec-WebSocket-Accept',
  await measure(100_000, (i) =>
    createHash('sha1')
      .update(keys[i % 1000]! + GUID)
      .digest('base64'),
  ),
  await measure(100_000, (i) => acceptKey(keys[i % 1000]!)),
);
// Each token is verified once per round on each side: no cache can help.
const perRound = TOKENS / ROUNDS;
report(
  'HS256 token never seen before (jose with a KeyObject; the authenticator with its CryptoKey, claims included)',
  await measure(perRound, (i) => compactVerify(tokens[i]!, key, { algorithms: ['HS256'] })),
  await measure(perRound, (i) => fast.authenticate(tokens[i]!)),
);
