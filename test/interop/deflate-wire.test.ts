// Interop with permessage-deflate, checked on the wire: each client talks to
// `wshub echo` through a relay that records every frame, and the tests check
// that both directions really carry RSV1 and that the compressed payloads
// inflate (with an inflater of the test's own) to the bytes the client sent.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import type { Browser } from 'playwright-core';
import { launchChromium, requireChromium } from '../helpers/chromium.ts';
import { requirePythonModule } from '../helpers/binaries.ts';
import { startEchoServer } from './echo-fixture.ts';
import { WireTap, extensionsOf, inflateAll } from './wire-tap.ts';
import { dial } from '../../src/client/dial.ts';

const limits = { timeout: 20_000 };

/** JSON messages, the traffic compression is for; each over every client's threshold. */
const MESSAGES: readonly string[] = Array.from({ length: 5 }, (_, n) =>
  JSON.stringify({
    n,
    feed: Array.from({ length: 60 }, (_, i) => ({ id: n * 100 + i, user: `user-${i % 7}`, text: 'grüße ✓' })),
  }),
);

let server: Awaited<ReturnType<typeof startEchoServer>>;
let tap: WireTap;

before(async () => {
  server = await startEchoServer();
  tap = await WireTap.start(server.port);
});
after(async () => {
  await tap?.stop();
  await server?.stop();
});

/** Checks the last recorded connection: negotiated, every message compressed both ways, same bytes. */
async function checkWire(sent: readonly string[]): Promise<string> {
  const record = tap.connections[tap.connections.length - 1]!;
  const answer = extensionsOf(record.server.head);
  assert.ok(answer?.startsWith('permessage-deflate'), `101 carries ${answer ?? 'no extension'}`);
  const up = record.client.messages();
  const down = record.server.messages();
  assert.equal(up.length, sent.length);
  assert.equal(down.length, sent.length);
  assert.ok(
    up.every((m) => m.compressed),
    'every client message carries RSV1',
  );
  assert.ok(
    down.every((m) => m.compressed),
    'every echo carries RSV1',
  );
  for (const [i, m] of down.entries()) assert.ok(m.payload.length < Buffer.byteLength(sent[i]!) / 2);
  const inflatedUp = await inflateAll(up);
  const inflatedDown = await inflateAll(down);
  assert.deepEqual(inflatedUp.map(String), sent);
  assert.deepEqual(inflatedDown.map(String), sent);
  const continuationsWithRsv1 = [...record.client.frames, ...record.server.frames].filter(
    (f) => f.rsv1 && (f.opcode === 0 || f.opcode >= 8),
  );
  assert.equal(continuationsWithRsv1.length, 0, 'RSV1 only on first data frames');
  return answer!;
}

describe('permessage-deflate on the wire', () => {
  test('ws with perMessageDeflate', limits, async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${tap.port}/`, { perMessageDeflate: { threshold: 0 } });
    await once(ws, 'open');
    const received: string[] = [];
    const all = new Promise<void>((resolve) =>
      ws.on('message', (data: Buffer) => {
        received.push(data.toString('utf8'));
        if (received.length === MESSAGES.length) resolve();
      }),
    );
    for (const m of MESSAGES) ws.send(m);
    await all;
    ws.close(1000);
    await once(ws, 'close');
    assert.deepEqual(received, MESSAGES);
    const answer = await checkWire(MESSAGES);
    assert.match(answer, /server_no_context_takeover/);
  });

  test('the Node client dial() with perMessageDeflate', limits, async () => {
    const received: string[] = [];
    let resolveAll: () => void;
    const all = new Promise<void>((resolve) => (resolveAll = resolve));
    const conn = await dial(`ws://127.0.0.1:${tap.port}/`, {
      perMessageDeflate: true,
      handlers: {
        message: (_c, data) => {
          received.push(data.toString('utf8'));
          if (received.length === MESSAGES.length) resolveAll();
        },
      },
    });
    assert.ok(conn.deflate !== null, 'deflate agreed');
    for (const m of MESSAGES) await conn.sendText(m);
    await all;
    conn.close(1000);
    await conn.closed();
    assert.deepEqual(received, MESSAGES);
    await checkWire(MESSAGES);
  });

  describe(
    'Python websockets (compression on by default)',
    requirePythonModule('/usr/bin/python3', 'websockets', 'python3-websockets'),
    () => {
      test('echo of JSON messages', limits, async () => {
        const script = fileURLToPath(new URL('./python_client.py', import.meta.url));
        const child = spawn('/usr/bin/python3', [script], { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        const exited = once(child, 'exit');
        child.stdin.end(
          JSON.stringify({ url: `ws://127.0.0.1:${tap.port}/`, scenario: 'echo', texts: MESSAGES }),
        );
        await exited;
        const result = JSON.parse(stdout) as { received: Array<{ text: string }> };
        assert.deepEqual(
          result.received.map((r) => r.text),
          MESSAGES,
        );
        await checkWire(MESSAGES);
      });
    },
  );

  describe('Chromium', requireChromium(), () => {
    let browser: Browser | undefined;
    before(async () => {
      browser = await launchChromium();
    });
    after(async () => {
      await browser?.close();
    });

    test('native WebSocket', limits, async () => {
      const page = await browser!.newPage();
      try {
        const received = await page.evaluate(
          async ({ url, messages }) => {
            const ws = new WebSocket(url);
            await new Promise((resolve, reject) => {
              ws.onopen = resolve;
              ws.onerror = reject;
            });
            const got: string[] = [];
            const done = new Promise<void>((resolve) => {
              ws.onmessage = (event) => {
                got.push(event.data as string);
                if (got.length === messages.length) resolve();
              };
            });
            for (const m of messages) ws.send(m);
            await done;
            ws.close(1000);
            await new Promise((resolve) => (ws.onclose = resolve));
            return got;
          },
          { url: `ws://127.0.0.1:${tap.port}/`, messages: [...MESSAGES] },
        );
        assert.deepEqual(received, MESSAGES);
        const answer = await checkWire(MESSAGES);
        // Chromium offers client_max_window_bits without client_no_context_takeover: its context is kept.
        assert.match(answer, /client_max_window_bits=15/);
      } finally {
        await page.close();
      }
    });
  });
});
