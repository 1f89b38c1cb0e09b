// Interop: Centrifugo's Python server SDK (`cent` 5.2.0, driven by
// cent/client.py) against a real wshub server, with the official
// `centrifuge` SDK as the subscribers: what cent publishes reaches them, what
// cent asks about (presence, channels, info) is what they are, and cent's
// unsubscribe and disconnect reach them. A wrong key publishes nothing.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, test } from 'node:test';
import type { Centrifuge } from 'centrifuge';
import { CENT_TIMEOUT_MS, requireCent, runCent as runCentOutput, type CentStep } from './cent/run.ts';
import { cleanupHubs } from '../e2e/server/harness.ts';
import {
  closeClients,
  connected,
  connectionToken,
  once as sdkEvent,
  sdkClient,
  startChannelHub,
  subscribed,
} from '../e2e/channels/sdk.ts';

// Passed as --key=…: a key starting with '-' would otherwise read as an option.
const KEY = randomBytes(32).toString('base64url');
const limits = { timeout: CENT_TIMEOUT_MS };

type Step = CentStep;

/** client.py's steps. */
async function runCent(args: string[]): Promise<Step[]> {
  return (await runCentOutput(args)).steps;
}

function result(steps: Step[], name: string): Record<string, unknown> {
  const s = steps.find((x) => x.name === name);
  assert.ok(s?.result, `${name} did not succeed: ${JSON.stringify(s)}`);
  return s.result;
}

const CHAT = {
  historySize: 10,
  historyTtl: 60_000,
  presence: true,
  allowSubscribeForClient: true,
};

function startServer() {
  return startChannelHub({
    apiKey: KEY,
    channels: { allowSubscribeForClient: true, namespaces: [{ name: 'chat', ...CHAT }] },
  });
}

async function client(
  hub: Awaited<ReturnType<typeof startServer>>,
  user: string,
): Promise<[Centrifuge, string]> {
  const c = sdkClient(hub, { token: await connectionToken(user) });
  const { client: id } = await connected(c);
  return [c, id];
}

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

describe('Python cent 5.2.0 against a wshub server, with SDK subscribers', requireCent(), () => {
  test(
    'publish, broadcast, history, presence, channels, info, unsubscribe and disconnect',
    limits,
    async () => {
      const hub = await startServer();
      const [carol] = await client(hub, 'carol');
      const { sub: history } = await subscribed(carol, 'chat:h');
      const seen: unknown[] = [];
      history.on('publication', (ctx) => seen.push(ctx.data));
      const [a1, a1id] = await client(hub, 'alice');
      const [a2] = await client(hub, 'alice');
      const [bob] = await client(hub, 'bob');
      const { sub: p1 } = await subscribed(a1, 'chat:p');
      const { sub: p2 } = await subscribed(a2, 'chat:p');
      await subscribed(bob, 'chat:p');
      await subscribed(bob, 'chat:q');
      const unsubscribedCodes: number[] = [];
      for (const s of [p1, p2]) s.on('unsubscribed', (ctx) => unsubscribedCodes.push(ctx.code));
      // 4100 is in the range a client reconnects after (4000–4499).
      const a1Gone = sdkEvent<{ code: number; reason: string }>(a1, 'connecting');
      const a2Gone = sdkEvent<{ code: number; reason: string }>(a2, 'disconnected');

      const steps = await runCent([
        'calls',
        ...['--url', `http://127.0.0.1:${hub.port}/api`, `--key=${KEY}`],
        ...['--history-channel', 'chat:h', '--presence-channel', 'chat:p'],
        ...['--plain-channel', 'news', '--unknown-channel', 'nope:x'],
        ...['--user', 'alice', '--client', a1id],
      ]);

      const published = result(steps, 'publish');
      assert.equal(published['offset'], 1);
      const epoch = published['epoch'];
      assert.deepEqual(
        seen,
        [{ text: 'hello' }, { text: 'not kept' }, { text: 'to all' }],
        'the SDK got every publication',
      );
      assert.deepEqual(
        (result(steps, 'history')['publications'] as Array<{ data: unknown; offset: number }>).map((p) => [
          p.data,
          p.offset,
        ]),
        [
          [{ text: 'hello' }, 1],
          [{ text: 'to all' }, 2],
        ],
      );
      assert.deepEqual(result(steps, 'history_after_remove'), { publications: [], offset: 2, epoch });
      const presence = result(steps, 'presence')['presence'] as Record<string, { user: string }>;
      assert.deepEqual(
        Object.values(presence)
          .map((e) => e.user)
          .sort(),
        ['alice', 'alice', 'bob'],
      );
      assert.deepEqual(result(steps, 'presence_stats'), { num_clients: 3, num_users: 2 });
      assert.deepEqual(result(steps, 'channels'), {
        channels: {
          'chat:h': { num_clients: 1 },
          'chat:p': { num_clients: 3 },
          'chat:q': { num_clients: 1 },
        },
      });
      const nodes = result(steps, 'info')['nodes'] as Array<Record<string, unknown>>;
      assert.equal(nodes[0]?.['num_clients'], 4);
      assert.equal(nodes[0]?.['num_users'], 3);
      assert.deepEqual(unsubscribedCodes, [2000, 2000], 'both of alice’s subscriptions ended by the server');
      const after = result(steps, 'presence_after_unsubscribe')['presence'] as Record<
        string,
        { user: string }
      >;
      assert.deepEqual(
        Object.values(after).map((e) => e.user),
        ['bob'],
      );
      assert.deepEqual(await a1Gone, { code: 4100, reason: 'bye from cent' });
      assert.equal((await a2Gone).code, 3503);
      const failed = (name: string) => steps.find((s) => s.name === name)?.error?.code;
      assert.equal(failed('publish_unknown'), 102);
      assert.equal(failed('presence_unavailable'), 108);
      assert.equal(failed('publish_b64data'), 107);
    },
  );

  test('a wrong key: 401, cent raises, and nothing is published', limits, async () => {
    const hub = await startServer();
    const [carol] = await client(hub, 'carol');
    const { sub } = await subscribed(carol, 'chat:h');
    const seen: unknown[] = [];
    sub.on('publication', (ctx) => seen.push(ctx.data));
    const steps = await runCent([
      'wrong-key',
      ...['--url', `http://127.0.0.1:${hub.port}/api`, `--key=${randomBytes(32).toString('base64url')}`],
      ...['--history-channel', 'chat:h'],
    ]);
    assert.deepEqual(steps, [{ name: 'publish', raised: 'CentUnauthorizedError' }]);
    const history = await hub.ws.channels!.history('chat:h', { limit: -1 });
    assert.deepEqual(history.publications, []);
    assert.equal(history.offset, 0);
    assert.deepEqual(seen, []);
    assert.equal(hub.ws.metrics().api_auth_failures, 1);
  });
});
