// `wshub serve --broker redis://…` as real processes: channel state lives in
// the same Redis (implied), so an SDK publication on one node reaches a
// subscriber on the other with the shared offset, presence covers both
// nodes, and the clients of a SIGKILLed node vanish from presence within
// --state-presence-ttl. Bad --state flags are usage errors (exit code 2).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { Centrifuge, type Subscription } from 'centrifuge';
import WebSocket from 'ws';
import { runCli, startCli, type RunningCli } from '../helpers/cli.ts';
import { redisRequirement, startRedis, type RedisServer } from '../helpers/redis.ts';
import { SECRET, tempDir } from './support.ts';

const files = tempDir();
const running: RunningCli[] = [];
const clients: Centrifuge[] = [];
const ENV = { WS_SECRET: SECRET, WS_BROADCAST_SECRET: '', WS_API_KEY: '' };
const PRESENCE_TTL = 1000;

afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await Promise.all(running.splice(0).map((cli) => cli.stop('SIGKILL')));
});
after(() => files.cleanup());

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function token(sub: string): Promise<string> {
  const result = await runCli(['token', '--sub', sub], { WS_SECRET: SECRET });
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.trim();
}

async function subscribe(cli: RunningCli, user: string, channel: string): Promise<Subscription> {
  const client = new Centrifuge(`${cli.wsUrl}/connection/websocket`, {
    websocket: WebSocket,
    token: await token(user),
    minReconnectDelay: 50,
    maxReconnectDelay: 200,
    timeout: 5000,
  });
  clients.push(client);
  const sub = client.newSubscription(channel);
  const subscribed = new Promise((resolve, reject) => {
    sub.once('subscribed', resolve);
    sub.once('unsubscribed', reject);
  });
  sub.subscribe();
  client.connect();
  await subscribed;
  return sub;
}

describe('wshub serve with channel state in redis', redisRequirement(), () => {
  let redis: RedisServer;
  let config: string;
  before(async () => {
    redis = await startRedis();
    config = files.file(
      'state.json',
      JSON.stringify({
        channels: {
          allowSubscribeForClient: true,
          allowPublishForSubscriber: true,
          allowPresenceForSubscriber: true,
          presence: true,
          historySize: 10,
          historyTtl: 60_000,
          forceRecovery: true,
        },
      }),
    );
  });
  after(async () => {
    await redis.stop();
  });

  async function serve(): Promise<RunningCli> {
    const cli = await startCli(
      [
        'serve',
        '--port',
        '0',
        '--config',
        config,
        '--broker',
        redis.url,
        '--state-presence-ttl',
        String(PRESENCE_TTL),
      ],
      ENV,
    );
    running.push(cli);
    return cli;
  }

  test('two processes share offsets and presence; a SIGKILLed node leaves presence within the ttl', async () => {
    const [one, two] = await Promise.all([serve(), serve()]);
    assert.match(one.stderr(), /"state":"redis"/);
    const onTwo = await subscribe(two, 'bob', 'lobby');
    const onOne = await subscribe(one, 'alice', 'lobby');
    const got: Array<{ data: unknown; offset?: number }> = [];
    onTwo.on('publication', (ctx) => got.push({ data: ctx.data, offset: ctx.offset }));
    await onOne.publish({ hello: 'from one' });
    for (let i = 0; i < 200 && got.length === 0; i++) await pause(10);
    assert.deepEqual(got, [{ data: { hello: 'from one' }, offset: 1 }]);
    assert.equal((await onOne.presenceStats()).numClients, 2);

    await two.stop('SIGKILL');
    const killedAt = Date.now();
    let clientsLeft = 2;
    while (clientsLeft > 1 && Date.now() - killedAt < PRESENCE_TTL + 3000) {
      clientsLeft = (await onOne.presenceStats()).numClients;
      if (clientsLeft > 1) await pause(50);
    }
    const took = Date.now() - killedAt;
    assert.equal(clientsLeft, 1);
    // The bound: presenceTtl after the last refresh, which was at most presenceTtl / 3 before the kill.
    assert.ok(took <= PRESENCE_TTL + 500, `gone ${took} ms after the kill`);
  });

  test('bad --state flags are usage errors', async () => {
    for (const [args, message] of [
      [['--state', 'postgres://x'], /--state must be memory, redis/],
      [['--state-cluster'], /--state-cluster needs --state redis/],
      [['--state-presence-ttl', '10'], /--state-presence-ttl needs state in Redis/],
      [['--state', redis.url, '--state-presence-ttl', 'soon'], /--state-presence-ttl must be a whole number/],
      [['--state', `${redis.url},${redis.url}`], /several URLs only with --state-cluster/],
    ] as const) {
      const result = await runCli(['serve', '--port', '0', ...args], ENV);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
  });
});
