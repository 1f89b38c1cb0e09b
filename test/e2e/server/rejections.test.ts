/**
 * Every HTTP error the server answers with carries the JSON body
 * `{"error":{"code","message","category"}}`, and its status, code and
 * category are a row of the HttpRejection table. Also: a failing (not
 * refusing) authenticator or authorizer answers 503.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, test } from 'node:test';
import { InvalidTokenError } from '../../../src/auth/errors.ts';
import type { TokenAuthenticator } from '../../../src/auth/token.ts';
import type { WshubConfig } from '../../../src/config.ts';
import { HttpRejection, type RejectionKind } from '../../../src/http/rejections.ts';
import type { LogEntry } from '../../../src/server/server.ts';
import {
  BROADCAST_SECRET,
  authHeaders,
  cleanupHubs,
  connectClient,
  makeToken,
  parseErrorBody,
  rawHttp,
  startHub,
  upgradeHead,
  type RawResponse,
  type RunningHub,
  type UpgradeHeadOptions,
} from './harness.ts';

afterEach(cleanupHubs);

const ROWS: RejectionKind[] = Object.values(HttpRejection);

/** Asserts the response is the JSON error of `kind`: same status, code and category, a message, JSON type. */
function assertRejection(response: RawResponse, kind: RejectionKind): void {
  assert.equal(response.status, kind.status, response.body);
  assert.match(response.headers['content-type'] ?? '', /^application\/json/);
  const { error } = parseErrorBody(response.body);
  assert.deepEqual(
    { status: response.status, code: error.code, category: error.category },
    { status: kind.status, code: kind.code, category: kind.category },
  );
  assert.ok(
    ROWS.some((r) => r.status === response.status && r.code === error.code && r.category === error.category),
    'a row of the table',
  );
}

async function upgrade(hub: RunningHub, options: UpgradeHeadOptions): Promise<RawResponse> {
  return rawHttp(hub.port, upgradeHead(hub.port, options));
}

async function tokenHeader(): Promise<Record<string, string>> {
  return { Authorization: `Bearer ${await makeToken()}` };
}

function plainRequest(hub: RunningHub, method: string, path: string, extra = ''): Promise<RawResponse> {
  return rawHttp(
    hub.port,
    `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${extra}\r\n`,
  );
}

describe('every rejection has status, code and category from the table', () => {
  test('upgrade pipeline: origin, method, version, key, token, room', async () => {
    const hub = await startHub({ allowedOrigins: ['https://ok.example'] });
    const auth = await tokenHeader();
    assertRejection(
      await upgrade(hub, { headers: { ...auth, Origin: 'https://evil.example' } }),
      HttpRejection.ORIGIN_FORBIDDEN,
    );
    assertRejection(
      await upgrade(hub, { method: 'POST', headers: { ...auth, 'Content-Length': '0' } }),
      HttpRejection.METHOD_NOT_ALLOWED,
    );
    assertRejection(
      await upgrade(hub, { headers: { ...auth, 'Sec-WebSocket-Version': '8' } }),
      HttpRejection.BAD_VERSION,
    );
    assertRejection(
      await upgrade(hub, { headers: { ...auth, 'Sec-WebSocket-Key': null } }),
      HttpRejection.KEY_MISSING,
    );
    assertRejection(
      await upgrade(hub, { headers: { ...auth, 'Sec-WebSocket-Key': 'short' } }),
      HttpRejection.KEY_INVALID,
    );
    assertRejection(await upgrade(hub, {}), HttpRejection.TOKEN_REQUIRED);
    assertRejection(
      await upgrade(hub, { headers: { Authorization: 'Bearer not.a.token' } }),
      HttpRejection.INVALID_TOKEN,
    );
    assertRejection(
      await upgrade(hub, { path: '/ws?room=no%20good', headers: auth }),
      HttpRejection.INVALID_ROOM,
    );
  });

  test('capacity: a full room and a stopped hub', async () => {
    const hub = await startHub({ maxRoomConnections: 1 });
    const first = await connectClient(hub.url('/ws?room=a'), { headers: await authHeaders() });
    assertRejection(
      await upgrade(hub, { path: '/ws?room=a', headers: await tokenHeader() }),
      HttpRejection.ROOM_FULL,
    );
    first.conn.close();
    await first.conn.closed();
    await hub.ws.stop();
    assertRejection(
      await upgrade(hub, { path: '/ws?room=b', headers: await tokenHeader() }),
      HttpRejection.SHUTTING_DOWN,
    );
  });

  test('routing: 404 for an upgrade or a request elsewhere, 400 for a plain request to the path', async () => {
    const hub = await startHub();
    const notFound = await upgrade(hub, { path: '/elsewhere', headers: await tokenHeader() });
    assertRejection(notFound, HttpRejection.NOT_FOUND);
    assertRejection(await plainRequest(hub, 'GET', '/elsewhere'), HttpRejection.NOT_FOUND);
    assertRejection(await plainRequest(hub, 'GET', '/ws'), HttpRejection.BAD_UPGRADE);
  });

  test('admin endpoint: 405, 401, 413, 400', async () => {
    const hub = await startHub({
      broadcastEnabled: true,
      broadcastSecret: BROADCAST_SECRET,
      broadcastMaxBytes: 16,
    });
    const auth = `Authorization: Bearer ${BROADCAST_SECRET}\r\n`;
    const methodNotAllowed = await plainRequest(hub, 'GET', '/_admin/broadcast', auth);
    assertRejection(methodNotAllowed, HttpRejection.METHOD_NOT_ALLOWED);
    assert.equal(methodNotAllowed.headers.allow, 'POST');
    assertRejection(
      await plainRequest(hub, 'POST', '/_admin/broadcast', 'Content-Length: 0\r\n'),
      HttpRejection.UNAUTHORIZED,
    );
    assertRejection(
      await plainRequest(hub, 'POST', '/_admin/broadcast', `${auth}Content-Length: 17\r\n`),
      HttpRejection.REQUEST_TOO_LARGE,
    );
    assertRejection(
      await plainRequest(hub, 'POST', '/_admin/broadcast?room=no%20good', `${auth}Content-Length: 0\r\n`),
      HttpRejection.INVALID_ROOM,
    );
  });

  test('handshake limits: 408 at the deadline, 429 past the per-address cap', async () => {
    const slow = await startHub({ handshakeTimeout: 300, allowUnauthenticated: true });
    const partial = await rawHttp(slow.port, 'GET /ws HTTP/1.1\r\nHost: x\r\n', '', 2_000);
    assertRejection(partial, HttpRejection.REQUEST_TIMEOUT);

    const capped = await startHub({ maxPendingHandshakesPerAddress: 1, allowUnauthenticated: true });
    const holder = connect(capped.port, '127.0.0.1');
    holder.on('error', () => {});
    await once(holder, 'connect');
    holder.write('GET /ws HTTP/1.1\r\n');
    await sleep(50);
    try {
      assertRejection(await upgrade(capped, {}), HttpRejection.HANDSHAKE_LIMIT);
    } finally {
      holder.destroy();
    }
  });
});

describe('a failing authenticator or authorizer answers 503, a refusal stays 401/403', () => {
  const SECRET_TOKEN = 'secret-token-value-never-logged';

  async function failing(config: Partial<WshubConfig>, headers: Record<string, string>) {
    const hub = await startHub(config);
    const logs: LogEntry[] = [];
    hub.ws.log = (entry) => logs.push(entry);
    const response = await upgrade(hub, { headers });
    assertRejection(response, HttpRejection.AUTH_UNAVAILABLE);
    const errors = logs.filter((e) => e.event === 'upgrade_auth_error');
    assert.equal(errors.length, 1, JSON.stringify(logs));
    assert.equal(errors[0]!.level, 'error');
    assert.doesNotMatch(JSON.stringify(logs), new RegExp(SECRET_TOKEN));
    assert.equal(hub.ws.metrics().auth_errors, 1);
    assert.equal(hub.ws.metrics().active_connections, 0);
    return errors[0]!;
  }

  const bearer = { Authorization: `Bearer ${SECRET_TOKEN}` };

  test('an authenticator that throws', async () => {
    const authenticator: TokenAuthenticator = {
      authenticate: () => {
        throw new Error('directory down');
      },
    };
    const entry = await failing({ secret: undefined, tokenAuthenticator: authenticator }, bearer);
    assert.equal(entry.stage, 'token');
    assert.match(String(entry.error), /directory down/);
  });

  test('an authenticator whose promise rejects', async () => {
    const authenticator: TokenAuthenticator = {
      authenticate: () => Promise.reject(new Error('directory timeout')),
    };
    const entry = await failing({ secret: undefined, tokenAuthenticator: authenticator }, bearer);
    assert.equal(entry.stage, 'token');
  });

  test('an authorizer that throws, and one whose promise rejects', async () => {
    const headers = { ...(await tokenHeader()), 'X-WebSocket-Room-Password': SECRET_TOKEN };
    const thrown = await failing(
      {
        roomAuthorizer: {
          authorize: () => {
            throw new Error('acl down');
          },
        },
      },
      headers,
    );
    assert.equal(thrown.stage, 'room');
    const rejected = await failing(
      { roomAuthorizer: { authorize: () => Promise.reject(new Error('acl timeout')) } },
      headers,
    );
    assert.equal(rejected.stage, 'room');
  });

  test('InvalidTokenError from a custom authenticator is a 403 refusal, false from an authorizer a 403', async () => {
    const hub = await startHub({
      secret: undefined,
      tokenAuthenticator: {
        authenticate: (token) =>
          token === 'good'
            ? Promise.resolve({ id: 'u', claims: {} } as never)
            : Promise.reject(new InvalidTokenError('unknown token', 'signature')),
      },
      roomAuthorizer: { authorize: ({ room }) => room !== 'closed' },
    });
    assertRejection(await upgrade(hub, { headers: bearer }), HttpRejection.INVALID_TOKEN);
    assertRejection(
      await upgrade(hub, { path: '/ws?room=closed', headers: { Authorization: 'Bearer good' } }),
      HttpRejection.ROOM_FORBIDDEN,
    );
    assert.equal(hub.ws.metrics().auth_errors, 0);
  });

  test('admin: a throwing broadcastAuthorizer answers 503, is logged, and is not a failed login', async () => {
    const hub = await startHub({
      broadcastEnabled: true,
      broadcastAuthorizer: () => Promise.reject(new Error('vault sealed')),
    });
    const logs: LogEntry[] = [];
    hub.ws.log = (entry) => logs.push(entry);
    const response = await plainRequest(
      hub,
      'POST',
      '/_admin/broadcast',
      `Authorization: Bearer ${SECRET_TOKEN}\r\nContent-Length: 0\r\n`,
    );
    assertRejection(response, HttpRejection.AUTH_UNAVAILABLE);
    assert.deepEqual(
      logs.map((e) => e.event),
      ['admin_auth_error'],
    );
    assert.doesNotMatch(JSON.stringify(logs), new RegExp(SECRET_TOKEN));
    assert.equal(hub.ws.metrics().admin_auth_failures, 0);
  });
});
