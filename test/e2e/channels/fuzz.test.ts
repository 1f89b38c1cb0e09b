/**
 * Fuzzing the channel protocol over a real socket: thousands of random and
 * mutated command frames from raw clients (reconnecting whenever the server
 * closes one). The server must never fail internally, every reply must be
 * JSON, every close must carry a protocol code, and a well-behaved SDK
 * client connected all along must keep working.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import fc from 'fast-check';
import { ReplyErrorException } from '../../../src/channels/protocol.ts';
import type { LogEntry } from '../../../src/server/server.ts';
import { COMMAND_METHODS } from '../../../src/channels/protocol.ts';
import { cleanupHubs, makeToken, type RunningHub } from '../server/harness.ts';
import {
  channelLimits,
  closeClients,
  closeRawClients,
  connected,
  connectionToken,
  publications,
  rawChannelClient,
  recordEvents,
  sdkClient,
  startChannelHub,
  subscribed,
  type RawChannelClient,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  closeRawClients();
  await cleanupHubs();
});

const FRAMES = 2000;
/** Raw clients sending at the same time. */
const LANES = 4;
const SEED = 20261202;
/** Ids of the probes between fuzz frames, above any id the generator makes. */
const PROBE_BASE = 4_000_000_000;

const METHODS = COMMAND_METHODS;

/** Tokens a fuzzed command may carry: valid, for channels, expired, foreign, garbage. */
async function fuzzTokens(): Promise<string[]> {
  const past = Math.floor(Date.now() / 1000) - 60;
  return [
    await connectionToken('fuzz'),
    await connectionToken('fuzz', { channels: ['chat', 'ns:one', 'bad ns:x', 5] }),
    await connectionToken('other', { info: { a: [1, { b: null }] } }),
    await makeToken({ sub: 'fuzz', exp: past }),
    await makeToken({ sub: 'fuzz', channel: 'chat' }),
    await makeToken({ sub: 5, exp: 'soon' }),
    'a.b.c',
    '',
  ];
}

/** Mostly `typed`, now and then any JSON value in its place. */
function mostly<T>(typed: fc.Arbitrary<T>, other: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 24, arbitrary: typed }, { weight: 1, arbitrary: other });
}

/**
 * One frame: commands (one to three per frame, one per line) whose fields
 * are mostly of the right type and now and then anything; or truncated
 * JSON, random text or random bytes.
 */
function frames(tokens: string[]): fc.Arbitrary<string | Uint8Array> {
  const any = fc.jsonValue({ maxDepth: 3 });
  const channel = mostly(
    fc.oneof(
      fc.constantFrom('chat', 'ns:one', 'ns:two', 'unknown:x', 'a'.repeat(300), 'bad name\n', 'x'),
      fc.string({ minLength: 1, maxLength: 20 }),
    ),
    fc.oneof(fc.integer(), fc.constant(null), fc.constant('')),
  );
  const text = fc.string({ maxLength: 8 });
  const request = fc.record(
    {
      channel,
      token: mostly(fc.constantFrom(...tokens), any),
      data: any,
      method: mostly(fc.oneof(fc.constantFrom('echo', 'throw', 'error', 'slow'), text), any),
      limit: mostly(fc.integer({ min: -5, max: 5000 }), any),
      since: mostly(fc.record({ offset: mostly(fc.nat(10), any), epoch: mostly(text, any) }), any),
      reverse: mostly(fc.boolean(), any),
      recover: mostly(fc.boolean(), any),
      recoverable: fc.boolean(),
      positioned: fc.boolean(),
      join_leave: fc.boolean(),
      offset: mostly(fc.nat(20), any),
      epoch: mostly(text, any),
      subs: mostly(
        fc.dictionary(fc.constantFrom('chat', 'ns:one'), fc.record({ recover: fc.boolean() })),
        any,
      ),
    },
    // What most methods cannot do without (a missing one is a 3501); the rest come and go.
    { requiredKeys: ['channel', 'token', 'method'] },
  );
  const method = fc.oneof(
    { weight: 24, arbitrary: fc.constantFrom(...METHODS.filter((m) => m !== 'connect')) },
    { weight: 1, arbitrary: fc.constantFrom('connect', 'nope') },
  );
  const command = fc
    .record(
      {
        id: mostly(fc.integer({ min: 1, max: 1000 }), fc.constantFrom(undefined, 0, -1, 2.5, 2 ** 40, '7')),
        method,
        request: mostly(request, any),
        // Now and then a second request field (the first in client.proto's order counts).
        extra: fc.oneof({ weight: 12, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: method }),
      },
      { requiredKeys: ['id', 'method', 'request'] },
    )
    .map(({ id, method: m, request: body, extra }) => {
      const out: Record<string, unknown> = { [m]: body };
      if (id !== undefined) out.id = id;
      if (extra !== undefined) out[extra] = {};
      return JSON.stringify(out);
    });
  return fc.oneof(
    { weight: 30, arbitrary: fc.array(command, { minLength: 1, maxLength: 3 }).map((c) => c.join('\n')) },
    // Truncated, spliced or garbled JSON.
    {
      weight: 2,
      arbitrary: fc
        .tuple(command, fc.nat(), fc.string({ maxLength: 5 }))
        .map(([c, cut, junk]) => c.slice(0, cut % (c.length + 1)) + junk),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 100, unit: 'binary' }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 1, arbitrary: fc.constantFrom('{}', '{}\n{}', '\n\n', 'null', '[]', '1', '""', '{"id":1}') },
  );
}

const ALLOWED_CLOSES = new Set([3500, 3501, 3502, 3505, 3013]);

describe('channel protocol fuzzing', () => {
  it(`survives ${FRAMES} random and mutated frames while an SDK client keeps working`, async () => {
    let timeouts = 0;
    const hub: RunningHub = await startChannelHub({
      channels: {
        allowSubscribeForClient: true,
        allowSubscribeForAnonymous: true,
        allowPublishForClient: true,
        allowPresenceForClient: true,
        allowHistoryForClient: true,
        presence: true,
        joinLeave: true,
        namespaces: [
          {
            name: 'ns',
            historySize: 10,
            historyTtl: 60_000,
            allowRecovery: true,
            presence: true,
            joinLeave: true,
            forcePushJoinLeave: true,
            allowSubscribeForClient: true,
            allowPublishForSubscriber: true,
            allowHistoryForClient: true,
            allowPresenceForSubscriber: true,
          },
        ],
      },
      channelLimits: channelLimits({
        allowAnonymousConnect: true,
        maxCommandsPerSecond: 0,
        hookTimeout: 100,
        maxSubscriptions: 8,
      }),
      channelHooks: {
        onRpc: ({ method, data }) => {
          if (method === 'throw') throw new Error('deliberate');
          if (method === 'error') throw new ReplyErrorException({ code: 1500, message: 'app error' });
          if (method === 'slow')
            return new Promise((resolve) => {
              timeouts++;
              setTimeout(() => resolve(null), 120);
            });
          return data ?? null;
        },
        onSend: () => {},
      },
    });
    const logged: LogEntry[] = [];
    hub.ws.log = (entry) => logged.push(entry);

    const sdk = sdkClient(hub, { token: await connectionToken('steady') });
    await connected(sdk);
    const sdkEvents = recordEvents(sdk, ['connecting', 'disconnected']);
    const { sub } = await subscribed(sdk, 'chat');
    const subEvents = recordEvents(sub, ['unsubscribed', 'subscribing']);

    const tokens = await fuzzTokens();
    const sample = fc.sample(frames(tokens), { numRuns: FRAMES, seed: SEED });
    const closes = new Map<number, number>();
    const invalid: string[] = [];
    const clients: RawChannelClient[] = [];
    let survived = 0;
    /** Sends frames i ≡ lane (mod LANES), each followed by a probe: answered (the frame was taken) or closed. */
    const runLane = async (lane: number): Promise<void> => {
      let raw: RawChannelClient | null = null;
      for (let i = lane; i < sample.length; i += LANES) {
        if (raw === null || raw.ws.readyState !== raw.ws.OPEN) {
          raw = await rawChannelClient(hub);
          clients.push(raw);
          // Mostly past connect, so the frames reach every command; sometimes not.
          if (i % 10 !== lane) {
            raw.send({ id: PROBE_BASE, connect: i % 3 === 0 ? {} : { token: tokens[0] } });
            await raw.reply(PROBE_BASE).catch(() => {});
          }
        }
        const frame = sample[i]!;
        raw.ws.send(frame, { binary: typeof frame !== 'string' });
        const id = PROBE_BASE + 1 + i;
        raw.send({ id, ping: {} });
        const answered = await raw.reply(id, 3000).then(
          () => true,
          (error: Error) => {
            if (!/closed before/.test(error.message)) throw error;
            return false;
          },
        );
        if (answered) survived++;
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: LANES }, (_, lane) => runLane(lane)));
    const elapsed = performance.now() - started;
    for (const c of clients) {
      c.ws.close();
      const close = await c.closed;
      if (close.code !== 1000 && close.code !== 1005)
        closes.set(close.code, (closes.get(close.code) ?? 0) + 1);
      invalid.push(...c.invalid);
    }

    assert.deepEqual(invalid, [], 'every reply is JSON');
    for (const code of closes.keys())
      assert.ok(ALLOWED_CLOSES.has(code), `close code ${code}: ${JSON.stringify([...closes])}`);
    const internal = logged.filter((e) => e.event === 'channel_error' && !/deliberate/.test(String(e.error)));
    assert.deepEqual(internal, [], 'no internal failures but the deliberate hook throws');
    assert.ok(clients.length > 10, `${clients.length} connections`);

    // The steady client never noticed.
    assert.deepEqual(sdkEvents, []);
    assert.deepEqual(subEvents, []);
    const got = publications(sub, 1);
    await hub.ws.channels!.publish('chat', { after: 'fuzz' });
    assert.deepEqual(await got, [{ after: 'fuzz' }]);
    assert.equal((await sdk.presenceStats('chat')).numClients >= 1, true);
    console.log(
      `fuzz: ${FRAMES} frames over ${clients.length} connections in ${Math.round(elapsed)} ms, ` +
        `${survived} kept the connection; ` +
        `closes ${JSON.stringify([...closes])}; slow hooks ${timeouts}`,
    );
  });
});
