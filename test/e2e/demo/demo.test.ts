// The demo chat page end to end in headless Chromium against the real
// `wshub serve --dev` command: users in separate browser contexts connect
// with the official centrifuge SDK, see each other in presence, chat in
// chat:general, a late joiner gets the history, and a page whose network
// drops (Chromium's offline mode, then the page's own "simulate network
// drop") recovers every message it missed, in order. Screenshots go to
// artifacts/screenshots/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium, requireChromium } from '../../helpers/chromium.ts';
import { startCli, type RunningCli } from '../../helpers/cli.ts';

const SCREENSHOTS = fileURLToPath(new URL('../../../artifacts/screenshots/', import.meta.url));
const limits = { timeout: 60_000 };
const WAIT = { timeout: 15_000 };
const GENERAL = 'chat:general';

/** Chromium reports each refused WebSocket while offline on the console; those are expected. */
const OFFLINE_NOISE = /WebSocket connection to .* failed/;

/** Connects a page as `name` and waits until chat:general is subscribed. */
async function connectAs(page: Page, name: string): Promise<void> {
  await page.getByTestId('name').fill(name);
  await page.getByTestId('join').click();
  await waitForState(page, 'connected');
  await page.locator(`[data-testid="channel-button"][data-channel="${GENERAL}"]:not(.pending)`).waitFor(WAIT);
}

async function waitForState(page: Page, state: string): Promise<void> {
  await page.locator(`[data-testid="status"][data-state="${state}"]`).waitFor(WAIT);
}

/** The names in a channel's presence list, sorted. */
function people(page: Page, channel = GENERAL): Promise<string[]> {
  return page
    .locator(`[data-testid="people"][data-channel="${channel}"] [data-testid="person"]`)
    .allTextContents();
}

/** Waits until a channel's presence list is exactly `names` (sorted). */
async function waitForPeople(page: Page, names: string[], channel = GENERAL): Promise<void> {
  const deadline = Date.now() + WAIT.timeout;
  for (;;) {
    const shown = await people(page, channel);
    if (JSON.stringify(shown) === JSON.stringify(names)) return;
    if (Date.now() > deadline)
      assert.fail(`presence of ${channel}: expected ${names.join(', ')}, got ${shown.join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function messages(page: Page, channel = GENERAL) {
  return page.locator(`[data-testid="messages"][data-channel="${channel}"] [data-testid="message-item"]`);
}

/** The messages shown in a channel, as [from, text] pairs. */
async function shownMessages(page: Page, channel = GENERAL): Promise<Array<[string, string]>> {
  const list = page.locator(`[data-testid="messages"][data-channel="${channel}"]`);
  const from = await list.getByTestId('message-from').allTextContents();
  const text = await list.getByTestId('message-text').allTextContents();
  assert.equal(from.length, text.length);
  return from.map((name, i): [string, string] => [name, text[i] ?? '']);
}

async function waitForCount(page: Page, count: number, channel = GENERAL): Promise<void> {
  await messages(page, channel)
    .nth(count - 1)
    .waitFor(WAIT);
  assert.equal(await messages(page, channel).count(), count);
}

async function send(page: Page, text: string): Promise<void> {
  await page.getByTestId('message').fill(text);
  await page.getByTestId('send').click();
}

describe('demo chat on channels in Chromium', requireChromium(), () => {
  let cli: RunningCli;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  /** Console errors and uncaught exceptions per page (CSP violations show up here). */
  const problems = new Map<Page, string[]>();

  async function openPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT.timeout);
    const seen: string[] = [];
    problems.set(page, seen);
    page.on('console', (message) => {
      if (message.type() === 'error' && !OFFLINE_NOISE.test(message.text())) seen.push(message.text());
    });
    page.on('pageerror', (error) => seen.push(error.message));
    await page.goto(`${cli.url}/`);
    return page;
  }

  before(async () => {
    cli = await startCli(['serve', '--dev', '--port', '0'], { WS_SECRET: '' });
    browser = await launchChromium();
    await mkdir(SCREENSHOTS, { recursive: true });
  });
  async function closeContexts(): Promise<void> {
    for (const context of contexts.splice(0)) await context.close();
  }

  after(async () => {
    await closeContexts();
    await browser?.close();
    const code = await cli?.stop();
    assert.equal(code, 0, `wshub serve exited with ${code}; stderr: ${cli?.stderr()}`);
  });

  test(
    'two users see each other, chat (escaped), a late joiner gets history, channels are apart',
    limits,
    async () => {
      const ada = await openPage();
      const bob = await openPage();
      await connectAs(ada, 'Ada');
      await connectAs(bob, 'Bob');
      await waitForPeople(ada, ['Ada', 'Bob']);
      await waitForPeople(bob, ['Ada', 'Bob']);

      // Markup in a message must show as text, not become elements.
      const hello = 'Hello Bob <b>bold?</b> & <img src=x onerror=alert(1)>';
      await send(ada, hello);
      await waitForCount(bob, 1);
      assert.deepEqual(await shownMessages(bob), [['Ada', hello]]);
      assert.equal(await bob.locator('[data-testid="messages"] b, [data-testid="messages"] img').count(), 0);
      await send(bob, 'Hi Ada!');
      await waitForCount(ada, 2);
      await waitForCount(bob, 2);
      const expected: Array<[string, string]> = [
        ['Ada', hello],
        ['Bob', 'Hi Ada!'],
      ];
      assert.deepEqual(await shownMessages(ada), expected);
      assert.deepEqual(await shownMessages(bob), expected);

      // A late joiner sees what was said before, from the channel's history.
      const carol = await openPage();
      await connectAs(carol, 'Carol');
      await waitForCount(carol, 2);
      assert.deepEqual(await shownMessages(carol), expected);
      await waitForPeople(ada, ['Ada', 'Bob', 'Carol']);

      // A user-created channel: only its subscribers get its messages.
      for (const page of [ada, carol]) {
        await page.getByTestId('new-channel').fill('games');
        await page.getByTestId('add-channel').click();
        await page
          .locator('[data-testid="channel-button"][data-channel="chat:games"]:not(.pending)')
          .waitFor(WAIT);
      }
      await waitForPeople(carol, ['Ada', 'Carol'], 'chat:games');
      await send(carol, 'anyone for chess?');
      await waitForCount(ada, 1, 'chat:games');
      assert.deepEqual(await shownMessages(ada, 'chat:games'), [['Carol', 'anyone for chess?']]);
      assert.equal(await messages(bob).count(), 2, 'chat:general did not get it');
      assert.equal(await bob.locator('[data-channel="chat:games"]').count(), 0);
      // Ada was looking at chat:games; chat:general counts what came meanwhile.
      await send(bob, 'still here');
      await ada
        .locator(`[data-testid="channel-button"][data-channel="${GENERAL}"] .badge:not([hidden])`)
        .waitFor(WAIT);
      assert.equal(await ada.locator(`[data-channel="${GENERAL}"] .badge`).textContent(), '1');

      // Leaving a channel is a leave event for the others.
      await carol.getByTestId('channel-button').filter({ hasText: '#general' }).click();
      await carol.getByTestId('leave-channel').click();
      await waitForPeople(ada, ['Ada', 'Bob']);
      await bob.screenshot({ path: join(SCREENSHOTS, 'demo.png'), fullPage: true });
      for (const page of [ada, bob, carol]) assert.deepEqual(problems.get(page), []);
      await closeContexts();
    },
  );

  test('a page whose network drops recovers every message it missed, in order', limits, async () => {
    const dan = await openPage();
    const eve = await openPage();
    await connectAs(dan, 'Dan');
    await connectAs(eve, 'Eve');
    await waitForPeople(dan, ['Dan', 'Eve']);
    await send(dan, 'before the drop');
    // The page shows live messages only after the channel's history, so once this one is there the
    // count is settled (counting before it raced with the history of the earlier test's messages).
    await messages(eve).filter({ hasText: 'before the drop' }).waitFor(WAIT);
    const start = (await messages(eve).count()) - 1;
    await waitForCount(eve, start + 1);

    // Chromium's offline mode cuts the open WebSocket and refuses new ones.
    await eve.context().setOffline(true);
    await waitForState(eve, 'connecting');
    await waitForPeople(dan, ['Dan']);
    const missed = ['missed 1', 'missed 2 <i>', 'missed 3'];
    for (const text of missed) await send(dan, text);
    await waitForCount(dan, start + 1 + missed.length);
    await eve.context().setOffline(false);
    await waitForCount(eve, start + 1 + missed.length);
    await waitForState(eve, 'connected');
    const shown = (await shownMessages(eve)).slice(-4);
    assert.deepEqual(shown, [
      ['Dan', 'before the drop'],
      ...missed.map((text): [string, string] => ['Dan', text]),
    ]);
    assert.equal(await eve.locator(`[data-channel="${GENERAL}"] [data-recovered="true"]`).count(), 3);
    const notice = eve.locator(`[data-channel="${GENERAL}"] [data-testid="notice"][data-kind="recovered"]`);
    await notice.waitFor(WAIT);
    assert.equal(await notice.textContent(), 'Back online: recovered 3 missed messages.');
    await waitForPeople(dan, ['Dan', 'Eve']);

    // The page's own button does the same without the browser's help.
    await eve.getByTestId('network').click();
    assert.equal(await eve.getByTestId('network').getAttribute('aria-pressed'), 'true');
    await waitForState(eve, 'offline');
    await waitForPeople(dan, ['Dan']);
    await send(dan, 'while Eve is away');
    await waitForCount(dan, start + 5);
    await eve.getByTestId('network').click();
    await waitForCount(eve, start + 5);
    await waitForState(eve, 'connected');
    assert.deepEqual((await shownMessages(eve)).at(-1), ['Dan', 'while Eve is away']);
    assert.equal(await eve.locator(`[data-channel="${GENERAL}"] [data-recovered="true"]`).count(), 4);
    assert.equal(await notice.count(), 2);
    assert.equal(await notice.last().textContent(), 'Back online: recovered 1 missed message.');
    assert.deepEqual(
      await shownMessages(eve),
      await shownMessages(dan),
      'both pages show the same conversation',
    );
    await eve.screenshot({ path: join(SCREENSHOTS, 'demo-recovered.png'), fullPage: true });
    for (const page of [dan, eve]) assert.deepEqual(problems.get(page), []);
  });
});
