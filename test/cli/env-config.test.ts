// `wshub serve` configured from WSHUB_* variables: each option's variable is
// checked like its flag (the message names the variable), precedence is
// flag > environment > config file (observed through the running server's
// own metrics), and /metrics is served on its own port or, behind
// WS_METRICS_KEY, on the main one.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { runCli, startCli, type RunningCli } from '../helpers/cli.ts';
import { parsePrometheusText, valueOf } from '../helpers/prometheus-text.ts';
import { request, SECRET, tempDir } from './support.ts';

const files = tempDir();
after(() => files.cleanup());

const ENV = { WS_SECRET: SECRET, WS_BROADCAST_SECRET: '', WS_API_KEY: '', WS_METRICS_KEY: '' };
const METRICS_KEY = randomBytes(32).toString('base64url');

function metricsUrl(cli: RunningCli): string {
  const match = /^metrics on (http:\/\/\S+)$/m.exec(cli.stdout());
  assert.ok(match?.[1], `the metrics line is printed: ${cli.stdout()}`);
  return match[1];
}

async function scrapeGauge(url: string, name: string, headers: Record<string, string> = {}) {
  const reply = await request(url, { headers });
  assert.equal(reply.status, 200, reply.body);
  return valueOf(parsePrometheusText(reply.body), name);
}

describe('WSHUB_* environment variables', () => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ WSHUB_PORT: 'abc' }, /^wshub: WSHUB_PORT must be a whole number, got "abc"\n$/],
    [{ WSHUB_PORT: '70000' }, /^wshub: WSHUB_PORT must be between 0 and 65535, got 70000\n$/],
    [{ WSHUB_BROADCAST: 'maybe' }, /^wshub: WSHUB_BROADCAST must be true or false .*got "maybe"\n$/],
    [
      { WSHUB_SEND_BEHAVIOR: 'wait' },
      /^wshub: WSHUB_SEND_BEHAVIOR must be one of block, drop, close, got "wait"\n$/,
    ],
    [{ WSHUB_PATH: 'ws' }, /^wshub: WSHUB_PATH: paths must start with "\/", got "ws"\n$/],
    [
      { WSHUB_ALLOW_ORIGIN: 'https://a.example,not an origin' },
      /^wshub: WSHUB_ALLOW_ORIGIN must be an origin/,
    ],
    [{ WSHUB_WORKERS: '0' }, /^wshub: WSHUB_WORKERS must be between 1 and 256, got 0\n$/],
  ];
  for (const [env, expect] of bad) {
    test(`refuses ${Object.entries(env)[0]!.join('=')} naming the variable`, async () => {
      const result = await runCli(['serve'], { ...ENV, ...env });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, expect);
      assert.equal(result.stdout, '');
    });
  }

  test('a flag wins over its variable, which wins over the config file', async () => {
    const config = files.file(
      'precedence.json',
      JSON.stringify({ maxRoomConnections: 1, maxConnectionRate: 7 }),
    );
    const base = ['serve', '--port', '0', '--config', config, '--metrics-port', '0'];
    const cases: Array<[string[], Record<string, string>, number]> = [
      [[], {}, 1],
      [[], { WSHUB_MAX_ROOM_CONNECTIONS: '2' }, 2],
      [['--max-room-connections', '3'], { WSHUB_MAX_ROOM_CONNECTIONS: '2' }, 3],
    ];
    for (const [flags, env, expected] of cases) {
      const cli = await startCli([...base, ...flags], { ...ENV, ...env });
      try {
        assert.equal(await scrapeGauge(metricsUrl(cli), 'wshub_max_room_connections'), expected);
      } finally {
        assert.equal(await cli.stop(), 0);
      }
    }
  });

  test('booleans, the port and the metrics port come from the environment', async () => {
    const cli = await startCli(['serve'], {
      ...ENV,
      WS_SECRET: '',
      WSHUB_PORT: '0',
      WSHUB_ALLOW_UNAUTHENTICATED: 'true',
      WSHUB_NO_CHANNELS: '1',
      WSHUB_METRICS_PORT: '0',
      WSHUB_LOG_LEVEL: 'warn',
    });
    try {
      assert.notEqual(cli.port, 8080);
      // No channels: their metrics are not registered.
      const reply = await request(metricsUrl(cli));
      assert.equal(reply.status, 200);
      assert.ok(!reply.body.includes('wshub_channel_connections'));
      // --log-level warn from the environment: the info-level start line is gone.
      assert.doesNotMatch(cli.stderr(), /"event":"start"/);
      // The metrics listener answers nothing else.
      assert.equal((await request(metricsUrl(cli).replace('/metrics', '/ws'))).status, 404);
    } finally {
      assert.equal(await cli.stop(), 0);
    }
  });
});

describe('--metrics on the main port', () => {
  test('needs WS_METRICS_KEY', async () => {
    const result = await runCli(['serve', '--port', '0', '--metrics'], ENV);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--metrics needs WS_METRICS_KEY or --metrics-key-file/);
    const weak = await runCli(['serve', '--port', '0'], {
      ...ENV,
      WSHUB_METRICS: 'on',
      WS_METRICS_KEY: 'short',
    });
    assert.equal(weak.code, 2);
    assert.match(weak.stderr, /WS_METRICS_KEY is too weak/);
    assert.ok(!weak.stderr.includes('short'));
  });

  test('answers 401 without the key and the metrics with it', async () => {
    const cli = await startCli(['serve', '--port', '0', '--metrics'], {
      ...ENV,
      WS_METRICS_KEY: METRICS_KEY,
    });
    try {
      const refused = await request(`${cli.url}/metrics`);
      assert.equal(refused.status, 401);
      assert.match(refused.body, /METRICS_UNAUTHORIZED/);
      const connections = await scrapeGauge(`${cli.url}/metrics`, 'wshub_connections', {
        Authorization: `Bearer ${METRICS_KEY}`,
      });
      assert.equal(connections, 0);
    } finally {
      assert.equal(await cli.stop(), 0);
    }
    assert.ok(!cli.stderr().includes(METRICS_KEY), 'the key never reaches the log');
  });
});
