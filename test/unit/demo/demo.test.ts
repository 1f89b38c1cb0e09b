// The demo module over real HTTP and WebSocket connections (Node clients):
// static files and their headers, the token endpoint's validation and room
// grants, the room authorizer, presence counts and chat messages.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Centrifuge, type Subscription } from 'centrifuge';
import WebSocket from 'ws';
import { RoomPasswords } from '../../../src/auth/room-password.ts';
import { HS256TokenAuthenticator, signHS256 } from '../../../src/auth/token.ts';
import { readFile } from 'node:fs/promises';
import { createDemo, DEMO_NAMESPACE, withDemoNamespace } from '../../../src/demo/demo.ts';
import { sdkBundleUrl } from '../../../src/demo/static-files.ts';
import { REFRESH_GRACE_SECONDS } from '../../../src/demo/token-endpoint.ts';
import { createWshub, type WshubServer } from '../../../src/server/server.ts';

const secret = randomBytes(32);
const TTL = 600;
const CHANNEL_TTL = 30;
let ws: WshubServer;
let server: Server;
let base: string;
let wsBase: string;
const clients: WebSocket[] = [];
const sdkClients: Centrifuge[] = [];

before(async () => {
  const roomPasswords = new RoomPasswords({ iterations: 1000 });
  await roomPasswords.setRoomPassword('vip', 'Secret123');
  await roomPasswords.setRoomPassword('chat:secret', 'Secret123');
  const demo = createDemo({
    secret,
    roomPasswords,
    tokenTtlSeconds: TTL,
    channelTokenTtlSeconds: CHANNEL_TTL,
  });
  ws = createWshub({ secret, ...demo.config });
  demo.bind(ws);
  server = ws.createServer((req, res) => {
    if (!demo.handleRequest(req, res)) res.writeHead(404).end('fallback');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}`;
  wsBase = `ws://127.0.0.1:${port}/ws`;
});

after(async () => {
  for (const client of sdkClients) client.disconnect();
  for (const client of clients) client.terminate();
  await ws.shutdown({ timeout: 1000 });
  server.closeAllConnections();
  server.close();
});

async function postToken(body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}/demo/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    json: (await response.json()) as Record<string, unknown>,
  };
}

async function tokenFor(name: string, room: string, password?: string): Promise<string> {
  const { status, json } = await postToken({ name, room, password });
  assert.equal(status, 200, JSON.stringify(json));
  return json.token as string;
}

function errorCode(json: Record<string, unknown>): unknown {
  return (json.error as { code?: unknown } | undefined)?.code;
}

/** A connected client whose messages are queued for `next()`. */
interface Client {
  socket: WebSocket;
  next(): Promise<Record<string, unknown>>;
  closed: Promise<number>;
}

function connect(room: string, token: string, headers: Record<string, string> = {}): Promise<Client> {
  const socket = new WebSocket(`${wsBase}?room=${room}`, ['wshub', `wshub.bearer.${token}`], { headers });
  clients.push(socket);
  const queue: Array<Record<string, unknown>> = [];
  const waiters: Array<(m: Record<string, unknown>) => void> = [];
  socket.on('message', (data) => {
    const message = JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>;
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else queue.push(message);
  });
  const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    socket.on('open', () =>
      resolve({
        socket,
        closed,
        next: () => {
          const queued = queue.shift();
          if (queued) return Promise.resolve(queued);
          return new Promise((r, fail) => {
            const timer = setTimeout(() => fail(new Error('no message within 5 s')), 5000);
            waiters.push((m) => {
              clearTimeout(timer);
              r(m);
            });
          });
        },
      }),
    );
    socket.on('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
    socket.on('error', reject);
  });
}

describe('static files', () => {
  test('GET / serves the page with strict security headers', async () => {
    const response = await fetch(`${base}/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    const csp = response.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /connect-src 'self' ws: wss:/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const html = await response.text();
    assert.match(html, /<script src="\/app\.js"/);
    assert.match(html, /data-testid="join-form"/);
  });

  test('the script and stylesheet are served with their types', async () => {
    const js = await fetch(`${base}/app.js`);
    assert.equal(js.status, 200);
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.match(await js.text(), /new Centrifuge\(/);
    const css = await fetch(`${base}/style.css`);
    assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
    await css.text();
  });

  test('the page loads the centrifuge SDK from this server (the installed package’s browser bundle)', async () => {
    const html = await (await fetch(`${base}/`)).text();
    assert.match(html, /<script src="\/centrifuge\.js" defer><\/script>\s*<script src="\/app\.js"/);
    const sdk = await fetch(`${base}/centrifuge.js`);
    assert.equal(sdk.status, 200);
    assert.equal(sdk.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(sdk.headers.get('x-content-type-options'), 'nosniff');
    const body = Buffer.from(await sdk.arrayBuffer());
    assert.deepEqual(body, await readFile(sdkBundleUrl()));
    assert.match(body.toString('utf8'), /globalThis\.Centrifuge=/);
  });

  test('HEAD has no body; POST is not allowed', async () => {
    const head = await fetch(`${base}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    const post = await fetch(`${base}/app.js`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
  });

  test('other paths are left to the fallback (no file-system access)', async () => {
    for (const path of ['/package.json', '/web/app.js', '/%2e%2e/package.json', '/favicon.ico']) {
      const response = await fetch(`${base}${path}`);
      assert.equal(response.status, 404, path);
      assert.equal(await response.text(), 'fallback');
    }
  });
});

describe('POST /demo/token', () => {
  test('an open room gets a token with a random sub, the name and an expiry, but no room grant', async () => {
    const { status, json, headers } = await postToken({ name: '  Ada  ', room: 'lobby' });
    assert.equal(status, 200);
    assert.equal(headers.get('cache-control'), 'no-store');
    assert.equal(json.room, 'lobby');
    const user = await new HS256TokenAuthenticator(secret).authenticate(json.token as string);
    assert.equal(user.name, 'Ada');
    assert.match(user.id, /^[0-9a-f-]{36}$/);
    assert.equal(user.claims.rooms, undefined);
    const exp = user.claims.exp as number;
    assert.ok(Math.abs(exp - (Math.floor(Date.now() / 1000) + TTL)) <= 2, `exp ${exp}`);
    const again = await postToken({ name: 'Ada', room: 'lobby' });
    const other = await new HS256TokenAuthenticator(secret).authenticate(again.json.token as string);
    assert.notEqual(other.id, user.id);
  });

  test('a protected room needs its password', async () => {
    const missing = await postToken({ name: 'Ada', room: 'vip' });
    assert.equal(missing.status, 403);
    assert.equal(errorCode(missing.json), 'ROOM_PASSWORD_REQUIRED');
    const empty = await postToken({ name: 'Ada', room: 'vip', password: '' });
    assert.equal(errorCode(empty.json), 'ROOM_PASSWORD_REQUIRED');
    const wrong = await postToken({ name: 'Ada', room: 'vip', password: 'secret123' });
    assert.equal(wrong.status, 403);
    assert.equal(errorCode(wrong.json), 'ROOM_PASSWORD_INVALID');
    const right = await postToken({ name: 'Ada', room: 'vip', password: 'Secret123' });
    assert.equal(right.status, 200);
    const user = await new HS256TokenAuthenticator(secret).authenticate(right.json.token as string);
    assert.deepEqual(user.claims.rooms, ['vip']);
  });

  test('invalid requests get 400 with a code', async () => {
    const cases: Array<[unknown, string]> = [
      ['{not json', 'INVALID_JSON'],
      ['[1,2]', 'INVALID_REQUEST'],
      [{ room: 'lobby' }, 'INVALID_NAME'],
      [{ name: '', room: 'lobby' }, 'INVALID_NAME'],
      [{ name: '   ', room: 'lobby' }, 'INVALID_NAME'],
      [{ name: 'x'.repeat(33), room: 'lobby' }, 'INVALID_NAME'],
      [{ name: 'a\u0007b', room: 'lobby' }, 'INVALID_NAME'],
      [{ name: 'Ada', room: 'bad room' }, 'INVALID_ROOM'],
      [{ name: 'Ada', room: '' }, 'INVALID_ROOM'],
      [{ name: 'Ada', room: 'r'.repeat(129) }, 'INVALID_ROOM'],
      [{ name: 'Ada', room: 'lobby', password: 42 }, 'INVALID_PASSWORD'],
    ];
    for (const [body, code] of cases) {
      const { status, json } = await postToken(body);
      assert.equal(status, 400, JSON.stringify(body));
      assert.equal(errorCode(json), code, JSON.stringify(body));
    }
  });

  test('a name of 32 characters is accepted even when they take several bytes', async () => {
    const name = '😀'.repeat(32);
    const { status, json } = await postToken({ name, room: 'lobby' });
    assert.equal(status, 200);
    const user = await new HS256TokenAuthenticator(secret).authenticate(json.token as string);
    assert.equal(user.name, name);
  });

  test('without a room: a short channel token with the name as connection info', async () => {
    const { status, json } = await postToken({ name: ' Ada ' });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.room, undefined);
    const user = await new HS256TokenAuthenticator(secret).authenticate(json.token as string);
    assert.match(user.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(user.claims.info, { name: 'Ada' });
    const exp = user.claims.exp as number;
    assert.ok(Math.abs(exp - (Math.floor(Date.now() / 1000) + CHANNEL_TTL)) <= 2, `exp ${exp}`);
  });

  test('a refresh keeps the user and name of the previous token, also shortly after it expired', async () => {
    const first = await postToken({ name: 'Ada' });
    const user = await new HS256TokenAuthenticator(secret).authenticate(first.json.token as string);
    const refreshed = await postToken({ name: 'Mallory', refresh: first.json.token });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.json));
    const again = await new HS256TokenAuthenticator(secret).authenticate(refreshed.json.token as string);
    assert.equal(again.id, user.id);
    assert.deepEqual(again.claims.info, { name: 'Ada' }, 'the name cannot change on refresh');

    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: 'old-user', name: 'Old', info: { name: 'Old' } };
    const lately = await signHS256({ ...claims, exp: now - REFRESH_GRACE_SECONDS + 60 }, secret);
    const late = await postToken({ name: 'Old', refresh: lately });
    assert.equal(late.status, 200);
    assert.equal(
      (await new HS256TokenAuthenticator(secret).authenticate(late.json.token as string)).id,
      'old-user',
    );

    const cases: Array<[string, unknown]> = [
      ['long expired', await signHS256({ ...claims, exp: now - REFRESH_GRACE_SECONDS - 60 }, secret)],
      ['signed with another secret', await signHS256(claims, randomBytes(32), { expiresInSeconds: 60 })],
      ['not a demo token', await signHS256({ sub: 'x' }, secret, { expiresInSeconds: 60 })],
      ['garbage', 'not.a.token'],
    ];
    for (const [what, refresh] of cases) {
      const refused = await postToken({ name: 'Ada', refresh });
      assert.equal(refused.status, 403, what);
      assert.equal(errorCode(refused.json), 'WEBSOCKET_INVALID_TOKEN', what);
    }
    for (const body of [
      { name: 'Ada', refresh: 42 },
      { name: 'Ada', refresh: '' },
      { name: 'Ada', room: 'lobby', refresh: first.json.token },
    ]) {
      const bad = await postToken(body);
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal(errorCode(bad.json), 'INVALID_REQUEST');
    }
  });

  test('bodies over 4 KiB, other methods and other content types are refused', async () => {
    const big = await postToken({ name: 'Ada', room: 'lobby', pad: 'x'.repeat(4096) });
    assert.equal(big.status, 413);
    assert.equal(errorCode(big.json), 'BODY_TOO_LARGE');
    const get = await fetch(`${base}/demo/token`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    await get.text();
    const form = await postToken('{"name":"Ada","room":"lobby"}', { 'content-type': 'text/plain' });
    assert.equal(form.status, 415);
  });
});

describe('chat over WebSocket', () => {
  test('joins and leaves send the room its member count', async () => {
    const a = await connect('presence', await tokenFor('Ada', 'presence'));
    assert.deepEqual(await a.next(), { type: 'presence', room: 'presence', count: 1 });
    const b = await connect('presence', await tokenFor('Bob', 'presence'));
    assert.deepEqual(await a.next(), { type: 'presence', room: 'presence', count: 2 });
    assert.deepEqual(await b.next(), { type: 'presence', room: 'presence', count: 2 });
    b.socket.close(1000);
    assert.equal(await b.closed, 1000);
    assert.deepEqual(await a.next(), { type: 'presence', room: 'presence', count: 1 });
    a.socket.close(1000);
    await a.closed;
  });

  test('messages reach the whole room with the sender name from the token', async () => {
    const a = await connect('talk', await tokenFor('Ada', 'talk'));
    await a.next();
    const b = await connect('talk', await tokenFor('Bob', 'talk'));
    await a.next();
    await b.next();
    const sentAt = Date.now();
    // A blank message is dropped, and a client-chosen "from" is ignored.
    a.socket.send(JSON.stringify({ type: 'message', text: '   ' }));
    a.socket.send(JSON.stringify({ type: 'message', text: 'hi <b>Bob</b>', from: 'Mallory' }));
    for (const client of [a, b]) {
      const message = await client.next();
      assert.equal(message.type, 'message');
      assert.equal(message.from, 'Ada');
      assert.equal(message.text, 'hi <b>Bob</b>');
      assert.ok(typeof message.at === 'number' && message.at >= sentAt && message.at <= Date.now());
    }
    a.socket.close(1000);
    b.socket.close(1000);
    await Promise.all([a.closed, b.closed]);
  });

  test('malformed client messages close the connection', async () => {
    const token = await tokenFor('Ada', 'rules');
    const cases: Array<[string | Buffer, number]> = [
      ['not json', 1008],
      ['"just a string"', 1008],
      [JSON.stringify({ type: 'shout', text: 'hi' }), 1008],
      [JSON.stringify({ type: 'message', text: 7 }), 1008],
      [JSON.stringify({ type: 'message', text: 'x'.repeat(2001) }), 1009],
      [Buffer.from([1, 2, 3]), 1003],
    ];
    for (const [data, code] of cases) {
      const client = await connect('rules', token);
      await client.next();
      client.socket.send(data);
      assert.equal(await client.closed, code, String(data).slice(0, 40));
    }
    const ok = await connect('rules', token);
    await ok.next();
    ok.socket.send(JSON.stringify({ type: 'message', text: 'x'.repeat(2000) }));
    assert.equal(((await ok.next()).text as string).length, 2000);
    ok.socket.close(1000);
    await ok.closed;
  });

  test('a protected room admits a token with its grant, or the password header', async () => {
    const granted = await tokenFor('Ada', 'vip', 'Secret123');
    const a = await connect('vip', granted);
    assert.deepEqual(await a.next(), { type: 'presence', room: 'vip', count: 1 });

    const plain = await tokenFor('Bob', 'lobby');
    await assert.rejects(connect('vip', plain), /refused with 403/);
    await assert.rejects(connect('vip', plain, { 'X-WebSocket-Room-Password': 'wrong' }), /refused with 403/);
    const b = await connect('vip', plain, { 'X-WebSocket-Room-Password': 'Secret123' });
    assert.equal((await b.next()).count, 2);

    // A grant for one room does not open another protected room.
    const otherGrant = await signHS256({ sub: 'x', name: 'Eve', rooms: ['other'] }, secret);
    await assert.rejects(connect('vip', otherGrant), /refused with 403/);

    a.socket.close(1000);
    b.socket.close(1000);
    await Promise.all([a.closed, b.closed]);
  });
});

describe('channels of the demo', () => {
  test('the chat namespace is added unless the configuration has one', () => {
    assert.deepEqual(withDemoNamespace(), { namespaces: [DEMO_NAMESPACE] });
    const mine = { name: 'chat', presence: true };
    assert.deepEqual(withDemoNamespace({ namespaces: [mine] }), { namespaces: [mine] });
    assert.deepEqual(withDemoNamespace({ presence: true, namespaces: [{ name: 'news' }] }), {
      presence: true,
      namespaces: [{ name: 'news' }, DEMO_NAMESPACE],
    });
  });

  /** An SDK client connected with a channel token from the endpoint, and its subscribe outcome. */
  async function sdkClient(name: string): Promise<Centrifuge> {
    const client = new Centrifuge(`${wsBase.replace(/\/ws$/, '')}/connection/websocket`, {
      websocket: WebSocket,
      getToken: async () => (await postToken({ name })).json.token as string,
      minReconnectDelay: 50,
      maxReconnectDelay: 200,
    });
    sdkClients.push(client);
    const connected = new Promise((resolve) => client.once('connected', resolve));
    client.connect();
    await connected;
    return client;
  }

  function subscribe(client: Centrifuge, channel: string): Promise<{ sub: Subscription; code: number }> {
    const sub = client.newSubscription(channel);
    return new Promise((resolve) => {
      sub.once('subscribed', () => resolve({ sub, code: 0 }));
      sub.once('unsubscribed', (ctx) => resolve({ sub, code: ctx.code }));
      sub.subscribe();
    });
  }

  function nextPublication(sub: Subscription): Promise<{ data: unknown; name: unknown }> {
    return new Promise((resolve) =>
      sub.once('publication', (ctx) => {
        const connInfo = ctx.info?.connInfo as { name?: unknown } | undefined;
        resolve({ data: ctx.data as unknown, name: connInfo?.name });
      }),
    );
  }

  test('chat:* takes publications from subscribers, with presence; protected and other channels are refused', async () => {
    const ada = await sdkClient('Ada');
    const { sub, code } = await subscribe(ada, 'chat:general');
    assert.equal(code, 0);
    const got = nextPublication(sub);
    await sub.publish({ text: 'hello' });
    assert.deepEqual(await got, { data: { text: 'hello' }, name: 'Ada' });
    const presence = await sub.presence();
    assert.deepEqual(
      Object.values(presence.clients).map((c) => c.connInfo as unknown),
      [{ name: 'Ada' }],
    );
    const history = await sub.history({ limit: 10 });
    assert.deepEqual(
      history.publications.map((p) => p.data as unknown),
      [{ text: 'hello' }],
    );

    assert.equal((await subscribe(ada, 'chat:secret')).code, 103, 'a channel named like a protected room');
    assert.equal((await subscribe(ada, 'lobby')).code, 103, 'top-level channels stay closed');
    assert.equal((await subscribe(ada, 'news:x')).code, 102, 'unknown namespace');
  });

  test('a raw /ws member of room chat:lobby and the channel chat:lobby hear each other', async () => {
    const ada = await sdkClient('Ada');
    const { sub } = await subscribe(ada, 'chat:lobby');
    const seen: unknown[] = [];
    sub.on('publication', (ctx) => seen.push(ctx.data));
    const raw = await connect('chat:lobby', await tokenFor('Bob', 'chat:lobby'));
    // The room's count includes the channel's subscriber: one space of names.
    assert.deepEqual(await raw.next(), { type: 'presence', room: 'chat:lobby', count: 2 });
    raw.socket.send(JSON.stringify({ type: 'message', text: 'from /ws' }));
    assert.equal((await raw.next()).text, 'from /ws');
    await sub.publish({ text: 'from the channel' });
    assert.deepEqual(await raw.next(), { text: 'from the channel' });
    const stamped = seen.map((d) => ({ ...(d as Record<string, unknown>), at: 0 }));
    assert.deepEqual(stamped, [
      { type: 'presence', room: 'chat:lobby', count: 2, at: 0 },
      { type: 'message', from: 'Bob', text: 'from /ws', at: 0 },
      { text: 'from the channel', at: 0 },
    ]);
    raw.socket.close(1000);
    await raw.closed;
  });
});

describe('POST /demo/token under the room-password lockout', () => {
  let lockedServer: Server;
  let lockedWs: WshubServer;
  let url: string;

  before(async () => {
    const roomPasswords = new RoomPasswords({ iterations: 1000 });
    await roomPasswords.setRoomPassword('vault', 'Secret123');
    const demo = createDemo({ secret, roomPasswords });
    // Loopback is exempt by default; here it is not, so the lockout applies to this test's client.
    lockedWs = createWshub({
      secret,
      ...demo.config,
      limitExempt: [],
      passwordLockout: 3,
      passwordLockoutMs: 700,
    });
    demo.bind(lockedWs);
    lockedServer = lockedWs.createServer((req, res) => {
      if (!demo.handleRequest(req, res)) res.writeHead(404).end();
    });
    lockedServer.listen(0, '127.0.0.1');
    await once(lockedServer, 'listening');
    url = `http://127.0.0.1:${(lockedServer.address() as AddressInfo).port}/demo/token`;
  });

  after(async () => {
    await lockedWs.shutdown({ timeout: 1000 });
    lockedServer.closeAllConnections();
    lockedServer.close();
  });

  const ask = async (password: string) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Eve', room: 'vault', password }),
    });
    const json = (await response.json()) as Record<string, unknown>;
    return {
      status: response.status,
      code: errorCode(json),
      retryAfter: response.headers.get('retry-after'),
    };
  };

  test('wrong guesses lock the client out of the room for a while, even with the right password', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await ask(`guess${i}`)).code, 'ROOM_PASSWORD_INVALID');
    const locked = await ask('Secret123');
    assert.deepEqual([locked.status, locked.code], [429, 'WEBSOCKET_ROOM_LOCKED']);
    assert.equal(locked.retryAfter, '1');
    const m = lockedWs.metrics() as unknown as Record<string, number>;
    assert.equal(m.room_password_failures, 3);
    assert.equal(m.room_password_lockouts, 1);
    assert.ok((m.room_password_locked_refusals ?? 0) >= 1);
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.equal((await ask('Secret123')).status, 200);
  });
});
