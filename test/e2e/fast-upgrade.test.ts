// Servers made by ws.createServer() take upgrades without node:http and give
// every other request to node:http with its bytes intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { createWshub, dial, messageQueue } from '../../src/index.ts';

async function start() {
  const ws = createWshub({
    allowUnauthenticated: true,
    broadcastEnabled: true,
    broadcastSecret: 'b'.repeat(32),
  });
  const server = ws.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => res.end(`${req.method} ${req.url} ${body}`));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    ws,
    async stop() {
      await ws.shutdown({ timeout: 1000 });
      server.close();
      server.closeAllConnections();
      await once(server, 'close');
    },
  };
}

/** Sends raw bytes and collects the reply until the server closes or `until` matches. */
async function raw(port: number, chunks: string[], until: RegExp): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let text = '';
  const done = new Promise<string>((resolve) => {
    socket.setEncoding('utf8').on('data', (d: string) => {
      text += d;
      if (until.test(text)) resolve(text);
    });
    socket.on('close', () => resolve(text));
  });
  for (const chunk of chunks) {
    socket.write(chunk);
    await new Promise((r) => setTimeout(r, 20));
  }
  const reply = await done;
  socket.destroy();
  return reply;
}

test('requests that are not upgrades reach node:http intact, body included and across chunks', async () => {
  const srv = await start();
  try {
    const reply = await raw(
      srv.port,
      [
        'GE',
        'T /page?x=1 HTTP/1.1\r\nHost: a\r\n',
        '\r\n',
        'POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel',
        'lo',
      ],
      /GET \/page\?x=1 [\s\S]*POST \/form hello/,
    );
    assert.match(reply, /HTTP\/1\.1 200 OK[\s\S]*GET \/page\?x=1 /);
    assert.match(reply, /POST \/form hello/);
  } finally {
    await srv.stop();
  }
});

test('an upgrade split across TCP chunks is accepted, and data right after the head is not lost', async () => {
  const srv = await start();
  try {
    const q = messageQueue();
    const conn = await dial(`ws://127.0.0.1:${srv.port}/ws?room=a`, { handlers: q.handlers });
    await conn.sendText('hello');
    assert.equal((await q.next()).text, 'hello');
    conn.close();
    await conn.closed();
  } finally {
    await srv.stop();
  }
});

test('a malformed upgrade head is answered 400 and closed', async () => {
  const srv = await start();
  try {
    const reply = await raw(srv.port, ['GET /ws HTTP/1.1\r\nBad Header Name: x\r\n\r\n'], /\}$/);
    assert.match(reply, /^HTTP\/1\.1 400 /);
  } finally {
    await srv.stop();
  }
});

test('the admin endpoint and upgrades to other paths still go through node:http', async () => {
  const srv = await start();
  try {
    const res = await fetch(`http://127.0.0.1:${srv.port}/_admin/broadcast`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${'b'.repeat(32)}` },
      body: 'hi',
    });
    assert.equal(res.status, 204);
    const other = await raw(
      srv.port,
      [
        'GET /elsewhere HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      ],
      /\}$/,
    );
    assert.match(other, /^HTTP\/1\.1 404 /);
  } finally {
    await srv.stop();
  }
});
