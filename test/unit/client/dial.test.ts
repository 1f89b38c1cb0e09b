import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEchoServer } from '../../../src/cli/echo.ts';
import { dial, DialError, MessageQueue, ReceiveTimeoutError } from '../../../src/client/index.ts';
import { ConnectionClosedError } from '../../../src/errors.ts';
import { CloseCode } from '../../../src/protocol/close.ts';
import { Opcode, encodeFrame, randomMask } from '../../../src/protocol/frame.ts';
import { assertNoLeaks, closeServer, trackSockets } from '../../helpers/leaks.ts';
import { closeBody, closeInfo, startRawServer, switchingProtocols } from '../connection/wire.ts';

/** Servers a test started; stopped (after the leak check) when it ends. */
const servers: Array<Server | NetServer> = [];

async function echoServer(): Promise<string> {
  const { server } = createEchoServer();
  servers.push(trackSockets(server));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(typeof address === 'object' && address !== null);
  return `ws://127.0.0.1:${address.port}/echo`;
}

async function rawServer(respond: Parameters<typeof startRawServer>[0]) {
  const raw = await startRawServer(respond);
  servers.push(raw.server);
  return raw;
}

afterEach(async () => {
  try {
    for (const server of servers) await assertNoLeaks(server);
    await assertNoLeaks();
  } finally {
    for (const server of servers.splice(0)) await closeServer(server);
  }
});

/** Rejection of `promise` as a DialError (fails if it resolves or rejects with anything else). */
async function dialError(promise: Promise<unknown>): Promise<DialError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof DialError, `expected DialError, got ${String(error)}`);
    return error;
  }
  assert.fail('dial resolved');
}

describe('dial() against the echo server', () => {
  test('echoes text, binary and JSON, and closes cleanly', async () => {
    const url = await echoServer();
    const queue = new MessageQueue();
    const conn = await dial(url, { handlers: queue.handlers });
    assert.equal(conn.role, 'client');
    assert.equal(conn.protocol, undefined);

    await conn.sendText('grüße ✓');
    const text = await queue.next(2000);
    assert.equal(text.binary, false);
    assert.equal(text.text, 'grüße ✓');

    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    await conn.sendBinary(bytes);
    const binary = await queue.next(2000);
    assert.equal(binary.binary, true);
    assert.deepEqual(binary.data, bytes);

    const big = Buffer.alloc(200_000, 7);
    await conn.sendBinary(big);
    assert.deepEqual((await queue.next(2000)).data, big);

    await conn.sendJSON({ a: 1, b: ['x'] });
    assert.deepEqual(JSON.parse((await queue.next(2000)).text), { a: 1, b: ['x'] });

    conn.close(1000, 'done');
    assert.deepEqual(await conn.closed(), { code: 1000, reason: 'done' });
    assert.deepEqual(queue.closed, { code: 1000, reason: 'done' });
    await assert.rejects(queue.next(100), ConnectionClosedError);
  });

  test('accepts http: URLs and URL objects', async () => {
    const url = new URL((await echoServer()).replace('ws:', 'http:'));
    const queue = new MessageQueue();
    const conn = await dial(url, { handlers: queue.handlers });
    await conn.sendText('over http:');
    assert.equal((await queue.next(2000)).text, 'over http:');
    conn.close();
    await conn.closed();
  });

  test('negotiates a subprotocol: the server picks the first one offered', async () => {
    const url = await echoServer();
    const conn = await dial(url, { protocols: ['chat.v2', 'chat.v1'] });
    assert.equal(conn.protocol, 'chat.v2');
    conn.close();
    await conn.closed();
  });

  test('a rejected upgrade yields DialError with the status and JSON body', async () => {
    const url = await echoServer();
    const error = await dialError(dial(url, { headers: { 'Sec-WebSocket-Version': '8' } }));
    assert.equal(error.code, 'HANDSHAKE_REJECTED');
    assert.equal(error.status, 400);
    assert.ok(error.body !== undefined);
    const body = JSON.parse(error.body) as { error: { code: string; category: string } };
    assert.equal(body.error.code, 'WEBSOCKET_BAD_VERSION');
    assert.equal(body.error.category, 'validation');
    assert.equal(error.headers?.['sec-websocket-version'], '13');
  });

  test('a malformed key given through headers is rejected by the server with its code', async () => {
    const url = await echoServer();
    const error = await dialError(dial(url, { headers: { 'sec-websocket-key': 'short' } }));
    assert.equal(error.status, 400);
    assert.equal(
      (JSON.parse(error.body ?? '') as { error: { code: string } }).error.code,
      'WEBSOCKET_KEY_INVALID',
    );
  });
});

describe('dial() input checks', () => {
  test('rejects schemes other than ws, wss, http and https', async () => {
    for (const url of ['ftp://127.0.0.1/', 'file:///tmp/x', 'mailto:a@b.c']) {
      const error = await dialError(dial(url));
      assert.equal(error.code, 'BAD_URL', url);
    }
    assert.equal((await dialError(dial('not a url'))).code, 'BAD_URL');
    assert.equal((await dialError(dial('ws://127.0.0.1/#frag'))).code, 'BAD_URL');
  });

  test('rejects header injection and invalid subprotocols before connecting', async () => {
    assert.equal(
      (await dialError(dial('ws://127.0.0.1:1/', { headers: { 'X-A': 'a\r\nX-B: b' } }))).code,
      'BAD_HEADER',
    );
    assert.equal(
      (await dialError(dial('ws://127.0.0.1:1/', { headers: { 'Bad Name': 'x' } }))).code,
      'BAD_HEADER',
    );
    assert.equal((await dialError(dial('ws://127.0.0.1:1/', { protocols: ['a b'] }))).code, 'BAD_HEADER');
  });

  test('a refused TCP connection yields DIAL_FAILED', async () => {
    // Bind then close a server to get a port nobody listens on.
    const probe = createNetServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const address = probe.address();
    assert.ok(typeof address === 'object' && address !== null);
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const error = await dialError(dial(`ws://127.0.0.1:${address.port}/`));
    assert.equal(error.code, 'DIAL_FAILED');
  });
});

describe('dial() against misbehaving servers', () => {
  test('sends a well-formed upgrade request', async () => {
    const raw = await rawServer((r) => r.socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'));
    const error = await dialError(
      dial(`ws://127.0.0.1:${raw.port}/room/a?x=1`, {
        protocols: ['p1', 'p2'],
        headers: { 'X-Test': 'yes' },
      }),
    );
    assert.equal(error.status, 404);
    assert.equal(error.body, '');
    const [request] = raw.requests;
    assert.ok(request !== undefined);
    assert.equal(request.requestLine, 'GET /room/a?x=1 HTTP/1.1');
    assert.equal(request.headers.host, `127.0.0.1:${raw.port}`);
    assert.equal(request.headers.upgrade, 'websocket');
    assert.equal(request.headers.connection, 'Upgrade');
    assert.equal(request.headers['sec-websocket-version'], '13');
    assert.equal(request.headers['sec-websocket-protocol'], 'p1, p2');
    assert.equal(request.headers['x-test'], 'yes');
    const key = request.headers['sec-websocket-key'] ?? '';
    assert.equal(Buffer.from(key, 'base64').length, 16);
    assert.equal(Buffer.from(key, 'base64').toString('base64'), key);
  });

  test('uses a fresh key for every dial', async () => {
    const raw = await rawServer((r) => r.socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno'));
    for (let i = 0; i < 3; i++) {
      const error = await dialError(dial(`ws://127.0.0.1:${raw.port}/`));
      assert.equal(error.body, 'no');
    }
    const keys = new Set(raw.requests.map((r) => r.headers['sec-websocket-key']));
    assert.equal(keys.size, 3);
  });

  test('reads a rejection body without Content-Length until the server closes', async () => {
    const raw = await rawServer((r) => {
      r.socket.write('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\npart one, ');
      setTimeout(() => r.socket.end('part two'), 20);
    });
    const error = await dialError(dial(`ws://127.0.0.1:${raw.port}/`));
    assert.equal(error.status, 503);
    assert.equal(error.body, 'part one, part two');
  });

  test('a wrong Sec-WebSocket-Accept fails with BAD_ACCEPT', async () => {
    const raw = await rawServer((r) =>
      r.socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          // The accept value of some other key.
          'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n',
      ),
    );
    const error = await dialError(dial(`ws://127.0.0.1:${raw.port}/`));
    assert.equal(error.code, 'BAD_ACCEPT');
  });

  test('missing Upgrade or Connection tokens fail with BAD_UPGRADE', async () => {
    const raw = await rawServer((r) =>
      r.socket.write(switchingProtocols(r).replace('Upgrade: websocket\r\n', 'Upgrade: h2c\r\n')),
    );
    assert.equal((await dialError(dial(`ws://127.0.0.1:${raw.port}/`))).code, 'BAD_UPGRADE');
    const raw2 = await rawServer((r) =>
      r.socket.write(switchingProtocols(r).replace('Connection: Upgrade\r\n', 'Connection: keep-alive\r\n')),
    );
    assert.equal((await dialError(dial(`ws://127.0.0.1:${raw2.port}/`))).code, 'BAD_UPGRADE');
  });

  test('accepts token lists and any letter case in Upgrade/Connection', async () => {
    const raw = await rawServer((r) =>
      r.socket.write(
        switchingProtocols(r)
          .replace('Upgrade: websocket', 'upgrade: WebSocket')
          .replace('Connection: Upgrade', 'connection: keep-alive, UPGRADE'),
      ),
    );
    const conn = await dial(`ws://127.0.0.1:${raw.port}/`);
    conn.terminate();
    await conn.closed();
  });

  test('a subprotocol the client did not offer is refused', async () => {
    const raw = await rawServer((r) =>
      r.socket.write(switchingProtocols(r, { 'Sec-WebSocket-Protocol': 'other' })),
    );
    const error = await dialError(dial(`ws://127.0.0.1:${raw.port}/`, { protocols: ['chat'] }));
    assert.equal(error.code, 'BAD_PROTOCOL');
    const none = await dialError(dial(`ws://127.0.0.1:${raw.port}/`));
    assert.equal(none.code, 'BAD_PROTOCOL');
  });

  test('an extension the client did not offer is refused', async () => {
    const raw = await rawServer((r) =>
      r.socket.write(switchingProtocols(r, { 'Sec-WebSocket-Extensions': 'permessage-deflate' })),
    );
    assert.equal((await dialError(dial(`ws://127.0.0.1:${raw.port}/`))).code, 'BAD_EXTENSION');
  });

  test('frames sent right behind the 101 are delivered', async () => {
    const raw = await rawServer((r) =>
      r.socket.write(
        Buffer.concat([
          Buffer.from(switchingProtocols(r)),
          encodeFrame(Opcode.TEXT, Buffer.from('first')),
          encodeFrame(Opcode.BINARY, Buffer.from([9, 8])),
        ]),
      ),
    );
    const queue = new MessageQueue();
    const conn = await dial(`ws://127.0.0.1:${raw.port}/`, { handlers: queue.handlers });
    assert.equal((await queue.next(1000)).text, 'first');
    assert.deepEqual((await queue.next(1000)).data, Buffer.from([9, 8]));
    conn.terminate();
    await conn.closed();
  });

  test('a masked server frame fails the connection with 1002', async () => {
    const raw = await rawServer((r) =>
      r.socket.write(
        Buffer.concat([
          Buffer.from(switchingProtocols(r)),
          encodeFrame(Opcode.TEXT, Buffer.from('masked!'), { mask: randomMask() }),
        ]),
      ),
    );
    const errors: Error[] = [];
    const queue = new MessageQueue({ error: (_conn, error) => errors.push(error) });
    const conn = await dial(`ws://127.0.0.1:${raw.port}/`, { handlers: queue.handlers });
    const closed = await conn.closed();
    assert.equal(closed.code, CloseCode.PROTOCOL_ERROR);
    assert.equal(queue.size, 0, 'the masked message must not be delivered');
    assert.ok(errors.length >= 1);
    const frames = raw.requests[0]!.reader.frames;
    const close = frames.find((f) => f.opcode === Opcode.CLOSE);
    assert.ok(close !== undefined, 'the client sends a close frame');
    assert.equal(close.masked, true);
    assert.equal(closeInfo(close).code, CloseCode.PROTOCOL_ERROR);
  });

  test('handshake timeout against a server that never answers', async () => {
    const raw = await rawServer(() => {});
    const started = performance.now();
    const error = await dialError(dial(`ws://127.0.0.1:${raw.port}/`, { timeoutMs: 150 }));
    const elapsed = performance.now() - started;
    assert.equal(error.code, 'HANDSHAKE_TIMEOUT');
    assert.ok(elapsed >= 140 && elapsed < 1000, `timed out after ${elapsed} ms`);
  });

  test('a half-sent response head still times out', async () => {
    const raw = await rawServer((r) => r.socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgr'));
    const error = await dialError(dial(`ws://127.0.0.1:${raw.port}/`, { timeoutMs: 100 }));
    assert.equal(error.code, 'HANDSHAKE_TIMEOUT');
  });

  test('an AbortSignal cancels the handshake', async () => {
    const raw = await rawServer(() => {});
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const started = performance.now();
    const error = await dialError(dial(`ws://127.0.0.1:${raw.port}/`, { signal: controller.signal }));
    assert.equal(error.code, 'ABORTED');
    assert.ok(performance.now() - started < 1000);
    assert.equal(
      (await dialError(dial(`ws://127.0.0.1:${raw.port}/`, { signal: AbortSignal.abort() }))).code,
      'ABORTED',
    );
  });

  test('a server that closes during the handshake yields BAD_RESPONSE', async () => {
    const raw = await rawServer((r) => r.socket.end());
    assert.equal((await dialError(dial(`ws://127.0.0.1:${raw.port}/`))).code, 'BAD_RESPONSE');
    const garbage = await rawServer((r) => r.socket.write('SSH-2.0-OpenSSH\r\n\r\n'));
    assert.equal((await dialError(dial(`ws://127.0.0.1:${garbage.port}/`))).code, 'BAD_RESPONSE');
  });

  test('an oversized response head is refused', async () => {
    const raw = await rawServer((r) => r.socket.write(`HTTP/1.1 101 OK\r\nX-Big: ${'a'.repeat(20_000)}`));
    assert.equal((await dialError(dial(`ws://127.0.0.1:${raw.port}/`))).code, 'BAD_RESPONSE');
  });
});

describe('client masking', () => {
  test('every client frame is masked, each with its own key', async () => {
    const raw = await rawServer((r) => r.socket.write(switchingProtocols(r)));
    const conn = await dial(`ws://127.0.0.1:${raw.port}/`, { connection: { fragmentSize: 100 } });
    const request = raw.requests[0]!;
    await conn.sendText('hello');
    await conn.sendBinary(Buffer.alloc(70_000, 1));
    await conn.sendText('x'.repeat(250)); // three fragments of at most 100 bytes
    conn.ping(Buffer.from('p'));
    conn.close(4000, 'bye');
    const deadline = performance.now() + 2000;
    while (!request.reader.frames.some((f) => f.opcode === Opcode.CLOSE) && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const frames = request.reader.frames;
    // hello, 700 binary fragments, 3 text fragments, ping, close
    assert.equal(frames.length, 1 + 700 + 3 + 1 + 1);
    assert.ok(
      frames.every((f) => f.masked),
      'all frames masked',
    );
    const keys = new Set(frames.map((f) => f.mask!.toString('hex')));
    // 706 random 32-bit keys: a repeat would mean the key is not fresh per frame.
    assert.equal(keys.size, frames.length);
    assert.equal(frames[0]!.payload.toString(), 'hello');
    // A ping may overtake queued messages (control frames go ahead of the queue).
    const pings = frames.filter((f) => f.opcode === Opcode.PING);
    assert.equal(pings.length, 1);
    assert.equal(pings[0]!.payload.toString(), 'p');
    const data = frames.filter((f) => f.opcode !== Opcode.PING);
    const binary = Buffer.concat(data.slice(1, 701).map((f) => f.payload));
    assert.deepEqual(binary, Buffer.alloc(70_000, 1));
    assert.deepEqual(
      data.slice(701, 704).map((f) => [f.opcode, f.fin, f.payload.length]),
      [
        [Opcode.TEXT, false, 100],
        [Opcode.CONTINUATION, false, 100],
        [Opcode.CONTINUATION, true, 50],
      ],
    );
    assert.equal(frames.at(-1)!.opcode, Opcode.CLOSE, 'the close frame comes last');
    assert.deepEqual(closeInfo(frames.at(-1)!), { code: 4000, reason: 'bye' });
    // The server answers the close; the client then sees TCP end.
    request.socket.end(encodeFrame(Opcode.CLOSE, closeBody(4000, 'bye')));
    assert.deepEqual(await conn.closed(), { code: 4000, reason: 'bye' });
  });

  test('the client answers pings with masked pongs carrying the payload', async () => {
    const raw = await rawServer((r) =>
      r.socket.write(
        Buffer.concat([
          Buffer.from(switchingProtocols(r)),
          encodeFrame(Opcode.PING, Buffer.from('are you there')),
        ]),
      ),
    );
    const conn = await dial(`ws://127.0.0.1:${raw.port}/`);
    const request = raw.requests[0]!;
    const deadline = performance.now() + 2000;
    while (request.reader.frames.length === 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const pong = request.reader.frames[0];
    assert.ok(pong !== undefined);
    assert.equal(pong.opcode, Opcode.PONG);
    assert.equal(pong.masked, true);
    assert.equal(pong.payload.toString(), 'are you there');
    conn.terminate();
    await conn.closed();
  });
});

describe('client heartbeat', () => {
  test('pings are off by default; with pingPeriod set, a silent server is dropped after pongWait', async () => {
    const raw = await rawServer((r) => r.socket.write(switchingProtocols(r)));
    const quiet = await dial(`ws://127.0.0.1:${raw.port}/`);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(raw.requests[0]!.reader.frames.length, 0, 'no ping without pingPeriod');
    quiet.terminate();
    await quiet.closed();

    const started = performance.now();
    const conn = await dial(`ws://127.0.0.1:${raw.port}/`, { connection: { pingPeriod: 40, pongWait: 80 } });
    const info = await conn.closed();
    const elapsed = performance.now() - started;
    assert.equal(info.code, CloseCode.ABNORMAL);
    assert.ok(elapsed >= 110 && elapsed < 600, `dropped after ${elapsed} ms`);
    const pings = raw.requests[1]!.reader.frames.filter((f) => f.opcode === Opcode.PING);
    assert.equal(pings.length, 1);
    assert.equal(pings[0]!.masked, true);
  });

  test('a client with pings stays connected to a server that answers them', async () => {
    const url = await echoServer();
    const queue = new MessageQueue();
    const conn = await dial(url, { connection: { pingPeriod: 30, pongWait: 60 }, handlers: queue.handlers });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(conn.isOpen);
    await conn.sendText('still here');
    assert.equal((await queue.next(1000)).text, 'still here');
    conn.close(1000);
    assert.equal((await conn.closed()).code, 1000);
  });
});

describe('MessageQueue', () => {
  test('next() times out, and iteration ends when the connection closes', async () => {
    const url = await echoServer();
    const queue = new MessageQueue();
    const conn = await dial(url, { handlers: queue.handlers });
    await assert.rejects(queue.next(30), ReceiveTimeoutError);
    for (const n of [1, 2, 3]) await conn.sendText(`m${n}`);
    const got: string[] = [];
    for await (const message of queue) {
      got.push(message.text);
      if (got.length === 3) conn.close(1000);
    }
    assert.deepEqual(got, ['m1', 'm2', 'm3']);
    assert.equal(queue.closed?.code, 1000);
  });

  test('forwards events to the wrapped handlers', async () => {
    const url = await echoServer();
    const seen: string[] = [];
    const queue = new MessageQueue({
      message: (_c, data) => void seen.push(`message:${data.toString()}`),
      close: (_c, code) => void seen.push(`close:${code}`),
    });
    const conn = await dial(url, { handlers: queue.handlers });
    await conn.sendText('hi');
    assert.equal((await queue.next(1000)).text, 'hi');
    conn.close(4005);
    await conn.closed();
    assert.deepEqual(seen, ['message:hi', 'close:4005']);
  });
});

describe('wss:', () => {
  let dir: string | undefined;
  let tlsServer: TlsServer | undefined;
  afterEach(async () => {
    if (tlsServer !== undefined) await closeServer(tlsServer);
    tlsServer = undefined;
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  test('dials over TLS and verifies the certificate', async (t) => {
    dir = mkdtempSync(join(tmpdir(), 'wshub-dial-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=DNS:localhost,IP:127.0.0.1',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
    } catch {
      t.skip('openssl is not available');
      return;
    }
    const cert = readFileSync(join(dir, 'cert.pem'));
    const key = readFileSync(join(dir, 'key.pem'));
    // A TLS front that hands every decrypted connection to the echo server.
    const { server: echo } = createEchoServer();
    const tls = trackSockets(createTlsServer({ cert, key }, (socket) => echo.emit('connection', socket)));
    tlsServer = tls;
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    const address = tls.address();
    assert.ok(typeof address === 'object' && address !== null);

    const untrusted = await dialError(dial(`wss://127.0.0.1:${address.port}/`, { timeoutMs: 2000 }));
    assert.equal(untrusted.code, 'DIAL_FAILED');

    const queue = new MessageQueue();
    const conn = await dial(`wss://localhost:${address.port}/`, {
      tls: { ca: cert, host: '127.0.0.1' },
      handlers: queue.handlers,
    });
    await conn.sendText('secure ✓');
    assert.equal((await queue.next(2000)).text, 'secure ✓');
    conn.close(1000);
    assert.equal((await conn.closed()).code, 1000);
    await assertNoLeaks(tls);
  });
});
