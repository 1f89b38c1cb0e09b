// The logs of `wshub serve` (pino, JSON lines on stderr): each refusal names
// its precise reason while the HTTP body keeps the stable code, lifecycle
// events appear at debug only, and no token, key or URL password is ever
// written, whatever field it hides in.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { signHS256 } from '../../src/auth/token.ts';
import { dial } from '../../src/client/dial.ts';
import { createLogger, REDACTED } from '../../src/cli/logger.ts';
import { startCli } from '../helpers/cli.ts';
import { dialError, logLines, SECRET, waitFor } from './support.ts';

test('the logger masks secrets by field name and inside text', () => {
  const lines: string[] = [];
  const logger = createLogger('debug', (line) => lines.push(line));
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
  logger.info('probe', {
    url: 'redis://default:hunter2-pass@10.0.0.1:6379/0',
    nats: 'nats://user:s3cret-pass@nats:4222',
    path: `/ws?room=a&token=${jwt}`,
    header: 'Bearer abcdefghijk',
    password: 'pw-value',
    apiKey: 'key-value',
    nested: { Authorization: 'Basic dXNlcjpwYXNz', count: 2 },
    error: `bad token ${jwt}`,
    token_count: 3,
  });
  logger.debug('lifecycle', { id: 1 });
  const text = lines.join('');
  for (const secret of [
    'hunter2-pass',
    's3cret-pass',
    jwt,
    'abcdefghijk',
    'pw-value',
    'key-value',
    'dXNlcjpwYXNz',
  ])
    assert.ok(!text.includes(secret), `${secret} is not logged: ${text}`);
  const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(entry.level, 'info');
  assert.equal(entry.event, 'probe');
  assert.equal(entry.url, `redis://default:${REDACTED}@10.0.0.1:6379/0`);
  assert.equal(entry.token_count, 3, 'numbers under a secret-looking name stay');
  assert.deepEqual(entry.nested, { Authorization: REDACTED, count: 2 });
  assert.equal(lines.length, 2);
  const quiet: string[] = [];
  createLogger('warn', (line) => quiet.push(line)).info('hidden');
  assert.equal(quiet.length, 0, 'below the level: nothing written');
});

test('refusals log their precise reason; tokens never reach the log', async () => {
  const cli = await startCli(['serve', '--port', '0', '--allow-query-token'], {
    WS_SECRET: SECRET,
    WSHUB_LOG_LEVEL: 'debug',
  });
  try {
    const endpoint = `${cli.wsUrl}/ws?room=logs`;
    const expired = await signHS256({ sub: 'a', exp: Math.floor(Date.now() / 1000) - 120 }, SECRET);
    const foreign = await signHS256({ sub: 'b' }, randomBytes(32), { expiresInSeconds: 60 });
    const good = await signHS256({ sub: 'c' }, SECRET, { expiresInSeconds: 60 });
    const refusals: Array<[string, Record<string, string>, string]> = [
      [endpoint, { Authorization: `Bearer ${expired}` }, 'expired'],
      [`${endpoint}&token=${foreign}`, {}, 'signature'],
      [endpoint, { Authorization: 'Bearer not-a-jwt' }, 'malformed'],
      [endpoint, {}, 'missing'],
    ];
    for (const [url, headers] of refusals) {
      const error = await dialError(dial(url, { headers }));
      assert.ok(error.status === 401 || error.status === 403);
    }
    const conn = await dial(endpoint, { headers: { Authorization: `Bearer ${good}` } });
    conn.close(1000);
    await waitFor(() => /"event":"closed"/.test(cli.stderr()), 'the close is logged');
    const lines = logLines(cli.stderr());
    const rejected = lines.filter((l) => l.event === 'upgrade_rejected');
    assert.deepEqual(
      rejected.map((l) => l.reason),
      refusals.map(([, , reason]) => reason),
    );
    // One HTTP code for the three bad tokens, as the seed answers.
    assert.deepEqual(
      rejected.map((l) => l.code),
      [
        'WEBSOCKET_INVALID_TOKEN',
        'WEBSOCKET_INVALID_TOKEN',
        'WEBSOCKET_INVALID_TOKEN',
        'WEBSOCKET_TOKEN_REQUIRED',
      ],
    );
    assert.ok(lines.some((l) => l.event === 'connected' && l.level === 'debug'));
    assert.ok(lines.some((l) => l.event === 'closed' && l.level === 'debug'));
    for (const secret of [expired, foreign, good, SECRET]) assert.ok(!cli.stderr().includes(secret));
  } finally {
    assert.equal(await cli.stop(), 0);
  }
});
