// The browser auth path from real Chromium: the page offers the subprotocols
// ['wshub', 'wshub.bearer.<token>'], never a query token. The page is served
// from a throwaway loopback server so that it has a real Origin.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { signHS256 } from '../../src/auth/token.ts';
import type { Connection } from '../../src/connection/connection.ts';
import { createWshub, type LogEntry, type WshubServer } from '../../src/server/server.ts';
import { launchChromium, requireChromium } from '../helpers/chromium.ts';

const limits = { timeout: 20_000 };

/** What the page reports about one connection attempt. */
interface Attempt {
  opened: boolean;
  protocol: string;
  errored: boolean;
  code: number;
  echoed: string | null;
}

interface PageApi {
  attempt(url: string, protocols: string[] | null, message: string | null): Promise<Attempt>;
}

// Opens a socket, optionally sends one message and waits for it to come back
// through the room, then closes; reports what happened.
const PAGE_SCRIPT = String.raw`
globalThis.auth = {
  attempt(url, protocols, message) {
    return new Promise((resolve) => {
      const result = { opened: false, protocol: '', errored: false, code: 0, echoed: null };
      const ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
      const timer = setTimeout(() => ws.close(), 8000);
      ws.onopen = () => {
        result.opened = true;
        result.protocol = ws.protocol;
        if (message === null) ws.close(1000);
        else ws.send(message);
      };
      ws.onmessage = (event) => {
        result.echoed = event.data;
        ws.close(1000);
      };
      ws.onerror = () => { result.errored = true; };
      ws.onclose = (event) => {
        clearTimeout(timer);
        result.code = event.code;
        resolve(result);
      };
    });
  },
};
`;

const PAGE_HTML = `<!doctype html><meta charset="utf-8"><title>auth</title><script>${PAGE_SCRIPT}</script>`;

async function startPageServer(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE_HTML);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { server, origin: `http://127.0.0.1:${port}` };
}

function stopServer(server: Server | undefined): void {
  server?.closeAllConnections();
  server?.close();
}

describe('browser auth path from Chromium', requireChromium(), () => {
  const secret = randomBytes(32);
  let allowedPage: { server: Server; origin: string };
  let otherPage: { server: Server; origin: string };
  let hub: WshubServer;
  let hubServer: Server;
  let wsUrl: string;
  let browser: Browser;
  let page: Page;
  let foreignPage: Page;
  const rejections: LogEntry[] = [];
  const connected: Connection[] = [];

  before(async () => {
    allowedPage = await startPageServer();
    otherPage = await startPageServer();
    hub = createWshub({
      secret,
      allowedOrigins: [allowedPage.origin],
      onConnect: (conn) => connected.push(conn),
    });
    hub.log = (entry) => {
      if (entry.event === 'upgrade_rejected') rejections.push(entry);
    };
    hubServer = hub.createServer();
    hubServer.listen(0, '127.0.0.1');
    await once(hubServer, 'listening');
    wsUrl = `ws://127.0.0.1:${(hubServer.address() as AddressInfo).port}/ws`;
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(`${allowedPage.origin}/`);
    foreignPage = await browser.newPage();
    await foreignPage.goto(`${otherPage.origin}/`);
  });
  after(async () => {
    await browser?.close();
    await hub?.shutdown({ timeout: 2000 });
    stopServer(hubServer);
    stopServer(allowedPage?.server);
    stopServer(otherPage?.server);
  });

  function attempt(on: Page, url: string, protocols: string[] | null, message: string | null = null) {
    return on.evaluate(([u, p, m]) => (globalThis as unknown as { auth: PageApi }).auth.attempt(u, p, m), [
      url,
      protocols,
      message,
    ] as const);
  }

  /** The rejection logged for the last refused upgrade. */
  function lastRejection(): { status: unknown; code: unknown } {
    const entry = rejections.at(-1);
    assert.ok(entry, 'the server logged no rejection');
    return { status: entry.status, code: entry.code };
  }

  test('a valid token in the subprotocol opens the socket with protocol "wshub"', limits, async () => {
    const token = await signHS256({ sub: 'user-42', name: 'Grace' }, secret, { expiresInSeconds: 60 });
    const result = await attempt(page, `${wsUrl}?room=auth-ok`, ['wshub', `wshub.bearer.${token}`], 'ping');
    assert.equal(result.opened, true);
    assert.equal(result.protocol, 'wshub', 'the server must select "wshub" and never echo the token');
    assert.equal(result.errored, false);
    assert.equal(result.echoed, 'ping', 'the room fan-out returns the message to its sender');
    assert.equal(result.code, 1000);
    const conn = connected.at(-1);
    assert.equal(conn?.user?.id, 'user-42');
    assert.equal(conn?.user?.name, 'Grace');
    assert.equal(conn?.room, undefined, 'the closed connection has left its room');
  });

  test('a token signed with another secret is refused (403, no open)', limits, async () => {
    const before = rejections.length;
    const forged = await signHS256({ sub: 'mallory' }, randomBytes(32), { expiresInSeconds: 60 });
    const result = await attempt(page, `${wsUrl}?room=auth-bad`, ['wshub', `wshub.bearer.${forged}`]);
    assert.deepEqual(
      { opened: result.opened, errored: result.errored, code: result.code },
      { opened: false, errored: true, code: 1006 },
    );
    assert.equal(rejections.length, before + 1);
    assert.deepEqual(lastRejection(), { status: 403, code: 'WEBSOCKET_INVALID_TOKEN' });
  });

  test('a malformed token is refused (403, no open)', limits, async () => {
    const result = await attempt(page, `${wsUrl}?room=auth-bad`, ['wshub', 'wshub.bearer.not-a-jwt']);
    assert.equal(result.opened, false);
    assert.equal(result.code, 1006);
    assert.deepEqual(lastRejection(), { status: 403, code: 'WEBSOCKET_INVALID_TOKEN' });
  });

  test('without any token the upgrade is refused (401)', limits, async () => {
    const before = rejections.length;
    const result = await attempt(page, `${wsUrl}?room=auth-none`, ['wshub']);
    assert.equal(result.opened, false);
    assert.equal(result.errored, true);
    assert.equal(result.code, 1006);
    assert.equal(rejections.length, before + 1);
    assert.deepEqual(lastRejection(), { status: 401, code: 'WEBSOCKET_TOKEN_REQUIRED' });
  });

  test('a valid token in the query string is not accepted by default (401)', limits, async () => {
    const token = await signHS256({ sub: 'user-42' }, secret, { expiresInSeconds: 60 });
    const result = await attempt(page, `${wsUrl}?room=auth-query&token=${token}`, null);
    assert.equal(result.opened, false);
    assert.deepEqual(lastRejection(), { status: 401, code: 'WEBSOCKET_TOKEN_REQUIRED' });
  });

  test(
    'a page from an origin that is not allowed is refused (403), even with a valid token',
    limits,
    async () => {
      const before = rejections.length;
      const token = await signHS256({ sub: 'user-42' }, secret, { expiresInSeconds: 60 });
      const result = await attempt(foreignPage, `${wsUrl}?room=auth-ok`, ['wshub', `wshub.bearer.${token}`]);
      assert.equal(result.opened, false);
      assert.equal(result.errored, true);
      assert.equal(result.code, 1006);
      assert.equal(rejections.length, before + 1);
      assert.deepEqual(lastRejection(), { status: 403, code: 'WEBSOCKET_FORBIDDEN_ORIGIN' });
    },
  );
});
