// `wshub serve --broker nats://… --state redis://…` as two real processes on
// a real nats-server and a real redis-server: an SDK publication on node A
// reaches a subscriber on node B with the offset kept in Redis; a client that
// left B recovers on A exactly the publications it missed; and a raw /ws
// member on B receives a channel publication made through A, carried by NATS
// (a channel without history takes the broker's way).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { Centrifuge, type Subscription } from 'centrifuge';
import WebSocket from 'ws';
import { signHS256 } from '../../src/auth/token.ts';
import { dial } from '../../src/client/dial.ts';
import { MessageQueue } from '../../src/client/messages.ts';
import type { Connection } from '../../src/connection/connection.ts';
import { channelToSubject } from '../../src/broker/nats.ts';
import { startCli, type RunningCli } from '../helpers/cli.ts';
import { requireNatsServer, startNatsServer, type NatsServer } from '../helpers/nats.ts';
import { redisRequirement, startRedis, type RedisServer } from '../helpers/redis.ts';
import { logLines, SECRET, tempDir, waitFor } from './support.ts';

const files = tempDir();
const running: RunningCli[] = [];
const clients: Centrifuge[] = [];
const rawMembers: Connection[] = [];
const ENV = { WS_SECRET: SECRET, WS_BROADCAST_SECRET: '', WS_API_KEY: '' };

afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  for (const conn of rawMembers.splice(0)) conn.terminate();
  await Promise.all(running.splice(0).map((cli) => cli.stop('SIGKILL')));
});
after(() => files.cleanup());

interface Pub {
  data: unknown;
  offset?: number;
}

interface Subscribed {
  wasRecovering: boolean;
  recovered: boolean;
  streamPosition?: { offset: number; epoch: string };
}

function token(sub: string): Promise<string> {
  return signHS256({ sub }, SECRET, { expiresInSeconds: 600 });
}

/** An SDK client of `cli`, connected. */
async function sdk(cli: RunningCli, user: string): Promise<Centrifuge> {
  const client = new Centrifuge(`${cli.wsUrl}/connection/websocket`, {
    websocket: WebSocket,
    token: await token(user),
    minReconnectDelay: 50,
    maxReconnectDelay: 200,
    timeout: 5000,
  });
  clients.push(client);
  const connected = new Promise<void>((resolve, reject) => {
    client.once('connected', () => resolve());
    client.once('disconnected', (ctx) => reject(new Error(`disconnected: ${JSON.stringify(ctx)}`)));
  });
  client.connect();
  await connected;
  return client;
}

/** Subscribes (from `since` when given) and records publications from the start. */
async function subscribe(
  client: Centrifuge,
  channel: string,
  since?: { offset: number; epoch: string },
): Promise<{ sub: Subscription; pubs: Pub[]; ctx: Subscribed }> {
  const sub = client.newSubscription(channel, since === undefined ? {} : { since });
  const pubs: Pub[] = [];
  sub.on('publication', (ctx) => pubs.push({ data: ctx.data, offset: ctx.offset }));
  const subscribed = new Promise<Subscribed>((resolve, reject) => {
    sub.once('subscribed', (ctx) => resolve(ctx as unknown as Subscribed));
    sub.once('unsubscribed', (ctx) => reject(new Error(`unsubscribed: ${JSON.stringify(ctx)}`)));
  });
  sub.subscribe();
  return { sub, pubs, ctx: await subscribed };
}

describe('wshub serve --broker nats --state redis', { timeout: 60_000 }, () => {
  const gate = requireNatsServer().skip || redisRequirement().skip;
  let nats: NatsServer | undefined;
  let redis: RedisServer | undefined;
  let config = '';

  before(async () => {
    if (gate !== false) return;
    [nats, redis] = await Promise.all([startNatsServer(), startRedis()]);
    config = files.file(
      'nats-redis.json',
      JSON.stringify({
        channels: {
          namespaces: [
            {
              name: 'news',
              allowSubscribeForClient: true,
              allowPublishForSubscriber: true,
              historySize: 50,
              historyTtl: 60_000,
              forceRecovery: true,
            },
            // No history: publications take the broker's way (NATS), not the state Redis's pub/sub.
            { name: 'chat', allowSubscribeForClient: true, allowPublishForSubscriber: true },
          ],
        },
      }),
    );
  });
  after(async () => {
    await Promise.all([nats?.stop(), redis?.stop()]);
  });

  async function serve(nodeId: string): Promise<RunningCli> {
    const cli = await startCli(
      [
        'serve',
        '--port',
        '0',
        '--config',
        config,
        '--node-id',
        nodeId,
        '--broker',
        nats!.url,
        '--state',
        redis!.url,
      ],
      ENV,
      30_000,
    );
    running.push(cli);
    return cli;
  }

  test(
    'offsets from Redis across nodes, recovery on the other node, raw room members reached over NATS',
    { skip: gate },
    async () => {
      const [a, b] = await Promise.all([serve('node-a'), serve('node-b')]);
      for (const cli of [a, b]) {
        const start = logLines(cli.stderr()).find((l) => l.event === 'start');
        assert.equal(start?.state, 'redis', cli.stderr());
        assert.equal(start?.broker, 'nats', cli.stderr());
      }

      // SDK publishes on A, subscribes on B: delivered once, with the shared offsets.
      const publisher = await sdk(a, 'alice');
      const { sub: onA } = await subscribe(publisher, 'news:today');
      const reader = await sdk(b, 'bob');
      const onB = await subscribe(reader, 'news:today');
      assert.equal(onB.ctx.recovered, false);
      const epoch = onB.ctx.streamPosition?.epoch;
      assert.ok(typeof epoch === 'string' && epoch !== '', `an epoch from Redis: ${JSON.stringify(onB.ctx)}`);
      for (let n = 1; n <= 3; n++) await onA.publish({ n });
      await waitFor(() => onB.pubs.length >= 3, 'three publications on node B');
      assert.deepEqual(onB.pubs, [
        { data: { n: 1 }, offset: 1 },
        { data: { n: 2 }, offset: 2 },
        { data: { n: 3 }, offset: 3 },
      ]);

      // Bob leaves B; publications continue through A; he comes back on A with his position.
      const position = { offset: onB.pubs.at(-1)?.offset ?? 0, epoch };
      reader.disconnect();
      for (let n = 4; n <= 7; n++) await onA.publish({ n });
      const back = await sdk(a, 'bob');
      const recovered = await subscribe(back, 'news:today', position);
      assert.deepEqual([recovered.ctx.wasRecovering, recovered.ctx.recovered], [true, true]);
      await waitFor(() => recovered.pubs.length >= 4, 'the four missed publications');
      await onA.publish({ n: 8 });
      await waitFor(() => recovered.pubs.length >= 5, 'the next live publication');
      assert.deepEqual(
        recovered.pubs.map((p) => [p.offset, p.data]),
        [
          [4, { n: 4 }],
          [5, { n: 5 }],
          [6, { n: 6 }],
          [7, { n: 7 }],
          [8, { n: 8 }],
        ],
        'exactly the missed publications, then live ones: no gap, no duplicate',
      );

      // A raw /ws member of room chat:lobby on B; an SDK publication to the channel through A.
      const queue = new MessageQueue();
      const member = await dial(`${b.wsUrl}/ws?room=chat:lobby`, {
        headers: { Authorization: `Bearer ${await token('carol')}` },
        handlers: queue.handlers,
      });
      rawMembers.push(member);
      const subject = channelToSubject('wshub:room:chat:lobby');
      const subscribedOnNats = async (): Promise<number> =>
        (await nats!.connections()).filter((c) => c.subjects.includes(subject)).length;
      let interested = 0;
      for (let i = 0; i < 100 && interested === 0; i++) {
        interested = await subscribedOnNats();
        if (interested === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(interested, 1, `node B's NATS connection subscribed to ${subject}`);
      const { sub: chatOnA } = await subscribe(publisher, 'chat:lobby');
      await chatOnA.publish({ text: 'hi from A' });
      const got = await queue.next(5000);
      assert.deepEqual([got.binary, JSON.parse(got.text)], [false, { text: 'hi from A' }]);
    },
  );
});
