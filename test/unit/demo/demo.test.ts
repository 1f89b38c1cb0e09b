// The demo module over real HTTP and WebSocket connections (Node clients):
// static files and their headers, the token endpoint's validation and room
// grants, the room authorizer, presence counts and chat messages.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { RoomPasswords } from '../../../src/auth/room-password.ts';
import { HS256TokenAuthenticator, signHS256 } from '../../../src/auth/token.ts';
import { createDemo } from '../../../src/demo/demo.ts';
import { createWshub, type WshubServer } from '../../../src/server/server.ts';

const secret = randomBytes(32);
const TTL = 600;
let ws: WshubServer;
let server: Server;
let base: string;
let wsBase: string;
const clients: WebSocket[] = [];

before(async () => {
  const roomPasswords = new RoomPasswords({ iterations: 1000 });
  await roomPasswords.setRoomPassword('vip', 'Secret123');
  const demo = createDemo({ secret, roomPasswords, tokenTtlSeconds: TTL });
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
    assert.match(await js.text(), /wshub\.bearer\./);
    const css = await fetch(`${base}/style.css`);
    assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
    await css.text();
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
