/**
 * The checks the Express and Fastify examples share: the framework's routes
 * keep working, WebSocket clients fan out within their room, unknown upgrade
 * paths get 404, the admin broadcast endpoint works, and closing leaves
 * nothing open.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSecureSecret, signHS256 } from '../../../src/index.ts';
import type { ExampleOptions, RunningExample } from '../../../examples/express.ts';
import { assertNoLeaks, closeServer, trackSockets } from '../../helpers/leaks.ts';
import { assertSilent, connect, httpCall, nextText, refusal, wsUrl, type TestClient } from './clients.ts';

/** Registers the shared suite for one framework example. */
export function frameworkSuite(
  name: string,
  start: (options: ExampleOptions) => Promise<RunningExample>,
): void {
  const secret = generateSecureSecret().toString('base64url');
  const broadcastSecret = generateSecureSecret().toString('base64url');

  describe(`${name} example`, () => {
    let running: RunningExample | undefined;
    const clients: TestClient[] = [];
    let first: TestClient;
    let second: TestClient;
    let outsider: TestClient;
    const token = (sub: string) => signHS256({ sub }, secret, { expiresInSeconds: 600 });
    const app = (): RunningExample => {
      assert.ok(running !== undefined, 'example did not start');
      return running;
    };

    before(async () => {
      running = await start({ secret, broadcastSecret, port: 0 });
      trackSockets(running.server);
    });

    after(async () => {
      for (const { conn } of clients) conn.terminate();
      if (running !== undefined) await closeServer(running.server);
    });

    test('the framework route still answers', async () => {
      const hello = await httpCall(app().url, 'GET', '/hello');
      assert.equal(hello.status, 200, hello.body);
      assert.deepEqual(JSON.parse(hello.body), { hello: 'world', connections: 0 });
      const health = await httpCall(app().url, 'GET', '/healthz');
      assert.equal(health.status, 200);
      assert.equal((JSON.parse(health.body) as { status: string }).status, 'healthy');
      const missing = await httpCall(app().url, 'GET', '/missing');
      assert.equal(missing.status, 404);
    });

    test('a plain GET to the WebSocket path is refused by the upgrade pipeline', async () => {
      const plain = await httpCall(app().url, 'GET', '/ws');
      // Step 3 of the pipeline: no Connection/Upgrade headers.
      assert.equal(plain.status, 400);
      assert.equal(
        (JSON.parse(plain.body) as { error: { code: string } }).error.code,
        'WEBSOCKET_BAD_UPGRADE',
      );
    });

    test('clients join a room and get its fan-out', async () => {
      first = await connect(wsUrl(app().url, '/ws?room=news'), { token: await token('first') });
      second = await connect(wsUrl(app().url, '/ws?room=news'), { token: await token('second') });
      outsider = await connect(wsUrl(app().url, '/ws?room=other'), { token: await token('outsider') });
      clients.push(first, second, outsider);
      await first.conn.sendText('hello news');
      assert.equal(await nextText(first), 'hello news');
      assert.equal(await nextText(second), 'hello news');
      await assertSilent(outsider);
      const hello = await httpCall(app().url, 'GET', '/hello');
      assert.equal((JSON.parse(hello.body) as { connections: number }).connections, 3);
    });

    test('upgrades need a token, and other paths get 404', async () => {
      assert.deepEqual(await refusal(wsUrl(app().url, '/ws?room=news')), {
        status: 401,
        code: 'WEBSOCKET_TOKEN_REQUIRED',
      });
      assert.deepEqual(await refusal(wsUrl(app().url, '/elsewhere'), { token: await token('lost') }), {
        status: 404,
        code: 'NOT_FOUND',
      });
      assert.deepEqual(await refusal(wsUrl(app().url, '/hello'), { token: await token('lost') }), {
        status: 404,
        code: 'NOT_FOUND',
      });
    });

    test('the admin broadcast endpoint sends to a room or to everyone', async () => {
      const auth = { Authorization: `Bearer ${broadcastSecret}` };
      const denied = await httpCall(app().url, 'POST', '/_admin/broadcast?room=news', { body: 'no' });
      assert.equal(denied.status, 401);
      const toRoom = await httpCall(app().url, 'POST', '/_admin/broadcast?room=news', {
        body: 'room news',
        headers: auth,
      });
      assert.equal(toRoom.status, 204, toRoom.body);
      assert.equal(await nextText(first), 'room news');
      assert.equal(await nextText(second), 'room news');
      await assertSilent(outsider);
      const toAll = await httpCall(app().url, 'POST', '/_admin/broadcast', { body: 'to all', headers: auth });
      assert.equal(toAll.status, 204, toAll.body);
      for (const client of [first, second, outsider]) assert.equal(await nextText(client), 'to all');
    });

    test('close() closes clients with 1001 and leaves nothing open', async () => {
      await app().close();
      for (const client of clients) {
        const closed = await client.conn.closed();
        assert.equal(closed.code, 1001);
      }
      assert.equal(app().server.listening, false);
      assert.equal(app().ws.hub.getActiveConnectionCount(), 0);
      await assertNoLeaks(app().server);
    });
  });
}
