// The official centrifuge SDK in a real browser against wshub's channel
// protocol: a minimal page (served by this test with the SDK's browser
// bundle) is driven through page.evaluate — connect with a token, subscribe,
// publish, presence with join/leave, history, RPC, token refresh through
// getToken, and recovery after the server drops the connection.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Centrifuge as NodeCentrifuge } from 'centrifuge';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { signHS256 } from '../../../src/auth/token.ts';
import { Disconnects, ReplyErrorException, ReplyErrors, type Json } from '../../../src/channels/protocol.ts';
import { sdkBundleUrl } from '../../../src/demo/static-files.ts';
import { createWshub, type WshubServer } from '../../../src/server/server.ts';
import { launchChromium, requireChromium } from '../../helpers/chromium.ts';

declare const Centrifuge: typeof NodeCentrifuge;

const SECRET = 'sdk-browser-test-secret-0123456789-abcdefghij';
const TOKEN_TTL_SECONDS = 2;
const CHANNEL = 'room:a';
const limits = { timeout: 60_000 };
const PAGE = '<!doctype html><meta charset="utf-8"><title>sdk</title><script src="/centrifuge.js"></script>';

/** What the page keeps on `window` between evaluate calls. */
interface PageState {
  client: NodeCentrifuge;
  sub: ReturnType<NodeCentrifuge['newSubscription']>;
  events: string[];
  publications: Array<{ data: unknown; offset: number | undefined; name: unknown }>;
  subscribed: Array<{ wasRecovering: boolean; recovered: boolean }>;
  joins: string[];
  leaves: string[];
}

describe('the centrifuge SDK in Chromium', requireChromium(), () => {
  let ws: WshubServer;
  let server: Server;
  let base: string;
  let browser: Browser;
  let page: Page;
  let tokensIssued = 0;
  const nodeClients: NodeCentrifuge[] = [];

  /** The page's token endpoint: alice's connection token, short-lived so the SDK refreshes it. */
  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.url === '/') {
      response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(PAGE);
    } else if (request.url === '/centrifuge.js') {
      const body = await readFile(sdkBundleUrl());
      response.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' }).end(body);
    } else if (request.url === '/token' && request.method === 'POST') {
      tokensIssued++;
      const claims = { sub: 'alice', info: { name: 'Alice' } };
      const token = await signHS256(claims, SECRET, { expiresInSeconds: TOKEN_TTL_SECONDS });
      response.writeHead(200, { 'Content-Type': 'text/plain' }).end(token);
    } else {
      response.writeHead(404).end();
    }
  }

  before(async () => {
    ws = createWshub({
      secret: SECRET,
      channels: {
        namespaces: [
          {
            name: 'room',
            allowSubscribeForClient: true,
            allowPublishForSubscriber: true,
            allowPresenceForSubscriber: true,
            allowHistoryForSubscriber: true,
            presence: true,
            joinLeave: true,
            forcePushJoinLeave: true,
            historySize: 100,
            historyTtl: 60_000,
            forceRecovery: true,
          },
        ],
      },
      channelHooks: {
        onRpc: ({ client, method, data }) => {
          if (method !== 'sum') throw new ReplyErrorException(ReplyErrors.METHOD_NOT_FOUND);
          const { a, b } = data as { a: number; b: number };
          return { sum: a + b, user: client.user } satisfies Json;
        },
      },
    });
    server = ws.createServer((request, response) => {
      handle(request, response).catch(() => response.writeHead(500).end());
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // The page's own origin, as `wshub serve --dev` allows it.
    ws.config.allowedOrigins.push(base);
    browser = await launchChromium();
    const context = await browser.newContext();
    // tsx compiles this file keeping function names, through calls to a helper
    // `__name` that the functions sent to page.evaluate carry along.
    await context.addInitScript({ content: 'globalThis.__name = (fn) => fn;' });
    page = await context.newPage();
    await page.goto(`${base}/`);
  });

  after(async () => {
    for (const client of nodeClients) client.disconnect();
    await browser?.close();
    await ws?.shutdown({ timeout: 1000 });
    server?.closeAllConnections();
    server?.close();
  });

  /** A second user, bob, with the SDK in Node. */
  async function bob(): Promise<NodeCentrifuge> {
    const token = await signHS256({ sub: 'bob', info: { name: 'Bob' } }, SECRET, { expiresInSeconds: 600 });
    const client = new NodeCentrifuge(`${base.replace('http', 'ws')}/connection/websocket`, {
      websocket: WebSocket,
      token,
    });
    nodeClients.push(client);
    const connected = new Promise((resolve) => client.once('connected', resolve));
    client.connect();
    await connected;
    return client;
  }

  /** Runs `fn` on the page's state (sent as source, so it must use nothing but its argument). */
  function state<T>(fn: (s: PageState) => T): Promise<T> {
    return page.evaluate<T>(`(${fn.toString()})(window.state)`);
  }

  async function waitFor<T>(fn: (s: PageState) => T, what: string, timeoutMs = 10_000): Promise<void> {
    try {
      await page.waitForFunction(`(${fn.toString()})(window.state)`, undefined, { timeout: timeoutMs });
    } catch {
      assert.fail(
        `timed out waiting for ${what}: ${JSON.stringify(await state((s) => ({ ...s, client: 0, sub: 0 })))}`,
      );
    }
  }

  test(
    'connect, subscribe, publish, presence, history, RPC, token refresh and recovery',
    limits,
    async () => {
      const url = `${base.replace('http', 'ws')}/connection/websocket`;
      const connected = await page.evaluate(
        async ({ url, channel }) => {
          const s = {
            events: [] as string[],
            publications: [] as Array<{ data: unknown; offset: number | undefined; name: unknown }>,
            subscribed: [] as Array<{ wasRecovering: boolean; recovered: boolean }>,
            joins: [] as string[],
            leaves: [] as string[],
          } as PageState;
          (globalThis as unknown as { state: PageState }).state = s;
          s.client = new Centrifuge(url, {
            getToken: async () => (await fetch('/token', { method: 'POST' })).text(),
            minReconnectDelay: 1500,
            maxReconnectDelay: 3000,
          });
          for (const event of ['connecting', 'connected', 'disconnected'] as const)
            s.client.on(event, () => s.events.push(event));
          s.sub = s.client.newSubscription(channel);
          s.sub.on('publication', (ctx) =>
            s.publications.push({
              data: ctx.data,
              offset: ctx.offset,
              name: (ctx.info?.connInfo as { name?: unknown } | undefined)?.name,
            }),
          );
          s.sub.on('subscribed', (ctx) =>
            s.subscribed.push({ wasRecovering: ctx.wasRecovering, recovered: ctx.recovered }),
          );
          s.sub.on('join', (ctx) => s.joins.push(ctx.info.user));
          s.sub.on('leave', (ctx) => s.leaves.push(ctx.info.user));
          const ready = new Promise<{ client: string }>((resolve) => s.client.once('connected', resolve));
          s.client.connect();
          const ctx = await ready;
          s.sub.subscribe();
          await s.sub.ready(5000);
          return ctx.client;
        },
        { url, channel: CHANNEL },
      );
      assert.match(connected, /^[0-9a-f-]{36}$/);
      assert.equal(tokensIssued, 1, 'the first token came from getToken');

      // A server publication, then one from the page (stamped with the publisher's info).
      await ws.channels!.publish(CHANNEL, { n: 1 });
      await page.evaluate(() =>
        (globalThis as unknown as { state: PageState }).state.sub.publish({ text: 'hi' }),
      );
      await waitFor((s) => s.publications.length === 2, 'two publications');
      assert.deepEqual(await state((s) => s.publications), [
        { data: { n: 1 }, offset: 1, name: undefined },
        { data: { text: 'hi' }, offset: 2, name: 'Alice' },
      ]);

      // Presence and join/leave with a second user.
      const other = await bob();
      const bobSub = other.newSubscription(CHANNEL);
      bobSub.subscribe();
      await waitFor((s) => s.joins.includes('bob'), 'bob to join');
      const presence = await page.evaluate(async () => {
        const result = await (globalThis as unknown as { state: PageState }).state.sub.presence();
        return Object.values(result.clients)
          .map((c) => c.user)
          .sort();
      });
      assert.deepEqual(presence, ['alice', 'bob']);
      bobSub.unsubscribe();
      await waitFor((s) => s.leaves.includes('bob'), 'bob to leave');

      // History, newest first.
      const history = await page.evaluate(async () => {
        const result = await (globalThis as unknown as { state: PageState }).state.sub.history({
          limit: 10,
          reverse: true,
        });
        return result.publications.map((p) => p.data as unknown);
      });
      assert.deepEqual(history, [{ text: 'hi' }, { n: 1 }]);

      // RPC through channelHooks.onRpc, and its refusal.
      const rpc = await page.evaluate(async () => {
        const client = (globalThis as unknown as { state: PageState }).state.client;
        const ok = await client.rpc('sum', { a: 2, b: 3 });
        const refused = await client.rpc('nope', {}).then(
          () => 0,
          (error: { code: number }) => error.code,
        );
        return { data: ok.data as unknown, refused };
      });
      assert.deepEqual(rpc, { data: { sum: 5, user: 'alice' }, refused: 104 });

      // The token lives 2 s: the SDK asks getToken again and refreshes in place, without reconnecting.
      const deadline = Date.now() + 15_000;
      while (tokensIssued < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.ok(tokensIssued >= 3, `tokens issued: ${tokensIssued}`);
      assert.deepEqual(await state((s) => s.events), ['connecting', 'connected']);

      // The server drops the connection (3011: reconnect); what is published meanwhile is recovered.
      await ws.channels!.disconnect('alice', { disconnect: Disconnects.FORCE_RECONNECT });
      await waitFor((s) => s.events.at(-1) === 'connecting', 'the SDK to notice the drop');
      await ws.channels!.publish(CHANNEL, { n: 2 });
      await ws.channels!.publish(CHANNEL, { n: 3 });
      await waitFor((s) => s.publications.length === 4, 'the recovered publications');
      assert.deepEqual(await state((s) => s.subscribed), [
        { wasRecovering: false, recovered: false },
        { wasRecovering: true, recovered: true },
      ]);
      assert.deepEqual(await state((s) => s.publications.slice(2).map((p) => [p.data, p.offset])), [
        [{ n: 2 }, 3],
        [{ n: 3 }, 4],
      ]);
      assert.deepEqual(await state((s) => s.events), ['connecting', 'connected', 'connecting', 'connected']);
    },
  );
});
