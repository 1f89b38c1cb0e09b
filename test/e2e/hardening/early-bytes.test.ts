// Bytes a client sends right behind its upgrade request, before the 101,
// belong to the WebSocket connection: they must not be lost while a token
// or room check is still waiting, on the fast path or through node:http.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, test } from 'node:test';
import type { TokenAuthenticator } from '../../../src/auth/token.ts';
import { Opcode, encodeFrame, randomMask } from '../../../src/protocol/frame.ts';
import { createWshub } from '../../../src/server/server.ts';
import { cleanupHubs, startHub } from '../server/harness.ts';

afterEach(cleanupHubs);

/** Accepts any token after `ms`, as a remote identity provider would. */
function slowAuthenticator(ms: number): TokenAuthenticator {
  return {
    async authenticate() {
      await sleep(ms);
      return { id: 'u1', claims: {} } as never;
    },
  };
}

/** Sends the upgrade request, then a text frame before the 101; resolves with everything read in `ms`. */
async function pipelined(port: number, text: string, ms: number): Promise<string> {
  const socket = connect({ port, host: '127.0.0.1' });
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  const head =
    'GET /ws?room=early HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
    'Authorization: Bearer any\r\n\r\n';
  socket.write(head);
  // The frame follows in its own segment while the token check is under way.
  await sleep(30);
  socket.write(encodeFrame(Opcode.TEXT, Buffer.from(text), { mask: randomMask() }));
  await sleep(ms);
  socket.destroy();
  return received.toString('latin1');
}

describe('hardening: bytes sent before the 101', () => {
  test('fast path: a frame behind the request survives a token check that waits', async () => {
    const hub = await startHub({ tokenAuthenticator: slowAuthenticator(100) });
    const seen = await pipelined(hub.port, 'sent-early-fast', 600);
    assert.match(seen, /^HTTP\/1\.1 101 /);
    assert.ok(seen.includes('sent-early-fast'), 'the room echoed the early message');
  });

  test('node:http path: the same through attach()', async () => {
    const ws = createWshub({ tokenAuthenticator: slowAuthenticator(100), pingPeriod: 0 });
    const server = createServer();
    ws.attach(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      const seen = await pipelined(port, 'sent-early-http', 600);
      assert.match(seen, /^HTTP\/1\.1 101 /);
      assert.ok(seen.includes('sent-early-http'), 'the room echoed the early message');
    } finally {
      await ws.shutdown({ timeout: 500 });
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
