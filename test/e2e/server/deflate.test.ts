// permessage-deflate through the server: the 101 carries the answer on the
// fast path and on the node:http path, the defaults per endpoint, and a room
// broadcast reaching deflate and plain members alike.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { createWshub, dial, type WshubConfig } from '../../../src/index.ts';
import { cleanupHubs, startHub } from './harness.ts';

afterEach(cleanupHubs);

const OFFER = 'permessage-deflate; client_max_window_bits';

/** The response head of an upgrade to `path` offering deflate. */
async function upgradeHead(port: number, path: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Extensions: ${OFFER}\r\n\r\n`,
  );
  let text = '';
  for await (const chunk of socket) {
    text += (chunk as Buffer).toString('latin1');
    if (text.includes('\r\n\r\n')) break;
  }
  socket.destroy();
  return text.slice(0, text.indexOf('\r\n\r\n'));
}

const config: Partial<WshubConfig> = { allowUnauthenticated: true, channelsEnabled: true };

test('the 101 carries the permessage-deflate answer on the fast path and on the node:http path', async () => {
  const fast = await startHub({ ...config, perMessageDeflate: true });
  const viaHttp = createWshub({ ...config, perMessageDeflate: true, pingPeriod: 0 });
  const server = createServer();
  viaHttp.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    for (const port of [fast.port, (server.address() as AddressInfo).port]) {
      for (const path of ['/ws', '/connection/websocket']) {
        const head = await upgradeHead(port, path);
        assert.match(head, /^HTTP\/1\.1 101/);
        assert.match(
          head,
          /\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=15(\r\n|$)/,
          `${path} on port ${port}`,
        );
      }
    }
  } finally {
    await viaHttp.shutdown({ timeout: 500 });
    server.closeAllConnections();
    server.close();
  }
});

test('by default deflate is on for the channel endpoint and off for /ws; false turns both off', async () => {
  const byDefault = await startHub(config);
  assert.doesNotMatch(await upgradeHead(byDefault.port, '/ws'), /Sec-WebSocket-Extensions/);
  assert.match(await upgradeHead(byDefault.port, '/connection/websocket'), /Sec-WebSocket-Extensions/);
  const off = await startHub({ ...config, perMessageDeflate: false });
  assert.doesNotMatch(await upgradeHead(off.port, '/connection/websocket'), /Sec-WebSocket-Extensions/);
});

test('a room broadcast reaches deflate and plain members with the same bytes; a compressed client message is broadcast', async () => {
  const hub = await startHub({ ...config, perMessageDeflate: true });
  /** Messages a client received, and a wait for the n-th. */
  const inbox = () => {
    const got: string[] = [];
    let waiter: { n: number; resolve: () => void } | null = null;
    return {
      got,
      push(text: string): void {
        got.push(text);
        if (waiter !== null && got.length >= waiter.n) waiter.resolve();
      },
      wait(n: number): Promise<void> {
        return got.length >= n ? Promise.resolve() : new Promise((resolve) => (waiter = { n, resolve }));
      },
    };
  };
  const boxes = [inbox(), inbox()];
  const [zipped, plain] = await Promise.all(
    [true, false].map((deflate, i) =>
      dial(hub.url('/ws?room=mixed'), {
        perMessageDeflate: deflate,
        handlers: {
          message: (_c, data) =>
            void (boxes[i] as unknown as { push(s: string): void }).push(data.toString()),
        },
      }),
    ),
  );
  assert.ok(zipped!.deflate !== null);
  assert.equal(plain!.deflate, null);
  const big = JSON.stringify({ rows: Array.from({ length: 100 }, (_, i) => ({ i, label: `row ${i}` })) });
  hub.ws.hub.broadcastRoom('mixed', 1, big);
  hub.ws.hub.broadcastRoom('mixed', 1, 'small');
  // A compressed message from the deflate client is inflated and fanned out to both.
  await zipped!.sendText(big.replace('row', 'ROW'));
  await Promise.all(boxes.map((b) => b.wait(3)));
  for (const box of boxes) assert.deepEqual(box.got, [big, 'small', big.replace('row', 'ROW')]);
  zipped!.close();
  plain!.close();
  await Promise.all([zipped!.closed(), plain!.closed()]);
});
