// `wshub serve` and channels, as a real process: the official centrifuge SDK
// connects to the channel path, the config file's "channels" and
// "channelLimits" apply, --channel-path, --no-channels,
// --allow-anonymous-connect, the server API key, and every bad channel input
// refused with exit code 2 and one line naming its source.
import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import { Centrifuge, type Subscription } from 'centrifuge';
import WebSocket from 'ws';
import { dial } from '../../src/client/dial.ts';
import type { Connection } from '../../src/connection/connection.ts';
import { runCli, startCli, type RunningCli } from '../helpers/cli.ts';
import { dialError, logLines, SECRET, tempDir } from './support.ts';

const files = tempDir();
const running: RunningCli[] = [];
const sdkClients: Centrifuge[] = [];
const rawClients: Connection[] = [];
const WITH_SECRET = { WS_SECRET: SECRET, WS_BROADCAST_SECRET: '', WS_API_KEY: '' };
const API_KEY = `api-key-${process.pid}-${Date.now()}-0123456789abcdef`.padEnd(40, 'k');

async function serve(args: string[], env: NodeJS.ProcessEnv = WITH_SECRET): Promise<RunningCli> {
  const cli = await startCli(['serve', '--port', '0', ...args], { ...WITH_SECRET, ...env });
  running.push(cli);
  return cli;
}

afterEach(async () => {
  for (const client of sdkClients.splice(0)) client.disconnect();
  for (const conn of rawClients.splice(0)) conn.terminate();
  await Promise.all(running.splice(0).map((cli) => cli.stop('SIGKILL')));
});
after(() => files.cleanup());

async function tokenFor(sub: string): Promise<string> {
  const result = await runCli(['token', '--sub', sub], { WS_SECRET: SECRET });
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.trim();
}

/** An SDK client for `url` (ws://…); not connected yet. */
function sdk(url: string, token?: string): Centrifuge {
  const client = new Centrifuge(url, {
    websocket: WebSocket,
    ...(token === undefined ? {} : { token }),
    minReconnectDelay: 50,
    maxReconnectDelay: 200,
    timeout: 5000,
  });
  sdkClients.push(client);
  return client;
}

/** Connects and resolves 'connected', or the code of the first disconnect or error. */
function connectOutcome(client: Centrifuge): Promise<{ connected: boolean; code: number }> {
  return new Promise((resolve) => {
    client.once('connected', () => resolve({ connected: true, code: 0 }));
    client.once('disconnected', (ctx) => resolve({ connected: false, code: ctx.code }));
    client.once('error', (ctx) => resolve({ connected: false, code: ctx.error.code }));
    client.connect();
  });
}

/** Subscribes and resolves with the subscription and 0, or the unsubscribe code. */
function subscribe(client: Centrifuge, channel: string): Promise<{ sub: Subscription; code: number }> {
  const sub = client.newSubscription(channel);
  return new Promise((resolve) => {
    sub.once('subscribed', () => resolve({ sub, code: 0 }));
    sub.once('unsubscribed', (ctx) => resolve({ sub, code: ctx.code }));
    sub.subscribe();
  });
}

describe('wshub serve with channels', () => {
  test('the SDK connects at /connection/websocket; the config file’s channels and channelLimits apply', async () => {
    const config = files.file(
      'channels.json',
      JSON.stringify({
        channels: {
          namespaces: [
            {
              name: 'news',
              allowSubscribeForClient: true,
              allowHistoryForSubscriber: true,
              historySize: 10,
              historyTtl: 60_000,
            },
          ],
        },
        channelLimits: { maxSubscriptions: 1 },
      }),
    );
    const cli = await serve(['--config', config, '--log-level', 'debug']);
    const client = sdk(`${cli.wsUrl}/connection/websocket`, await tokenFor('alice'));
    assert.deepEqual(await connectOutcome(client), { connected: true, code: 0 });
    assert.equal((await subscribe(client, 'other')).code, 103, 'top-level channels keep the defaults');
    const { sub, code } = await subscribe(client, 'news:today');
    assert.equal(code, 0, 'the namespace from the file');
    assert.equal((await subscribe(client, 'news:tomorrow')).code, 106, 'channelLimits.maxSubscriptions 1');

    // The raw room of the same name is the channel: its message is a publication, kept in history.
    const got = new Promise<unknown>((resolve) => sub.once('publication', (ctx) => resolve(ctx.data)));
    const raw = await dial(`${cli.wsUrl}/ws?room=news:today`, {
      headers: { Authorization: `Bearer ${await tokenFor('bob')}` },
    });
    rawClients.push(raw);
    await raw.sendText('{"headline":"hello"}');
    assert.deepEqual(await got, { headline: 'hello' });
    const history = await sub.history({ limit: 5 });
    assert.deepEqual(
      history.publications.map((p) => p.data as unknown),
      [{ headline: 'hello' }],
    );

    const start = logLines(cli.stderr()).find((l) => l.event === 'start');
    assert.equal(start?.channel_path, '/connection/websocket');
    assert.equal(start?.api, false, 'no API key, no server API');
  });

  test('--channel-path moves the endpoint; without a token the connect is refused (3501)', async () => {
    const cli = await serve(['--channel-path', '/rt']);
    const moved = await dialError(dial(`${cli.wsUrl}/connection/websocket`));
    assert.equal(moved.status, 404);
    const anonymous = sdk(`${cli.wsUrl}/rt`);
    assert.deepEqual(await connectOutcome(anonymous), { connected: false, code: 3501 });
    const client = sdk(`${cli.wsUrl}/rt`, await tokenFor('alice'));
    assert.equal((await connectOutcome(client)).connected, true);
  });

  test('--allow-anonymous-connect accepts a connect without a token', async () => {
    const cli = await serve(['--allow-anonymous-connect']);
    const client = sdk(`${cli.wsUrl}/connection/websocket`);
    assert.deepEqual(await connectOutcome(client), { connected: true, code: 0 });
  });

  test('--no-channels: no channel endpoint, the /ws rooms as before', async () => {
    const cli = await serve(['--no-channels']);
    const refused = await dialError(dial(`${cli.wsUrl}/connection/websocket`));
    assert.equal(refused.status, 404);
    const raw = await dial(`${cli.wsUrl}/ws?room=a`, {
      headers: { Authorization: `Bearer ${await tokenFor('bob')}` },
    });
    rawClients.push(raw);
    assert.equal(raw.readyState, 'open');
    const start = logLines(cli.stderr()).find((l) => l.event === 'start');
    assert.equal(start?.channel_path, undefined);
  });

  test('serve --help lists the channel flags and WS_API_KEY', async () => {
    const help = await runCli(['serve', '--help']);
    assert.equal(help.code, 0);
    for (const flag of [
      '--channel-path',
      '--no-channels',
      '--allow-anonymous-connect',
      '--api-key-file',
      'WS_API_KEY',
      '/connection/websocket',
      '"channelLimits"',
    ])
      assert.ok(help.stdout.includes(flag), `serve --help mentions ${flag}`);
  });

  test('the server API key from WS_API_KEY or --api-key-file turns the API on; it never reaches the log', async () => {
    const fromEnv = await serve(['--log-level', 'debug'], { WS_API_KEY: API_KEY });
    assert.equal(logLines(fromEnv.stderr()).find((l) => l.event === 'start')?.api, true);
    const keyFile = files.file('api-key', `${API_KEY}\n`);
    const fromFile = await serve(['--api-key-file', keyFile, '--log-level', 'debug']);
    assert.equal(logLines(fromFile.stderr()).find((l) => l.event === 'start')?.api, true);
    for (const cli of [fromEnv, fromFile]) assert.ok(!cli.stderr().includes(API_KEY));
  });
});

interface Case {
  name: string;
  args: () => string[];
  env?: NodeJS.ProcessEnv;
  /** What the one stderr line must say. */
  expect: RegExp;
}

const configFile = (name: string, value: unknown) => files.file(name, JSON.stringify(value));

const cases: Case[] = [
  {
    name: 'a namespace option of the wrong type, named with the file and the key',
    args: () => [
      '--config',
      configFile('ns-type.json', {
        channels: { namespaces: [{ name: 'a' }, { name: 'b', presence: 'yes' }] },
      }),
    ],
    expect: /config file \S+ns-type\.json: channels\.namespaces\[1\]\.presence: must be true or false/,
  },
  {
    name: 'history without historyTtl',
    args: () => [
      '--config',
      configFile('ns-history.json', { channels: { namespaces: [{ name: 'chat', historySize: 10 }] } }),
    ],
    expect: /ns-history\.json: channels\.namespaces\[0\]\.historyTtl: history needs both/,
  },
  {
    name: 'an unknown top-level channel option, with a hint',
    args: () => ['--config', configFile('ns-unknown.json', { channels: { history_size: 10 } })],
    expect: /ns-unknown\.json: channels\.history_size: unknown option \(did you mean "historySize"\?\)/,
  },
  {
    name: 'duplicate namespaces',
    args: () => [
      '--config',
      configFile('ns-dup.json', { channels: { namespaces: [{ name: 'a' }, { name: 'a' }] } }),
    ],
    expect: /ns-dup\.json: channels\.namespaces\[1\]\.name: duplicate namespace "a"/,
  },
  {
    name: 'channels that are not an object',
    args: () => ['--config', configFile('ns-array.json', { channels: [] })],
    expect: /ns-array\.json: channels: must be an object/,
  },
  {
    name: 'an unknown channel limit',
    args: () => ['--config', configFile('limits-unknown.json', { channelLimits: { maxChannels: 3 } })],
    expect: /limits-unknown\.json: channelLimits\.maxChannels: is not a channel limit/,
  },
  {
    name: 'a channel limit out of range',
    args: () => ['--config', configFile('limits-range.json', { channelLimits: { pongTimeout: 0 } })],
    expect: /limits-range\.json: channelLimits\.pongTimeout: must be at least 1/,
  },
  {
    name: 'the API key in the config file',
    args: () => ['--config', configFile('api-key.json', { apiKey: API_KEY })],
    expect: /"apiKey" is a secret: supply it through WS_API_KEY or --api-key-file/,
  },
  {
    name: 'a weak WS_API_KEY',
    args: () => [],
    env: { WS_API_KEY: 'short-key' },
    expect: /WS_API_KEY is too weak: a secret must be at least 32 bytes/,
  },
  {
    name: 'WS_API_KEY equal to the token secret',
    args: () => [],
    env: { WS_API_KEY: SECRET },
    expect: /WS_API_KEY: the server API key must differ from the token secret/,
  },
  {
    name: 'an unreadable --api-key-file',
    args: () => ['--api-key-file', '/nonexistent/api-key'],
    expect: /cannot read --api-key-file file \/nonexistent\/api-key/,
  },
  {
    name: '--channel-path without a leading slash',
    args: () => ['--channel-path', 'rt'],
    expect: /paths must start with "\/", got "rt"/,
  },
  {
    name: '--channel-path equal to the room path',
    args: () => ['--channel-path', '/ws'],
    expect: /invalid configuration: channelPath: must differ from wsRoutePath/,
  },
  {
    name: '--no-channels with --channel-path',
    args: () => ['--no-channels', '--channel-path', '/rt'],
    expect: /--channel-path needs channels: drop --no-channels/,
  },
  {
    name: '--no-channels with --dev',
    args: () => ['--no-channels', '--dev'],
    expect: /--dev needs channels/,
  },
];

describe(
  'wshub serve refuses bad channel input with exit code 2 and one stderr line',
  { concurrency: 4 },
  () => {
    for (const c of cases) {
      test(c.name, async () => {
        const result = await runCli(['serve', '--port', '0', ...c.args()], { ...WITH_SECRET, ...c.env });
        assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
        assert.equal(result.stdout, '', 'nothing on stdout');
        const lines = result.stderr.split('\n');
        assert.equal(lines.length, 2, `exactly one line: ${JSON.stringify(result.stderr)}`);
        assert.match(lines[0]!, /^wshub: /);
        assert.match(lines[0]!, c.expect);
        assert.ok(!result.stderr.includes(SECRET), 'the token secret is never echoed');
        assert.ok(!result.stderr.includes(API_KEY), 'the API key is never echoed');
      });
    }
  },
);
