// The demo page's token refresh in Chromium: the demo runs in-process with
// channel tokens of 2 seconds, so the SDK asks the page's getToken for a new
// one every couple of seconds; the page trades its previous token for one of
// the same user, and the connection stays up and keeps working throughout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { RoomPasswords } from '../../../src/auth/room-password.ts';
import { createDemo } from '../../../src/demo/demo.ts';
import { createWshub, type WshubServer } from '../../../src/server/server.ts';
import { launchChromium, requireChromium } from '../../helpers/chromium.ts';

const WAIT = { timeout: 15_000 };

describe('demo page token refresh in Chromium', requireChromium(), () => {
  let ws: WshubServer;
  let server: Server;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  before(async () => {
    const secret = randomBytes(32);
    const demo = createDemo({ secret, roomPasswords: new RoomPasswords(), channelTokenTtlSeconds: 2 });
    ws = createWshub({ secret, ...demo.config });
    demo.bind(ws);
    server = ws.createServer((request, response) => {
      if (!demo.handleRequest(request, response)) response.writeHead(404).end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    ws.config.allowedOrigins.push(base);
    browser = await launchChromium();
    page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(WAIT.timeout);
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${base}/`);
  });

  after(async () => {
    await browser?.close();
    await ws?.shutdown({ timeout: 1000 });
    server?.closeAllConnections();
    server?.close();
  });

  test('the SDK refreshes the short-lived token through the page; the user and the connection stay', async () => {
    await page.getByTestId('name').fill('Ada');
    await page.getByTestId('join').click();
    await page.locator('[data-testid="status"][data-state="connected"]').waitFor(WAIT);
    await page
      .locator('[data-testid="channel-button"][data-channel="chat:general"]:not(.pending)')
      .waitFor(WAIT);
    const presence = await ws.channels!.presence('chat:general');
    const [client] = Object.values(presence);
    assert.ok(client !== undefined);

    // Three tokens: the first, then two refreshes (each token lives 2 s).
    await page.locator('[data-testid="token-info"][data-count="3"]').waitFor(WAIT);
    assert.match((await page.getByTestId('token-info').textContent()) ?? '', /^token refreshed /);
    assert.equal(await page.getByTestId('status').getAttribute('data-state'), 'connected');
    assert.deepEqual(await ws.channels!.presence('chat:general'), presence, 'the same client and user');

    await page.getByTestId('message').fill('still me');
    await page.getByTestId('send').click();
    await page.getByTestId('message-text').filter({ hasText: 'still me' }).waitFor(WAIT);
    assert.deepEqual(await page.getByTestId('message-from').allTextContents(), ['Ada']);
    assert.equal(ws.metrics().channel_disconnects, 0, 'no reconnect was needed');
    assert.deepEqual(problems, []);
  });
});
