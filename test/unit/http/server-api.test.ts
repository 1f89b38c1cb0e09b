// The Centrifugo-compatible server API over a real node:http server on
// loopback, against an in-memory ChannelApi: every method, every error
// path, and every bound (method, key, path, body size, body time, JSON
// shape and depth, broadcast size, a failing or hung channel node).
import assert from 'node:assert/strict';
import crypto, { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { syncBuiltinESMExports } from 'node:module';
import { after, afterEach, before, beforeEach, describe, mock, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkApiKey } from '../../../src/config.ts';
import { ConfigError } from '../../../src/errors.ts';
import { AuthFailureLog } from '../../../src/http/admin-broadcast.ts';
import { HttpRejection, type RejectionKind } from '../../../src/http/rejections.ts';
import {
  apiAuthFailureLog,
  handleServerApi,
  newServerApiCounters,
  SERVER_API_METHODS,
  type ServerApiCounters,
  type ServerApiLogEntry,
  type ServerApiOptions,
} from '../../../src/http/server-api.ts';
import { FakeChannelApi } from '../../helpers/fake-channel-api.ts';
import { closeServer, trackSockets } from '../../helpers/leaks.ts';
import { parseErrorBody, rawHttp, type RawResponse } from '../../e2e/server/harness.ts';

const KEY = randomBytes(32).toString('base64url');

interface Running {
  port: number;
  fake: FakeChannelApi;
  counters: ServerApiCounters;
  logs: ServerApiLogEntry[];
  authLines: Array<[number, string | undefined]>;
}

let server: Server | undefined;
let running: Running;

/** Starts the handler on 127.0.0.1 with a fresh fake; `options` replace the defaults. */
async function start(options: Partial<ServerApiOptions> = {}): Promise<Running> {
  const fake = new FakeChannelApi({
    namespaces: ['chat', 'plain'],
    history: ['', 'chat'],
    presence: ['chat'],
  });
  const counters = newServerApiCounters();
  const logs: ServerApiLogEntry[] = [];
  const authLines: Array<[number, string | undefined]> = [];
  const full: ServerApiOptions = {
    api: fake,
    key: Buffer.from(KEY),
    counters,
    log: (entry) => logs.push(entry),
    authFailures: new AuthFailureLog(60_000, (count, remote) => authLines.push([count, remote])),
    ...options,
  };
  server = trackSockets(
    createServer((request, response) => {
      void handleServerApi(request, response, full);
    }),
  );
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  running = { port: (server.address() as AddressInfo).port, fake, counters, logs, authLines };
  return running;
}

afterEach(async () => {
  if (server !== undefined) await closeServer(server);
  server = undefined;
});

interface PostOptions {
  path?: string;
  method?: string;
  /** Header lines to send; the default is the right X-API-Key. */
  headers?: Record<string, string>;
}

/** Sends one request and resolves with the raw response. */
function send(body: string | Buffer, options: PostOptions = {}): Promise<RawResponse> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  let head = `${options.method ?? 'POST'} ${options.path ?? '/api/info'} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  head += `Content-Length: ${bytes.length}\r\nConnection: close\r\nContent-Type: application/json\r\n`;
  for (const [name, value] of Object.entries(options.headers ?? { 'X-API-Key': KEY })) {
    head += `${name}: ${value}\r\n`;
  }
  return rawHttp(running.port, `${head}\r\n`, bytes);
}

interface CommandError {
  code: number;
  message: string;
}
/** The parts of results these tests read. */
interface Result {
  [field: string]: unknown;
  publications?: Array<{ data: unknown }>;
  responses?: unknown[];
  nodes?: unknown[];
}
interface Reply {
  result?: Result;
  error?: CommandError;
}

/** Calls `method` with `body` (a JSON value) and returns the parsed 200 reply. */
async function call(method: string, body: unknown = {}): Promise<Reply> {
  const response = await send(JSON.stringify(body), { path: `/api/${method}` });
  assert.equal(response.status, 200, response.body);
  assert.match(response.headers['content-type'] ?? '', /^application\/json/);
  return JSON.parse(response.body) as Reply;
}

function assertRefusal(response: RawResponse, kind: RejectionKind): void {
  assert.equal(response.status, kind.status, response.body);
  assert.match(response.headers['content-type'] ?? '', /^application\/json/);
  const { error } = parseErrorBody(response.body);
  assert.equal(error.code, kind.code);
  assert.equal(error.category, kind.category);
}

function assertCommandError(
  reply: { error?: { code: number; message: string } },
  code: number,
  text?: RegExp,
) {
  assert.ok(reply.error, `expected error ${code}, got ${JSON.stringify(reply)}`);
  assert.equal(reply.error.code, code, reply.error.message);
  assert.equal(typeof reply.error.message, 'string');
  if (text) assert.match(reply.error.message, text);
  assert.equal('result' in reply, false);
}

describe('server API methods', () => {
  beforeEach(async () => {
    await start();
  });

  test('publish: the result carries the stream position; data, skip_history and tags reach the channel', async () => {
    const first = await call('publish', {
      channel: 'chat:1',
      data: { text: 'hi' },
      tags: { kind: 'greeting' },
    });
    assert.deepEqual(first, { result: { offset: 1, epoch: 'epoch-1' } });
    const second = await call('publish', { channel: 'chat:1', data: [1, 2], skip_history: true });
    assert.deepEqual(second, { result: { offset: 2, epoch: 'epoch-1' } });
    assert.deepEqual(running.fake.calls, [
      { method: 'publish', args: ['chat:1', { text: 'hi' }, { tags: { kind: 'greeting' } }] },
      { method: 'publish', args: ['chat:1', [1, 2], { skipHistory: true }] },
    ]);
    const history = await call('history', { channel: 'chat:1', limit: -1 });
    assert.deepEqual(history.result?.publications, [
      { data: { text: 'hi' }, offset: 1, tags: { kind: 'greeting' } },
    ]);
  });

  test('publish to a channel without history: an empty result', async () => {
    assert.deepEqual(await call('publish', { channel: 'plain:x', data: 'text' }), { result: {} });
  });

  test('publish: null is data; absent data, no channel, unknown channel are command errors', async () => {
    assert.deepEqual(await call('publish', { channel: 'news', data: null }), {
      result: { offset: 1, epoch: 'epoch-1' },
    });
    assertCommandError(await call('publish', { channel: 'news' }), 107, /data is required/);
    assertCommandError(await call('publish', { data: 1 }), 107, /channel is required/);
    assertCommandError(await call('publish', { channel: '', data: 1 }), 107, /channel is required/);
    assertCommandError(await call('publish', { channel: 'nope:1', data: 1 }), 102, /unknown channel/);
  });

  test('publish: b64data, idempotency_key and version are refused with 107, and nothing is published', async () => {
    const b64data = Buffer.from([0, 1, 2, 255]).toString('base64');
    assertCommandError(await call('publish', { channel: 'news', b64data }), 107, /b64data is not supported/);
    assertCommandError(await call('publish', { channel: 'news', data: 1, b64data }), 107, /b64data/);
    assertCommandError(
      await call('publish', { channel: 'news', data: 1, idempotency_key: 'k' }),
      107,
      /idempotency_key/,
    );
    assertCommandError(await call('publish', { channel: 'news', data: 1, version: 3 }), 107, /version/);
    assert.deepEqual(running.fake.calls, []);
    // Empty values are what Go's zero values look like: accepted as "not given".
    assert.ok((await call('publish', { channel: 'news', data: 1, b64data: '', idempotency_key: '' })).result);
  });

  test('broadcast: one response per channel, in order, with each channel its own error', async () => {
    running.fake.failing.add('chat:down');
    const reply = await call('broadcast', {
      channels: ['chat:a', 'nope:b', '', 'chat:down', 'plain:c', 'chat:a'],
      data: { n: 1 },
    });
    assert.deepEqual(reply.result?.responses, [
      { result: { offset: 1, epoch: 'epoch-1' } },
      { error: { code: 102, message: 'unknown channel' } },
      { error: { code: 107, message: 'bad request: channel is required' } },
      { error: { code: 100, message: 'internal server error' } },
      { result: {} },
      { result: { offset: 2, epoch: 'epoch-1' } },
    ]);
    assert.equal(running.counters.api_errors, 1, 'a broadcast with a failed channel counts as an error');
  });

  test('broadcast: no channels, too many channels, b64data: 107 and nothing published', async () => {
    assertCommandError(await call('broadcast', { channels: [], data: 1 }), 107, /channels are required/);
    assertCommandError(await call('broadcast', { data: 1 }), 107, /channels are required/);
    const many = Array.from({ length: 1001 }, (_, i) => `c${i}`);
    assertCommandError(await call('broadcast', { channels: many, data: 1 }), 107, /at most 1000 channels/);
    assertCommandError(await call('broadcast', { channels: ['a'], b64data: 'AAEC' }), 107, /b64data/);
    assert.deepEqual(running.fake.calls, []);
    const max = Array.from({ length: 1000 }, (_, i) => `c${i}`);
    const reply = await call('broadcast', { channels: max, data: 1 });
    assert.equal(reply.result?.responses?.length, 1000);
    assert.equal(running.fake.calls.length, 1000);
  });

  test('presence and presence_stats: the subscribers; 108 where presence is off, 102 for an unknown channel', async () => {
    running.fake.connect('c1', 'alice', ['chat:room'], { name: 'Alice' });
    running.fake.connect('c2', 'alice', ['chat:room']);
    running.fake.connect('c3', 'bob', ['chat:room', 'news']);
    const presence = await call('presence', { channel: 'chat:room' });
    assert.deepEqual(presence.result, {
      presence: {
        c1: { user: 'alice', client: 'c1', conn_info: { name: 'Alice' } },
        c2: { user: 'alice', client: 'c2' },
        c3: { user: 'bob', client: 'c3' },
      },
    });
    assert.deepEqual(await call('presence_stats', { channel: 'chat:room' }), {
      result: { num_clients: 3, num_users: 2 },
    });
    assertCommandError(await call('presence', { channel: 'news' }), 108, /not available/);
    assertCommandError(await call('presence_stats', { channel: 'news' }), 108);
    assertCommandError(await call('presence', { channel: 'nope:x' }), 102);
    assertCommandError(await call('presence', {}), 107, /channel is required/);
    assertCommandError(await call('presence_stats', {}), 107);
  });

  test('history: limit, since, reverse; the position alone without a limit; 108, 112', async () => {
    for (let i = 1; i <= 5; i++) await call('publish', { channel: 'chat:h', data: i });
    const position = await call('history', { channel: 'chat:h' });
    assert.deepEqual(position, { result: { publications: [], offset: 5, epoch: 'epoch-1' } });
    const two = await call('history', { channel: 'chat:h', limit: 2 });
    assert.deepEqual(
      two.result?.publications?.map((p) => p.data),
      [1, 2],
    );
    const since = await call('history', {
      channel: 'chat:h',
      limit: -1,
      since: { offset: 3, epoch: 'epoch-1' },
    });
    assert.deepEqual(
      since.result?.publications?.map((p) => p.data),
      [4, 5],
    );
    const reversed = await call('history', { channel: 'chat:h', limit: 2, reverse: true });
    assert.deepEqual(
      reversed.result?.publications?.map((p) => p.data),
      [5, 4],
    );
    assertCommandError(
      await call('history', { channel: 'chat:h', limit: 1, since: { offset: 1, epoch: 'other' } }),
      112,
      /unrecoverable position/,
    );
    assertCommandError(await call('history', { channel: 'plain:x' }), 108);
    assertCommandError(await call('history', {}), 107);
    assert.deepEqual(running.fake.calls.at(-2)?.args, [
      'chat:h',
      { limit: 1, since: { offset: 1, epoch: 'other' } },
    ]);
  });

  test('history_remove: the publications go, the position stays', async () => {
    await call('publish', { channel: 'chat:r', data: 1 });
    assert.deepEqual(await call('history_remove', { channel: 'chat:r' }), { result: {} });
    assert.deepEqual((await call('history', { channel: 'chat:r', limit: -1 })).result, {
      publications: [],
      offset: 1,
      epoch: 'epoch-1',
    });
    assertCommandError(await call('history_remove', { channel: 'plain:r' }), 108);
    assertCommandError(await call('history_remove', {}), 107);
  });

  test('unsubscribe: the user (or one client) leaves the channel; session is refused', async () => {
    running.fake.connect('c1', 'alice', ['chat:u']);
    running.fake.connect('c2', 'alice', ['chat:u']);
    running.fake.connect('c3', 'bob', ['chat:u']);
    assert.deepEqual(await call('unsubscribe', { user: 'alice', channel: 'chat:u', client: 'c2' }), {
      result: {},
    });
    assert.deepEqual(running.fake.unsubscribed, ['c2@chat:u']);
    assert.deepEqual(await call('unsubscribe', { user: 'alice', channel: 'chat:u' }), { result: {} });
    assert.deepEqual(running.fake.unsubscribed, ['c2@chat:u', 'c1@chat:u']);
    assertCommandError(
      await call('unsubscribe', { user: 'bob', channel: 'chat:u', session: 's' }),
      107,
      /session/,
    );
    assertCommandError(await call('unsubscribe', { user: 'bob' }), 107, /channel is required/);
    assertCommandError(await call('unsubscribe', { user: 'bob', channel: 'nope:u' }), 102);
    assert.deepEqual(running.fake.unsubscribed, ['c2@chat:u', 'c1@chat:u']);
  });

  test('disconnect: the default and a custom disconnect; bad codes, whitelist and session are refused', async () => {
    running.fake.connect('c1', 'alice', []);
    running.fake.connect('c2', 'bob', []);
    running.fake.connect('c3', 'bob', []);
    assert.deepEqual(await call('disconnect', { user: 'alice' }), { result: {} });
    assert.deepEqual(
      await call('disconnect', { user: 'bob', client: 'c3', disconnect: { code: 4100, reason: 'bye' } }),
      {
        result: {},
      },
    );
    assert.deepEqual(Object.fromEntries(running.fake.disconnected), {
      c1: { code: 3503, reason: 'force disconnect' },
      c3: { code: 4100, reason: 'bye' },
    });
    // An SDK's empty Disconnect object: the default disconnect.
    assert.deepEqual(await call('disconnect', { user: 'nobody', disconnect: { code: 0, reason: '' } }), {
      result: {},
    });
    assert.deepEqual(running.fake.calls.at(-1)?.args, ['nobody', {}]);
    const before = running.fake.calls.length;
    assertCommandError(
      await call('disconnect', { user: 'bob', disconnect: { code: 1000, reason: '' } }),
      107,
      /code/,
    );
    assertCommandError(
      await call('disconnect', { user: 'bob', disconnect: { code: 4000, reason: 'x'.repeat(124) } }),
      107,
    );
    assertCommandError(await call('disconnect', { user: 'bob', whitelist: ['c2'] }), 107, /whitelist/);
    assertCommandError(await call('disconnect', { user: 'bob', session: 's' }), 107, /session/);
    assertCommandError(await call('disconnect', {}), 107, /user is required/);
    assert.equal(running.fake.calls.length, before, 'no refused disconnect reached the channel node');
    assert.ok(!running.fake.disconnected.has('c2'));
  });

  test('channels: all, or those matching a pattern; an over-long pattern is refused', async () => {
    running.fake.connect('c1', 'a', ['chat:1', 'chat:2']);
    running.fake.connect('c2', 'b', ['chat:1', 'news']);
    assert.deepEqual(await call('channels'), {
      result: {
        channels: { 'chat:1': { num_clients: 2 }, 'chat:2': { num_clients: 1 }, news: { num_clients: 1 } },
      },
    });
    assert.deepEqual(await call('channels', { pattern: 'chat:*' }), {
      result: { channels: { 'chat:1': { num_clients: 2 }, 'chat:2': { num_clients: 1 } } },
    });
    assert.deepEqual(
      running.fake.calls.map((c) => c.args),
      [[undefined], ['chat:*']],
    );
    assertCommandError(await call('channels', { pattern: '*'.repeat(1025) }), 107, /pattern/);
  });

  test('info: the nodes', async () => {
    running.fake.connect('c1', 'a', ['x', 'y']);
    const reply = await call('info');
    assert.deepEqual(reply.result?.nodes, [
      {
        uid: 'fake-node-1',
        name: 'fake',
        version: '0.0.0-test',
        num_clients: 1,
        num_users: 1,
        num_channels: 2,
        num_subs: 2,
        uptime: 7,
      },
    ]);
  });

  test('a null body is an empty request; unknown fields are ignored', async () => {
    const reply = await send('null', { path: '/api/presence' });
    assertCommandError(JSON.parse(reply.body) as { error?: { code: number; message: string } }, 107);
    assert.ok((await call('info', { something: 'else', nested: { a: 1 } })).result);
  });

  test('counters: requests, errors and auth failures', async () => {
    await call('info');
    await call('presence', {});
    await send('{}', { headers: {} });
    await send('{', { path: '/api/info' });
    assert.deepEqual(running.counters, { api_requests: 4, api_errors: 2, api_auth_failures: 1 });
  });
});

describe('server API key', () => {
  beforeEach(async () => {
    await start();
  });
  afterEach(() => {
    mock.restoreAll();
    syncBuiltinESMExports();
  });

  const EVERY_METHOD_BODY = JSON.stringify({ channel: 'news', channels: ['news'], data: 1, user: 'u' });

  test('no key, a wrong key, a key of another length, a wrong scheme: 401 with the JSON body, nothing executed', async () => {
    const wrong: Array<Record<string, string>> = [
      {},
      { 'X-API-Key': randomBytes(32).toString('base64url') },
      { 'X-API-Key': KEY.slice(0, -1) },
      { 'X-API-Key': `${KEY}x` },
      { Authorization: `Bearer ${KEY}` },
      { Authorization: `apikey ${KEY} extra` },
      // X-API-Key, when present, is the one that counts (as in Centrifugo).
      { 'X-API-Key': 'wrong', Authorization: `apikey ${KEY}` },
    ];
    for (const headers of wrong) {
      for (const method of SERVER_API_METHODS) {
        const response = await send(EVERY_METHOD_BODY, { path: `/api/${method}`, headers });
        assertRefusal(response, HttpRejection.API_UNAUTHORIZED);
        assert.equal(response.headers['connection'], 'close');
      }
    }
    assert.deepEqual(running.fake.calls, [], 'a request without the right key executes nothing');
    const failures = wrong.length * SERVER_API_METHODS.length;
    assert.equal(running.counters.api_auth_failures, failures);
    assert.equal(running.counters.api_errors, 0, 'auth failures are counted on their own');
    // AuthFailureLog: the first failure at once, the rest summed into a later line.
    assert.deepEqual(running.authLines, [[1, '127.0.0.1']]);
  });

  test('X-API-Key and Authorization: apikey both let the request in', async () => {
    const viaHeader = await send('{}', { headers: { 'X-API-Key': KEY } });
    const viaAuthorization = await send('{}', { headers: { Authorization: `apikey ${KEY}` } });
    const caseless = await send('{}', { headers: { Authorization: `ApiKey ${KEY}` } });
    for (const response of [viaHeader, viaAuthorization, caseless])
      assert.equal(response.status, 200, response.body);
    assert.deepEqual(running.fake.methods(), ['info', 'info', 'info']);
  });

  test('the key is compared with timingSafeEqual, also when none is presented', async () => {
    const spy = mock.method(crypto, 'timingSafeEqual');
    syncBuiltinESMExports();
    await send('{}', { headers: {} });
    const forMissing = spy.mock.callCount();
    await send('{}', { headers: { 'X-API-Key': 'short' } });
    const forShort = spy.mock.callCount() - forMissing;
    await send('{}', { headers: { 'X-API-Key': KEY } });
    const forRight = spy.mock.callCount() - forMissing - forShort;
    assert.ok(forMissing >= 1, 'a missing key is still compared');
    assert.ok(forShort >= 1, 'a key of another length is compared');
    assert.ok(forRight >= 1);
    for (const c of spy.mock.calls) {
      const [a, b] = c.arguments as [Buffer, Buffer];
      assert.equal(a.length, b.length, 'compared over equal-length digests');
    }
  });

  test('a configured key under 32 bytes lets nothing in, not even itself', async () => {
    await closeServer(server!);
    await start({ key: Buffer.from('short-key') });
    const response = await send('{}', { headers: { 'X-API-Key': 'short-key' } });
    assertRefusal(response, HttpRejection.API_UNAUTHORIZED);
    assert.deepEqual(running.fake.calls, []);
  });

  test('apiAuthFailureLog reports api_auth_failed warnings', () => {
    const entries: ServerApiLogEntry[] = [];
    const log = apiAuthFailureLog((entry) => entries.push(entry));
    log.record('10.0.0.1');
    log.record('10.0.0.2');
    log.flush();
    assert.deepEqual(entries, [
      { level: 'warn', event: 'api_auth_failed', count: 1, remote: '10.0.0.1' },
      { level: 'warn', event: 'api_auth_failed', count: 1, remote: '10.0.0.2' },
    ]);
    assert.equal(log.total, 2);
  });
});

describe('checkApiKey', () => {
  const secret = randomBytes(32);

  test('a key of 32 bytes or more that is not the token secret: a copy of it', () => {
    const key = randomBytes(32);
    const checked = checkApiKey(key, secret);
    assert.ok(checked.equals(key));
    key.fill(0);
    assert.ok(!checked.equals(key), 'a copy, not the caller buffer');
    assert.equal(checkApiKey('k'.repeat(40)).toString(), 'k'.repeat(40));
  });

  test('missing, short, or the token secret: ConfigError naming the option', () => {
    const cases: Array<[Uint8Array | string | undefined, RegExp]> = [
      [undefined, /required/],
      ['', /at least 32 bytes, got 0/],
      ['k'.repeat(31), /at least 32 bytes, got 31/],
      [Buffer.from(secret), /differ from the token secret/],
    ];
    for (const [key, message] of cases) {
      assert.throws(
        () => checkApiKey(key, secret),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.option === 'apiKey' &&
          error.code === 'INVALID_CONFIG' &&
          message.test(error.message),
      );
    }
    assert.throws(() => checkApiKey('x', undefined, 'channels.apiKey'), /channels\.apiKey/);
    // A string key and a string secret are compared as their UTF-8 bytes.
    assert.throws(
      () => checkApiKey('é'.repeat(16), Buffer.from('é'.repeat(16))),
      /differ from the token secret/,
    );
  });
});

describe('server API bounds', () => {
  test('anything but POST: 405 with Allow: POST, before the key is even looked at', async () => {
    await start();
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const response = await send('', { method, path: '/api/info', headers: {} });
      assertRefusal(response, HttpRejection.METHOD_NOT_ALLOWED);
      assert.equal(response.headers['allow'], 'POST');
    }
    assert.equal(running.counters.api_auth_failures, 0);
  });

  test('an unknown method, the bare prefix, another prefix: 404 JSON', async () => {
    await start();
    for (const path of [
      '/api/nope',
      '/api',
      '/api/',
      '/api/publish/extra',
      '/other/publish',
      '/api/Publish',
    ]) {
      assertRefusal(await send('{}', { path }), HttpRejection.NOT_FOUND);
    }
    assert.equal((await send('{}', { path: '/api/info?x=1' })).status, 200, 'a query is ignored');
  });

  test('apiPath moves the methods', async () => {
    await start({ apiPath: '/centrifugo/api/' });
    assert.equal((await send('{}', { path: '/centrifugo/api/info' })).status, 200);
    assertRefusal(await send('{}', { path: '/api/info' }), HttpRejection.NOT_FOUND);
  });

  test('a body over maxBodyBytes: 413, declared or streamed, and nothing executed', async () => {
    await start({ maxBodyBytes: 100 });
    const big = JSON.stringify({ channel: 'news', data: 'x'.repeat(200) });
    const declared = await send(big, { path: '/api/publish' });
    assertRefusal(declared, HttpRejection.BODY_TOO_LARGE);
    assert.match(parseErrorBody(declared.body).error.message, /100 bytes/);
    // Chunked: no Content-Length to refuse on, the read itself stops at the bound.
    let head = 'POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n';
    head += `Connection: close\r\nX-API-Key: ${KEY}\r\n\r\n`;
    const chunk = Buffer.from(big);
    const chunked = Buffer.concat([
      Buffer.from(`${chunk.length.toString(16)}\r\n`),
      chunk,
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    assertRefusal(await rawHttp(running.port, head, chunked), HttpRejection.BODY_TOO_LARGE);
    assert.deepEqual(running.fake.calls, []);
    const fits = JSON.stringify({ channel: 'news', data: 'x'.repeat(50) });
    assert.equal((await send(fits, { path: '/api/publish' })).status, 200);
  });

  test('a body that does not arrive within bodyTimeoutMs: 408, then the socket is closed', async () => {
    await start({ bodyTimeoutMs: 300 });
    const socket = connect(running.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    let received = '';
    socket.setEncoding('utf8').on('data', (d: string) => (received += d));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    const started = performance.now();
    socket.write(
      `POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nX-API-Key: ${KEY}\r\n\r\n{"chan`,
    );
    // Keep trickling: the answer must come anyway, and the socket must not stay open.
    const trickle = setInterval(() => socket.writable && socket.write(' '), 50);
    try {
      await closed;
    } finally {
      clearInterval(trickle);
    }
    const elapsed = performance.now() - started;
    assert.match(received, /^HTTP\/1\.1 408 /);
    assert.equal(
      parseErrorBody(received.slice(received.indexOf('\r\n\r\n') + 4)).error.code,
      'REQUEST_TIMEOUT',
    );
    assert.ok(elapsed >= 250, `answered after ${Math.round(elapsed)} ms`);
    assert.ok(elapsed < 300 + 2_000 + 3_000, `closed after ${Math.round(elapsed)} ms`);
    assert.deepEqual(running.fake.calls, []);
  });

  test('a client that goes away mid-body: nothing executed, nothing left open', async () => {
    await start();
    const socket = connect(running.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(
      `POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nX-API-Key: ${KEY}\r\n\r\n{"ch`,
    );
    await sleep(50);
    socket.destroy();
    await sleep(100);
    assert.deepEqual(running.fake.calls, []);
    assert.equal(await new Promise<number>((r) => server!.getConnections((_, n) => r(n))), 0);
  });

  test('unparsable JSON or non-UTF-8: 400 INVALID_JSON; nothing executed', async () => {
    await start();
    for (const body of ['{', '', 'nul', '{"channel": "news", "data": }', "{'channel': 1}"]) {
      assertRefusal(await send(body, { path: '/api/publish' }), HttpRejection.INVALID_JSON);
    }
    const latin1 = Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d]);
    const notUtf8 = await send(latin1, { path: '/api/publish' });
    assertRefusal(notUtf8, HttpRejection.INVALID_JSON);
    assert.match(parseErrorBody(notUtf8.body).error.message, /UTF-8/);
    assert.deepEqual(running.fake.calls, []);
  });

  test('a body of the wrong shape: 400 API_BAD_REQUEST naming the field; nothing executed', async () => {
    await start();
    const cases: Array<[string, unknown, RegExp]> = [
      ['publish', [], /JSON object/],
      ['publish', 'text', /JSON object/],
      ['publish', { channel: 5, data: 1 }, /"channel" must be a string/],
      ['publish', { channel: 'news', data: 1, skip_history: 'yes' }, /"skip_history" must be a boolean/],
      ['publish', { channel: 'news', data: 1, tags: { a: 1 } }, /"tags"/],
      ['publish', { channel: 'news', data: 1, tags: ['a'] }, /"tags" must be an object/],
      ['broadcast', { channels: 'news', data: 1 }, /"channels" must be an array of strings/],
      ['broadcast', { channels: ['a', 2], data: 1 }, /"channels"/],
      ['history', { channel: 'chat:h', limit: 1.5 }, /"limit" must be an integer/],
      ['history', { channel: 'chat:h', limit: 2 ** 31 }, /"limit"/],
      ['history', { channel: 'chat:h', since: { offset: -1 } }, /"since.offset"/],
      ['history', { channel: 'chat:h', since: 3 }, /"since" must be an object/],
      ['history', { channel: 'chat:h', reverse: 1 }, /"reverse"/],
      ['disconnect', { user: 'u', disconnect: { code: 'x' } }, /"disconnect.code"/],
      ['disconnect', { user: 7 }, /"user"/],
      ['unsubscribe', { user: 'u', channel: 'chat:1', client: {} }, /"client"/],
      ['channels', { pattern: 1 }, /"pattern"/],
    ];
    for (const [method, body, message] of cases) {
      const response = await send(JSON.stringify(body), { path: `/api/${method}` });
      assertRefusal(response, HttpRejection.API_BAD_REQUEST);
      assert.match(parseErrorBody(response.body).error.message, message, `${method} ${JSON.stringify(body)}`);
    }
    assert.deepEqual(running.fake.calls, []);
  });

  test('JSON nested deeper than maxJsonDepth: 400 before parsing; brackets in strings do not count', async () => {
    await start({ maxJsonDepth: 8 });
    const deep = (n: number): string => `{"channel":"news","data":${'['.repeat(n)}${']'.repeat(n)}}`;
    const response = await send(deep(8), { path: '/api/publish' });
    assertRefusal(response, HttpRejection.API_BAD_REQUEST);
    assert.match(parseErrorBody(response.body).error.message, /nested too deeply/);
    assert.equal(
      (await send(deep(7), { path: '/api/publish' })).status,
      200,
      'the body object plus 7 arrays is depth 8',
    );
    const inString = JSON.stringify({ channel: 'news', data: '[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{\\"' });
    assert.equal((await send(inString, { path: '/api/publish' })).status, 200);
    assert.equal(running.fake.calls.length, 2);
  });

  test('a huge nesting under the default depth limit is refused quickly, the server stays up', async () => {
    await start();
    const body = `{"channel":"news","data":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
    const response = await send(body, { path: '/api/publish' });
    assertRefusal(response, HttpRejection.API_BAD_REQUEST);
    assert.ok(response.elapsedMs < 2_000, `${Math.round(response.elapsedMs)} ms`);
    assert.equal((await send('{}')).status, 200);
  });

  test('a channel node that throws: command error 100 and an api_call_failed log event', async () => {
    await start();
    running.fake.failing.add('news');
    assertCommandError(await call('publish', { channel: 'news', data: 1 }), 100, /internal server error/);
    assert.equal(running.logs.length, 1);
    assert.deepEqual(
      { ...running.logs[0], remote: undefined },
      {
        level: 'error',
        event: 'api_call_failed',
        method: 'publish',
        error: 'engine down for news',
        remote: undefined,
      },
    );
  });

  test('a log hook that throws: 500 INTERNAL_ERROR, and the server keeps serving', async () => {
    await start({
      log: () => {
        throw new Error('logger broken');
      },
    });
    running.fake.failing.add('news');
    assertRefusal(
      await send(JSON.stringify({ channel: 'news', data: 1 }), { path: '/api/publish' }),
      HttpRejection.INTERNAL_ERROR,
    );
    assert.equal((await send('{}')).status, 200);
  });

  test('a channel node that never answers: command error 100 after callTimeoutMs', async () => {
    await start({ callTimeoutMs: 200 });
    running.fake.hanging.add('news');
    const started = performance.now();
    assertCommandError(await call('publish', { channel: 'news', data: 1 }), 100);
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 180 && elapsed < 2_000, `${Math.round(elapsed)} ms`);
    assert.match(String(running.logs[0]?.['error']), /did not answer within 200 ms/);
  });
});

describe('server API on a server that keeps connections alive', () => {
  let keepAlive: Server;
  let port: number;
  let fake: FakeChannelApi;
  before(async () => {
    fake = new FakeChannelApi();
    keepAlive = trackSockets(
      createServer(
        (request, response) => void handleServerApi(request, response, { api: fake, key: Buffer.from(KEY) }),
      ),
    );
    await new Promise<void>((resolve) => keepAlive.listen(0, '127.0.0.1', resolve));
    port = (keepAlive.address() as AddressInfo).port;
  });
  after(() => closeServer(keepAlive));

  test('several calls on one connection with fetch, then a refused one', async () => {
    const post = (method: string, body: unknown, key = KEY) =>
      fetch(`http://127.0.0.1:${port}/api/${method}`, {
        method: 'POST',
        headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    for (let i = 0; i < 5; i++) {
      const response = await post('publish', { channel: 'news', data: i });
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { result: {} });
    }
    const refused = await post('publish', { channel: 'news', data: 1 }, 'wrong');
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { error: CommandError }).error.code, 'API_UNAUTHORIZED');
    assert.equal(fake.calls.length, 5);
  });
});
