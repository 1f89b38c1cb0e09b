// Construction-time validation: typed errors for weak or reused
// secrets, bad numbers and paths; secrets are copied; attaching twice fails.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, test } from 'node:test';
import { SecretReuseError, WeakSecretError } from '../../../src/auth/errors.ts';
import { defaultConfig } from '../../../src/config.ts';
import { ConfigError } from '../../../src/errors.ts';
import { createWshub } from '../../../src/server/server.ts';
import { cleanupHubs, connectClient, expectRefused, makeToken, rawHttp, startHub } from './harness.ts';

afterEach(cleanupHubs);

const STRONG = 'a-token-secret-that-is-32-bytes!';
const OTHER = 'a-broadcast-secret-of-32-bytes!!';

describe('defaults', () => {
  test('match the seed', () => {
    const c = createWshub({ secret: STRONG }).config;
    assert.equal(c.workerCount, 16);
    assert.equal(c.jobQueueSize, 4096);
    assert.equal(c.sendQueueSize, 256);
    assert.equal(c.sendTimeout, 200);
    assert.equal(c.writeTimeout, 10_000);
    assert.equal(c.sendBehavior, 'block');
    assert.equal(c.wsRoutePath, '/ws');
    assert.equal(c.broadcastPath, '/_admin/broadcast');
    assert.equal(c.broadcastEnabled, false);
    assert.equal(c.broadcastMaxBytes, 1024 * 1024);
    assert.deepEqual(c.allowedOrigins, []);
    assert.equal(c.allowAllOrigins, false);
    assert.equal(c.allowUnauthenticated, false);
    assert.equal(c.allowQueryToken, false);
    assert.equal(c.maxRoomRegistrations, 0);
    assert.equal(c.maxRoomConnections, 0);
    assert.equal(c.maxConnectionRate, 0);
    assert.equal(c.pingPeriod, 20_000);
    assert.equal(c.pongWait, 30_000);
  });

  test('defaultConfig() ignores the environment', () => {
    const saved = process.env.WS_SECRET;
    process.env.WS_SECRET = STRONG;
    try {
      assert.equal(defaultConfig().secret, undefined);
      assert.throws(() => createWshub({}), WeakSecretError);
    } finally {
      if (saved === undefined) delete process.env.WS_SECRET;
      else process.env.WS_SECRET = saved;
    }
  });
});

describe('secrets', () => {
  test('a missing or short secret throws WeakSecretError', () => {
    assert.throws(() => createWshub({}), WeakSecretError);
    assert.throws(() => createWshub({ secret: 'short' }), WeakSecretError);
    assert.throws(() => createWshub({ secret: Buffer.alloc(31, 1) }), WeakSecretError);
    assert.doesNotThrow(() => createWshub({ secret: Buffer.alloc(32, 1) }));
  });

  test('no secret is needed with a custom token authenticator or allowUnauthenticated', () => {
    assert.doesNotThrow(() => createWshub({ allowUnauthenticated: true }));
    assert.doesNotThrow(() =>
      createWshub({ tokenAuthenticator: { authenticate: () => Promise.reject(new Error('no')) } }),
    );
  });

  test('broadcast: the secret must be 32+ bytes and differ from the token secret', () => {
    assert.throws(() => createWshub({ secret: STRONG, broadcastEnabled: true }), WeakSecretError);
    assert.throws(
      () => createWshub({ secret: STRONG, broadcastEnabled: true, broadcastSecret: 'short' }),
      WeakSecretError,
    );
    assert.throws(
      () => createWshub({ secret: STRONG, broadcastEnabled: true, broadcastSecret: STRONG }),
      SecretReuseError,
    );
    // Same bytes given as a Buffer and as a string are still a reuse.
    assert.throws(
      () => createWshub({ secret: Buffer.from(STRONG), broadcastEnabled: true, broadcastSecret: STRONG }),
      SecretReuseError,
    );
    assert.doesNotThrow(() =>
      createWshub({ secret: STRONG, broadcastEnabled: true, broadcastSecret: OTHER }),
    );
    assert.doesNotThrow(() =>
      createWshub({ secret: STRONG, broadcastEnabled: true, broadcastAuthorizer: () => false }),
    );
  });

  test('secrets are copied: mutating the caller buffers after construction changes nothing', async () => {
    const secret = randomBytes(32);
    const original = Buffer.from(secret);
    const broadcastSecret = Buffer.from(OTHER);
    const hub = await startHub({ secret, broadcastEnabled: true, broadcastSecret });
    secret.fill(0);
    broadcastSecret.fill(0x41);
    const token = await makeToken({ sub: 'copy' }, { secret: original });
    const client = await connectClient(hub.url(), { headers: { Authorization: `Bearer ${token}` } });
    const zeroed = await makeToken({ sub: 'x' }, { secret: Buffer.alloc(32, 0) });
    await expectRefused(
      hub.url(),
      { headers: { Authorization: `Bearer ${zeroed}` } },
      403,
      'WEBSOCKET_INVALID_TOKEN',
    );
    const post = (auth: string) =>
      rawHttp(
        hub.port,
        `POST /_admin/broadcast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${auth}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`,
      );
    assert.equal((await post(OTHER)).status, 204);
    assert.equal((await post('A'.repeat(32))).status, 401);
    client.conn.close();
    await client.conn.closed();
  });
});

describe('numbers and paths', () => {
  const numeric = [
    'workerCount',
    'jobQueueSize',
    'sendQueueSize',
    'sendTimeout',
    'writeTimeout',
    'broadcastMaxBytes',
    'maxRoomRegistrations',
    'maxRoomConnections',
    'maxConnectionRate',
    'readLimit',
    'pingPeriod',
    'pongWait',
    'closeTimeout',
  ] as const;

  for (const key of numeric) {
    test(`negative or NaN ${key} → ConfigError naming it`, () => {
      for (const value of [-1, -0.5, Number.NaN]) {
        assert.throws(
          () => createWshub({ secret: STRONG, [key]: value }),
          (error: unknown) => error instanceof ConfigError && error.option === key,
          `${key} = ${value}`,
        );
      }
    });
  }

  test('zero sizes that make no sense are refused; zero limits mean unlimited', () => {
    assert.throws(() => createWshub({ secret: STRONG, sendQueueSize: 0 }), ConfigError);
    assert.throws(() => createWshub({ secret: STRONG, workerCount: 0 }), ConfigError);
    assert.throws(() => createWshub({ secret: STRONG, readLimit: 64 * 1024 * 1024 + 1 }), ConfigError);
    assert.doesNotThrow(() =>
      createWshub({ secret: STRONG, maxRoomConnections: 0, maxRoomRegistrations: 0, maxConnectionRate: 0 }),
    );
  });

  test('unknown send behaviour → ConfigError', () => {
    assert.throws(
      () => createWshub({ secret: STRONG, sendBehavior: 'queue' as unknown as 'drop' }),
      ConfigError,
    );
  });

  test('empty or relative paths, and a broadcast path equal to the ws path → ConfigError', () => {
    assert.throws(() => createWshub({ secret: STRONG, wsRoutePath: '' }), ConfigError);
    assert.throws(() => createWshub({ secret: STRONG, wsRoutePath: 'ws' }), ConfigError);
    assert.throws(() => createWshub({ secret: STRONG, broadcastPath: '' }), ConfigError);
    assert.throws(
      () =>
        createWshub({
          secret: STRONG,
          broadcastEnabled: true,
          broadcastSecret: OTHER,
          broadcastPath: '/ws',
        }),
      ConfigError,
    );
  });

  test('"*" among allowedOrigins is kept as a literal; non-strings are refused', () => {
    assert.deepEqual(createWshub({ secret: STRONG, allowedOrigins: ['*'] }).config.allowAllOrigins, false);
    assert.throws(
      () => createWshub({ secret: STRONG, allowedOrigins: [42 as unknown as string] }),
      ConfigError,
    );
  });

  test('allowedOrigins is copied', async () => {
    const origins = ['https://a.example'];
    const hub = await startHub({ allowedOrigins: origins });
    origins.push('https://b.example');
    await expectRefused(
      hub.url(),
      { headers: { Origin: 'https://b.example' } },
      403,
      'WEBSOCKET_FORBIDDEN_ORIGIN',
    );
  });
});

describe('mounting', () => {
  test('attaching to the same server twice throws', () => {
    const ws = createWshub({ secret: STRONG });
    const server = createServer();
    ws.attach(server);
    assert.throws(() => ws.attach(server), ConfigError);
    const own = ws.createServer();
    assert.throws(() => ws.attach(own), ConfigError);
  });

  test('a custom wsRoutePath is the only upgrade endpoint', async () => {
    const hub = await startHub({ wsRoutePath: '/live' });
    const token = await makeToken();
    const client = await connectClient(hub.url('/live'), { headers: { Authorization: `Bearer ${token}` } });
    const wrong = await rawHttp(
      hub.port,
      `GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    assert.equal(wrong.status, 404);
    client.conn.close();
    await client.conn.closed();
  });

  test('createServer(fallback) serves other plain requests', async () => {
    const ws = createWshub({ secret: STRONG, pingPeriod: 0 });
    const server = ws.createServer((_req, res) => res.writeHead(200, { 'Content-Length': 3 }).end('app'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const response = await rawHttp(port, 'GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.equal(response.status, 200);
      assert.equal(response.body, 'app');
    } finally {
      await ws.shutdown({ timeout: 100 });
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
