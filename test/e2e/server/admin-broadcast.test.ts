// The admin broadcast endpoint: auth before the body, body bound,
// room validation, delivery to a room or to everyone, and its refusals.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { ADMIN_AUTH_LOG_INTERVAL_MS } from '../../../src/http/admin-broadcast.ts';
import type { WshubConfig } from '../../../src/config.ts';
import type { LogEntry } from '../../../src/server/server.ts';
import {
  BROADCAST_SECRET,
  authHeaders,
  cleanupHubs,
  connectClient,
  parseErrorBody,
  rawHttp,
  startHub,
  type Client,
  type RawResponse,
  type RunningHub,
} from './harness.ts';

afterEach(cleanupHubs);

const MAX = 1024;

function adminHub(config: Partial<WshubConfig> = {}): Promise<RunningHub> {
  return startHub({
    broadcastEnabled: true,
    broadcastSecret: BROADCAST_SECRET,
    broadcastMaxBytes: MAX,
    ...config,
  });
}

/** POSTs `body` to the broadcast path with a Content-Length and optional extra header lines. */
function post(
  hub: RunningHub,
  body: string | Buffer,
  options: { path?: string; auth?: string | null; headers?: Record<string, string>; method?: string } = {},
): Promise<RawResponse> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  let head = `${options.method ?? 'POST'} ${options.path ?? '/_admin/broadcast'} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  head += `Content-Length: ${bytes.length}\r\nConnection: close\r\n`;
  const auth = options.auth === undefined ? `Bearer ${BROADCAST_SECRET}` : options.auth;
  if (auth !== null) head += `Authorization: ${auth}\r\n`;
  for (const [name, value] of Object.entries(options.headers ?? {})) head += `${name}: ${value}\r\n`;
  return rawHttp(hub.port, `${head}\r\n`, bytes);
}

function assertError(response: RawResponse, status: number, code: string): void {
  assert.equal(response.status, status, response.body);
  assert.equal(parseErrorBody(response.body).error.code, code);
}

async function join(hub: RunningHub, room: string): Promise<Client> {
  return connectClient(hub.url(`/ws?room=${room}`), { headers: await authHeaders() });
}

/** Takes every message a client has received once `settleMs` passes without a new one. */
async function drain(client: Client, settleMs = 150): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const m = await client.queue.next(settleMs).catch(() => null);
    if (m === null) return out;
    out.push(m.text);
  }
}

async function closeAll(...clients: Client[]): Promise<void> {
  for (const c of clients) c.conn.close();
  await Promise.all(clients.map((c) => c.conn.closed()));
}

describe('admin broadcast auth', () => {
  test('401 without a bearer, with a wrong one, and with a user token', async () => {
    const hub = await adminHub();
    const member = await join(hub, 'r');
    assertError(await post(hub, 'x', { auth: null }), 401, 'UNAUTHORIZED');
    assertError(await post(hub, 'x', { auth: `Bearer ${BROADCAST_SECRET}x` }), 401, 'UNAUTHORIZED');
    assertError(await post(hub, 'x', { auth: `Basic ${BROADCAST_SECRET}` }), 401, 'UNAUTHORIZED');
    assertError(
      await post(hub, 'x', { auth: 'Bearer ' + (await authHeaders()).Authorization!.slice(7) }),
      401,
      'UNAUTHORIZED',
    );
    assert.deepEqual(await drain(member), [], 'nothing was broadcast');
    await closeAll(member);
  });

  test('the body of an unauthorized request is not read: a huge declared body gets 401 quickly', async () => {
    const hub = await adminHub();
    let head = 'POST /_admin/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\n';
    head += `Content-Length: ${10 * 1024 * 1024 * 1024}\r\nAuthorization: Bearer wrong\r\n\r\n`;
    const response = await rawHttp(hub.port, head, Buffer.alloc(64 * 1024, 0x61), 2_000);
    assertError(response, 401, 'UNAUTHORIZED');
    assert.ok(response.elapsedMs < 1_000, `answered after ${response.elapsedMs} ms`);
  });

  test('lower-case "bearer" works', async () => {
    const hub = await adminHub();
    const response = await post(hub, 'hi', { auth: `bearer ${BROADCAST_SECRET}` });
    assert.equal(response.status, 204);
  });

  test('a custom broadcastAuthorizer replaces the secret', async () => {
    const hub = await startHub({
      broadcastEnabled: true,
      broadcastAuthorizer: (request) => Promise.resolve(request.headers['x-admin-key'] === 'let-me-in'),
    });
    const member = await join(hub, 'r');
    assertError(await post(hub, 'no', { auth: null }), 401, 'UNAUTHORIZED');
    assertError(
      await post(hub, 'no', { auth: null, headers: { 'X-Admin-Key': 'nope' } }),
      401,
      'UNAUTHORIZED',
    );
    assert.equal(
      (await post(hub, 'yes', { auth: null, headers: { 'X-Admin-Key': 'let-me-in' } })).status,
      204,
    );
    assert.deepEqual(await drain(member), ['yes']);
    await closeAll(member);
  });

  test('an authorizer that throws answers 503 (an outage, not a refusal)', async () => {
    const hub = await startHub({
      broadcastEnabled: true,
      broadcastAuthorizer: () => {
        throw new Error('auth backend down');
      },
    });
    assertError(await post(hub, 'x', { auth: null }), 503, 'WEBSOCKET_AUTH_UNAVAILABLE');
  });
});

describe('failed admin logins', () => {
  test('1,000 wrong secrets: all counted, logged in a few rate-limited lines whose counts add up; the right secret still works', async () => {
    const hub = await adminHub();
    const entries: LogEntry[] = [];
    hub.ws.log = (entry) => entries.push(entry);
    const total = 1_000;
    const concurrency = 20;
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) {
          next++;
          const response = await post(hub, 'x', { auth: `Bearer wrong-${next}` });
          assert.equal(response.status, 401);
        }
      }),
    );
    const elapsed = performance.now() - started;
    assert.equal(hub.ws.metrics().admin_auth_failures, total);
    assert.equal((await post(hub, 'hello')).status, 204, 'the right secret still works');
    assert.equal(hub.ws.metrics().admin_auth_failures, total, 'a success is no failure');

    const during = entries.filter((e) => e.event === 'admin_auth_failed');
    // One at the first failure, then at most one per interval.
    const allowed = 1 + Math.ceil(elapsed / ADMIN_AUTH_LOG_INTERVAL_MS);
    assert.ok(during.length >= 1 && during.length <= allowed, `${during.length} lines in ${elapsed} ms`);
    assert.deepEqual(during[0], { level: 'warn', event: 'admin_auth_failed', count: 1, remote: '127.0.0.1' });

    await hub.close();
    const lines = entries.filter((e) => e.event === 'admin_auth_failed');
    assert.ok(lines.length <= allowed + 1, 'shutdown adds at most one line');
    assert.equal(
      lines.reduce((sum, e) => sum + (e.count as number), 0),
      total,
      'the counts of the lines add up to every failure',
    );
    for (const line of lines) assert.equal(line.level, 'warn');
  });

  test('refusals by a broadcastAuthorizer are counted too; other refusals are not', async () => {
    const hub = await startHub({
      broadcastEnabled: true,
      broadcastAuthorizer: (request) => request.headers['x-admin-key'] === 'let-me-in',
      broadcastMaxBytes: MAX,
    });
    assertError(await post(hub, 'no', { auth: null }), 401, 'UNAUTHORIZED');
    assertError(await post(hub, 'no', { auth: null, method: 'GET' }), 405, 'METHOD_NOT_ALLOWED');
    const ok = { auth: null, headers: { 'X-Admin-Key': 'let-me-in' } };
    assertError(await post(hub, 'x'.repeat(MAX + 1), ok), 413, 'WEBSOCKET_REQUEST_TOO_LARGE');
    assert.equal(hub.ws.metrics().admin_auth_failures, 1);
  });
});

describe('admin broadcast body and room', () => {
  test('413 for a declared body over broadcastMaxBytes; exactly the limit is fine', async () => {
    const hub = await adminHub();
    assertError(await post(hub, 'a'.repeat(MAX + 1)), 413, 'WEBSOCKET_REQUEST_TOO_LARGE');
    assert.equal((await post(hub, 'a'.repeat(MAX))).status, 204);
  });

  test('413 for a chunked body over broadcastMaxBytes', async () => {
    const hub = await adminHub();
    const member = await join(hub, 'r');
    let head = 'POST /_admin/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n';
    head += `Authorization: Bearer ${BROADCAST_SECRET}\r\nConnection: close\r\n\r\n`;
    const chunk = 'b'.repeat(400);
    const body = `${chunk.length.toString(16)}\r\n${chunk}\r\n`.repeat(3) + '0\r\n\r\n';
    assertError(await rawHttp(hub.port, head, body), 413, 'WEBSOCKET_REQUEST_TOO_LARGE');
    // Under the limit, chunked is fine.
    const small = `${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`;
    assert.equal((await rawHttp(hub.port, head, small)).status, 204);
    assert.deepEqual(await drain(member), [chunk]);
    await closeAll(member);
  });

  test('400 for an invalid ?room=', async () => {
    const hub = await adminHub();
    for (const room of ['bad%20room', 'x'.repeat(129), '']) {
      assertError(
        await post(hub, 'x', { path: `/_admin/broadcast?room=${room}` }),
        400,
        'WEBSOCKET_INVALID_ROOM',
      );
    }
  });

  test('204 to a room: its members receive the text exactly once, others nothing', async () => {
    const hub = await adminHub();
    const [a1, a2, b1] = [await join(hub, 'a'), await join(hub, 'a'), await join(hub, 'b')];
    const text = '{"type":"notice","text":"héllo ✓"}';
    const response = await post(hub, text, { path: '/_admin/broadcast?room=a' });
    assert.equal(response.status, 204);
    assert.equal(response.body, '');
    assert.deepEqual(await drain(a1), [text]);
    assert.deepEqual(await drain(a2), [text]);
    assert.deepEqual(await drain(b1), []);
    await closeAll(a1, a2, b1);
  });

  test('204 to all: every connection once, even one that is in two rooms', async () => {
    const hub = await adminHub();
    const [a1, b1] = [await join(hub, 'a'), await join(hub, 'b')];
    const serverSideA1 = hub.ws.hub.connections().find((c) => c.room === 'a')!;
    assert.equal(hub.ws.hub.tryJoin('b', serverSideA1).ok, true);
    assert.equal(hub.ws.hub.getRoomCount('b'), 2);
    assert.equal((await post(hub, 'to everyone')).status, 204);
    assert.deepEqual(await drain(a1), ['to everyone']);
    assert.deepEqual(await drain(b1), ['to everyone']);
    await closeAll(a1, b1);
  });

  test('204 with no recipients (empty room, empty hub)', async () => {
    const hub = await adminHub();
    assert.equal((await post(hub, 'nobody', { path: '/_admin/broadcast?room=empty' })).status, 204);
    assert.equal((await post(hub, 'nobody')).status, 204);
  });

  test('400 for a body that is not UTF-8 text', async () => {
    const hub = await adminHub();
    assertError(await post(hub, Buffer.from([0xff, 0xfe, 0x00])), 400, 'WEBSOCKET_INVALID_BODY');
  });

  test('503 WEBSOCKET_BROADCAST_REJECTED when the hub is stopped', async () => {
    const hub = await adminHub();
    await hub.ws.stop();
    assertError(await post(hub, 'x'), 503, 'WEBSOCKET_BROADCAST_REJECTED');
    assertError(
      await post(hub, 'x', { path: '/_admin/broadcast?room=a' }),
      503,
      'WEBSOCKET_BROADCAST_REJECTED',
    );
  });

  test('GET → 405', async () => {
    const hub = await adminHub();
    const response = await rawHttp(
      hub.port,
      `GET /_admin/broadcast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${BROADCAST_SECRET}\r\nConnection: close\r\n\r\n`,
    );
    assertError(response, 405, 'METHOD_NOT_ALLOWED');
    assert.equal(response.headers.allow, 'POST');
  });

  test('not mounted unless broadcastEnabled', async () => {
    const hub = await startHub({ broadcastSecret: BROADCAST_SECRET });
    const response = await post(hub, 'x');
    assert.equal(response.status, 404);
  });

  test('a custom broadcastPath', async () => {
    const hub = await adminHub({ broadcastPath: '/ops/say' });
    const member = await join(hub, 'r');
    assert.equal((await post(hub, 'custom', { path: '/ops/say?room=r' })).status, 204);
    assert.equal((await post(hub, 'x')).status, 404);
    assert.deepEqual(await drain(member), ['custom']);
    await closeAll(member);
  });
});
