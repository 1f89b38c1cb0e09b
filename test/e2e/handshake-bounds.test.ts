// The upgrade request is bounded in time (408) and in header size (431),
// so a slow or oversized client cannot hold a socket open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createWshub } from '../../src/index.ts';

async function start(options: { handshakeTimeout?: number; maxHeaderSize?: number }) {
  const ws = createWshub({ allowUnauthenticated: true, ...options });
  const server = ws.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    async stop() {
      await ws.shutdown({ timeout: 1000 });
      server.close();
      await once(server, 'close');
    },
  };
}

/** Collects everything the server sends until it closes the connection. */
function readAll(socket: Socket): Promise<string> {
  let text = '';
  socket.setEncoding('utf8').on('data', (d: string) => (text += d));
  return new Promise((resolve) => socket.on('close', () => resolve(text)));
}

test('an upgrade request that never completes is answered 408 and closed within the bound', async () => {
  const srv = await start({ handshakeTimeout: 400 });
  try {
    const socket = connect(srv.port, '127.0.0.1');
    await once(socket, 'connect');
    const started = performance.now();
    socket.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
    const reply = await readAll(socket);
    const elapsed = performance.now() - started;
    assert.match(reply, /^HTTP\/1\.1 408 /);
    assert.ok(elapsed >= 350, `closed too early: ${elapsed} ms`);
    assert.ok(elapsed < 2500, `closed too late: ${elapsed} ms`);
  } finally {
    await srv.stop();
  }
});

test('an upgrade request with oversized headers is answered 431', async () => {
  const srv = await start({ maxHeaderSize: 4096 });
  try {
    const socket = connect(srv.port, '127.0.0.1');
    await once(socket, 'connect');
    const reply = readAll(socket);
    socket.write(
      'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `X-Padding: ${'a'.repeat(8000)}\r\n\r\n`,
    );
    assert.match(await reply, /^HTTP\/1\.1 431 /);
  } finally {
    await srv.stop();
  }
});
