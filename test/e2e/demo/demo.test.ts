// The demo chat page end to end in headless Chromium against the real
// `wshub serve --dev` command: two users in separate browser contexts chat
// in one room, a protected room asks for its password, and screenshots of
// the page go to artifacts/screenshots/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium, requireChromium } from '../../helpers/chromium.ts';
import { startCli } from '../../helpers/cli.ts';

const SCREENSHOT = fileURLToPath(new URL('../../../artifacts/screenshots/demo.png', import.meta.url));
const limits = { timeout: 30_000 };
const WAIT = { timeout: 10_000 };

interface DemoTarget {
  url: string;
  stop(): Promise<void>;
}

/** Starts the real `wshub serve --dev` with a config file holding the room passwords. */
async function startDemo(configFile: string): Promise<DemoTarget> {
  const cli = await startCli(['serve', '--dev', '--port', '0', '--config', configFile], { WS_SECRET: '' });
  return {
    url: cli.url,
    async stop() {
      const code = await cli.stop();
      assert.equal(code, 0, `wshub serve exited with ${code}; stderr: ${cli.stderr()}`);
    },
  };
}

/** Fills the join form and submits it (the password only when given). */
async function submitJoin(page: Page, name: string, room: string, password?: string): Promise<void> {
  await page.getByTestId('name').fill(name);
  await page.getByTestId('room').fill(room);
  if (password !== undefined) await page.getByTestId('password').fill(password);
  await page.getByTestId('join').click();
}

async function waitForState(page: Page, state: string): Promise<void> {
  await page.locator(`[data-testid="status"][data-state="${state}"]`).waitFor(WAIT);
}

/** Waits until the element's whole text (trimmed) is `text`. */
async function waitForText(page: Page, testId: string, text: string): Promise<void> {
  const exact = new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
  await page.getByTestId(testId).filter({ hasText: exact }).waitFor(WAIT);
}

/** The messages shown on a page, as [from, text] pairs. */
async function shownMessages(page: Page): Promise<Array<[string, string]>> {
  const from = await page.getByTestId('message-from').allTextContents();
  const text = await page.getByTestId('message-text').allTextContents();
  assert.equal(from.length, text.length);
  return from.map((name, i): [string, string] => [name, text[i] ?? '']);
}

async function send(page: Page, text: string): Promise<void> {
  await page.getByTestId('message').fill(text);
  await page.getByTestId('send').click();
}

describe('demo chat page in Chromium', requireChromium(), () => {
  let target: DemoTarget;
  let browser: Browser;
  let workDir: string;
  const contexts: BrowserContext[] = [];
  /** Console errors and uncaught exceptions per page (CSP violations show up here). */
  const problems = new Map<Page, string[]>();

  async function openPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT.timeout);
    const seen: string[] = [];
    problems.set(page, seen);
    page.on('console', (message) => {
      if (message.type() === 'error') seen.push(message.text());
    });
    page.on('pageerror', (error) => seen.push(error.message));
    await page.goto(`${target.url}/`);
    return page;
  }

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'wshub-demo-'));
    const configFile = join(workDir, 'config.json');
    await writeFile(configFile, JSON.stringify({ roomPasswords: { vip: 'Secret123' } }));
    target = await startDemo(configFile);
    browser = await launchChromium();
    await mkdir(join(SCREENSHOT, '..'), { recursive: true });
  });
  after(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await target?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('two users in one room see each other and each other’s messages', limits, async () => {
    const ada = await openPage();
    const bob = await openPage();
    await submitJoin(ada, 'Ada', 'lobby');
    await waitForState(ada, 'open');
    await submitJoin(bob, 'Bob', 'lobby');
    await waitForState(bob, 'open');

    await waitForText(ada, 'member-count', '2');
    await waitForText(bob, 'member-count', '2');
    assert.equal(await ada.getByTestId('room-title').textContent(), 'lobby');
    assert.match((await ada.getByTestId('status').textContent()) ?? '', /subprotocol wshub/);

    // Markup in a message must show as text, not become elements.
    const hello = 'Hello Bob <b>bold?</b> & <img src=x onerror=alert(1)>';
    await send(ada, hello);
    await bob.getByTestId('message-item').first().waitFor(WAIT);
    assert.deepEqual(await shownMessages(bob), [['Ada', hello]]);
    assert.equal(await bob.locator('[data-testid="messages"] b, [data-testid="messages"] img').count(), 0);

    await send(bob, 'Hi Ada, nice to meet you!');
    await ada.getByTestId('message-item').nth(1).waitFor(WAIT);
    await bob.getByTestId('message-item').nth(1).waitFor(WAIT);
    const expected: Array<[string, string]> = [
      ['Ada', hello],
      ['Bob', 'Hi Ada, nice to meet you!'],
    ];
    assert.deepEqual(await shownMessages(ada), expected);
    assert.deepEqual(await shownMessages(bob), expected);

    await bob.screenshot({ path: SCREENSHOT, fullPage: true });

    // Leaving closes with 1000 and the other side's count drops back to 1.
    await ada.getByTestId('leave').click();
    await waitForState(ada, 'closed');
    assert.match((await ada.getByTestId('status').textContent()) ?? '', /code 1000/);
    await waitForText(bob, 'member-count', '1');
    assert.equal(await ada.getByTestId('join-form').isVisible(), true);
    assert.deepEqual(problems.get(ada), []);
    assert.deepEqual(problems.get(bob), []);
  });

  test('a protected room asks for its password and refuses a wrong one', limits, async () => {
    const page = await openPage();
    await submitJoin(page, 'Carol', 'vip');
    await page.getByTestId('password-row').waitFor({ state: 'visible', ...WAIT });
    await page.getByTestId('join-error').waitFor({ state: 'visible', ...WAIT });
    assert.match((await page.getByTestId('join-error').textContent()) ?? '', /protected/i);

    await submitJoin(page, 'Carol', 'vip', 'not-the-password');
    await waitForText(page, 'join-error', 'Wrong room password. Try again.');
    assert.equal(await page.getByTestId('chat').isVisible(), false);
    await page.screenshot({ path: join(SCREENSHOT, '..', 'demo-password.png') });

    await submitJoin(page, 'Carol', 'vip', 'Secret123');
    await waitForState(page, 'open');
    assert.equal(await page.getByTestId('room-title').textContent(), 'vip');
    await waitForText(page, 'member-count', '1');
    assert.equal(await page.getByTestId('join-error').isVisible(), false);
  });
});
