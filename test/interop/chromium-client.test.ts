// Interop: Chromium's native WebSocket against `wshub echo`. A tiny page served
// from a throwaway loopback HTTP server holds the client code; the tests call
// it through playwright-core's page.evaluate. Browsers expose no ping API, so
// ping/pong is covered by the other clients only.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, requireChromium } from '../helpers/chromium.ts';
import {
  BINARY_SIZES,
  CLOSE_CODE,
  CLOSE_REASON,
  ECHOED_CLOSE_REASON,
  EXPECTED_PROTOCOL,
  OFFERED_PROTOCOLS,
  ORDERED_COUNT,
  TEXT_SAMPLES,
  orderedMessage,
  randomPayload,
  startEchoServer,
} from './echo-fixture.ts';

const limits = { timeout: 15_000 };

type Observed = { type: 'text'; text: string } | { type: 'binary'; base64: string };
type Outgoing = { text: string } | { base64: string };

/** What the page script below puts on `globalThis.interop`. */
interface PageApi {
  echo(url: string, items: readonly Outgoing[]): Promise<Observed[]>;
  ordered(url: string, texts: readonly string[]): Promise<Observed[]>;
  close(
    url: string,
    code: number,
    reason: string,
  ): Promise<{ code: number; reason: string; wasClean: boolean }>;
  subprotocol(url: string, protocols: readonly string[] | null): Promise<string>;
}

// Plain browser JavaScript; every scenario opens its own socket and closes it.
const PAGE_SCRIPT = String.raw`
const TIMEOUT_MS = 8000;

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function describeMessage(data) {
  return typeof data === 'string' ? { type: 'text', text: data } : { type: 'binary', base64: toBase64(data) };
}

function open(url, protocols) {
  return new Promise((resolve, reject) => {
    const ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const queue = [];
    const waiters = [];
    ws.onmessage = (event) => {
      const message = describeMessage(event.data);
      const waiter = waiters.shift();
      if (waiter) waiter.resolve(message);
      else queue.push(message);
    };
    const closed = new Promise((done) => {
      ws.onclose = (event) => {
        done({ code: event.code, reason: event.reason, wasClean: event.wasClean });
        for (const waiter of waiters.splice(0)) waiter.reject(new Error('closed with ' + event.code + ' while waiting'));
      };
    });
    const next = () => {
      if (queue.length > 0) return Promise.resolve(queue.shift());
      return new Promise((resolveNext, rejectNext) => {
        const timer = setTimeout(() => rejectNext(new Error('no message within ' + TIMEOUT_MS + ' ms')), TIMEOUT_MS);
        waiters.push({
          resolve: (m) => { clearTimeout(timer); resolveNext(m); },
          reject: (e) => { clearTimeout(timer); rejectNext(e); },
        });
      });
    };
    const dispose = async () => {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      await closed;
    };
    ws.onopen = () => resolve({ ws, closed, next, dispose });
    ws.onerror = () => reject(new Error('WebSocket error on ' + url));
  });
}

async function withSocket(url, protocols, run) {
  const client = await open(url, protocols);
  try {
    return await run(client);
  } finally {
    await client.dispose();
  }
}

globalThis.interop = {
  echo: (url, items) => withSocket(url, null, async (client) => {
    const received = [];
    for (const item of items) {
      client.ws.send('text' in item ? item.text : fromBase64(item.base64));
      received.push(await client.next());
    }
    return received;
  }),
  ordered: (url, texts) => withSocket(url, null, async (client) => {
    for (const text of texts) client.ws.send(text);
    const received = [];
    for (let i = 0; i < texts.length; i++) received.push(await client.next());
    return received;
  }),
  close: async (url, code, reason) => {
    const client = await open(url, null);
    client.ws.close(code, reason);
    return client.closed;
  },
  subprotocol: (url, protocols) => withSocket(url, protocols, async (client) => client.ws.protocol),
};
`;

const PAGE_HTML = `<!doctype html><meta charset="utf-8"><title>interop</title><script>${PAGE_SCRIPT}</script>`;

function text(value: string): Observed {
  return { type: 'text', text: value };
}

describe('Chromium WebSocket against wshub echo', requireChromium(), () => {
  let server: Awaited<ReturnType<typeof startEchoServer>>;
  let pageServer: Server;
  let browser: Browser;
  let page: Page;

  before(async () => {
    server = await startEchoServer();
    pageServer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE_HTML);
    });
    pageServer.listen(0, '127.0.0.1');
    await once(pageServer, 'listening');
    browser = await launchChromium();
    page = await browser.newPage();
    const { port } = pageServer.address() as AddressInfo;
    await page.goto(`http://127.0.0.1:${port}/`);
  });
  after(async () => {
    await browser?.close();
    pageServer?.closeAllConnections();
    pageServer?.close();
    await server?.stop();
  });

  test('text messages, including non-ASCII, come back as the same text', limits, async () => {
    const received = await page.evaluate(
      ([url, items]) => (globalThis as unknown as { interop: PageApi }).interop.echo(url, items),
      [`${server.wsUrl}/any/path`, TEXT_SAMPLES.map((t) => ({ text: t }))] as const,
    );
    assert.deepEqual(received, TEXT_SAMPLES.map(text));
  });

  test('binary messages up to 1 MiB come back byte for byte', limits, async () => {
    const payloads = BINARY_SIZES.map(randomPayload);
    const received = await page.evaluate(
      ([url, items]) => (globalThis as unknown as { interop: PageApi }).interop.echo(url, items),
      [server.wsUrl, payloads.map((p) => ({ base64: p.toString('base64') }))] as const,
    );
    assert.equal(received.length, payloads.length);
    received.forEach((reply, i) => {
      const sent = payloads[i] ?? Buffer.alloc(0);
      assert.equal(reply.type, 'binary', `opcode must stay binary (size ${sent.length})`);
      const bytes = Buffer.from(reply.type === 'binary' ? reply.base64 : '', 'base64');
      assert.equal(bytes.length, sent.length);
      assert.ok(bytes.equals(sent), `payload of ${sent.length} bytes differs`);
    });
  });

  test(`${ORDERED_COUNT} messages sent back to back come back in order`, limits, async () => {
    const sent = Array.from({ length: ORDERED_COUNT }, (_, i) => orderedMessage(i));
    const received = await page.evaluate(
      ([url, texts]) => (globalThis as unknown as { interop: PageApi }).interop.ordered(url, texts),
      [server.wsUrl, sent] as const,
    );
    assert.deepEqual(received, sent.map(text));
  });

  test('a close with a code and reason is answered with the same code and reason', limits, async () => {
    const event = await page.evaluate(
      ([url, code, reason]) =>
        (globalThis as unknown as { interop: PageApi }).interop.close(url, code, reason),
      [server.wsUrl, CLOSE_CODE, CLOSE_REASON] as const,
    );
    assert.equal(event.wasClean, true, 'the close handshake must complete');
    assert.equal(event.code, CLOSE_CODE);
    assert.equal(event.reason, ECHOED_CLOSE_REASON);
  });

  test('the first offered subprotocol is selected', limits, async () => {
    const selected = await page.evaluate(
      ([url, protocols]) =>
        (globalThis as unknown as { interop: PageApi }).interop.subprotocol(url, protocols),
      [server.wsUrl, OFFERED_PROTOCOLS] as const,
    );
    assert.equal(selected, EXPECTED_PROTOCOL);
  });

  test('no subprotocol is selected when none is offered', limits, async () => {
    const selected = await page.evaluate(
      (url) => (globalThis as unknown as { interop: PageApi }).interop.subprotocol(url, null),
      server.wsUrl,
    );
    assert.equal(selected, '');
  });
});
