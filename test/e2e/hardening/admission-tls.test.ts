// The same admission bounds on an https server made by ws.createServer():
// the deadline runs from TCP accept through the TLS handshake and the head,
// and an over-cap socket is dropped (a plain-text 429 would be noise on a
// TLS connection). A self-signed certificate made by openssl; skipped
// without it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { createWshub, type WshubServer } from '../../../src/server/server.ts';
import { assertNoLeaks, closeServer, trackSockets } from '../../helpers/leaks.ts';
import { selfSignedCertificate } from '../../helpers/self-signed.ts';

const dir = mkdtempSync(join(tmpdir(), 'wshub-admission-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const material = selfSignedCertificate(dir);
const skip = typeof material === 'string' ? material : false;

const running: Array<{ ws: WshubServer; server: Server }> = [];

afterEach(async () => {
  for (const { ws, server } of running.splice(0)) {
    await ws.shutdown({ timeout: 0 });
    await closeServer(server);
  }
  await assertNoLeaks();
});

async function startTls(config: Parameters<typeof createWshub>[0]) {
  if (typeof material === 'string') throw new Error(material);
  const ws = createWshub({ allowUnauthenticated: true, pingPeriod: 0, ...config });
  const server = trackSockets(ws.createServer(undefined, { cert: material.cert, key: material.key }));
  running.push({ ws, server });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { ws, server, port: (server.address() as AddressInfo).port };
}

/** ms from `started` until `socket` closes, or rejects past `ms`. */
function closedWithin(socket: Socket, started: number, ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
    });
  });
}

describe('admission on https', { skip }, () => {
  test('a TCP connection that never starts TLS is closed at the handshake deadline', async () => {
    const { ws, port } = await startTls({ handshakeTimeout: 800 });
    const socket = tcpConnect(port, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    // Without a bound of its own, node:tls would wait 120 s for the TLS handshake.
    const elapsed = await closedWithin(socket, performance.now(), 3_000);
    assert.ok(elapsed >= 700 && elapsed <= 1_400, `closed after ${elapsed.toFixed(0)} ms, deadline 800 ms`);
    assert.equal(ws.metrics().handshakes_pending, 0);
  });

  test('a head trickled over TLS gets 408 at the deadline counted from TCP accept', async () => {
    const { ws, port } = await startTls({ handshakeTimeout: 1_000 });
    const started = performance.now();
    const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    socket.on('error', () => {});
    let text = '';
    socket.setEncoding('latin1').on('data', (d: string) => (text += d));
    await once(socket, 'secureConnect');
    const closed = closedWithin(socket, started, 3_500);
    socket.write('GET /ws?room=a HTTP/1.1\r\nX-Slow: ');
    for (let i = 0; i < 12 && socket.writable; i++) {
      await sleep(250);
      if (socket.writable) socket.write('a');
    }
    const elapsed = await closed;
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.match(text, /"code":"REQUEST_TIMEOUT"/);
    assert.ok(elapsed >= 900 && elapsed <= 1_600, `closed after ${elapsed.toFixed(0)} ms, deadline 1000 ms`);
    assert.equal(ws.metrics().handshake_timeouts, 1);
  });

  test('past the per-address cap the TCP connection is dropped before any TLS', async () => {
    const { ws, port } = await startTls({ maxPendingHandshakesPerAddress: 2 });
    const slow: Socket[] = [];
    for (let i = 0; i < 2; i++) {
      const s = tcpConnect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
      s.on('error', () => {});
      await once(s, 'connect');
      slow.push(s);
    }
    const extra = tcpConnect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    extra.on('error', () => {});
    let received = 0;
    extra.on('data', (d: Buffer) => (received += d.length));
    await once(extra, 'connect');
    await closedWithin(extra, performance.now(), 1_000);
    assert.equal(received, 0, 'nothing written in plain text');
    assert.equal(ws.metrics().handshakes_refused_per_address, 1);
    // Another address completes TLS and its upgrade.
    const ok = tlsConnect({
      socket: tcpConnect({ port, host: '127.0.0.1', localAddress: '127.0.0.3' }),
      rejectUnauthorized: false,
    });
    let reply = '';
    ok.setEncoding('latin1').on('data', (d: string) => (reply += d));
    await once(ok, 'secureConnect');
    ok.write(
      'GET /ws?room=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    const deadline = performance.now() + 2_000;
    while (!reply.includes('\r\n\r\n') && performance.now() < deadline) await sleep(5);
    assert.match(reply, /^HTTP\/1\.1 101 /);
    assert.equal(ws.metrics().handshakes_pending, 2, 'the two slow sockets; the upgraded one left');
    ok.destroy();
    for (const s of slow) s.destroy();
  });
});
