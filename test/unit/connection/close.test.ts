// The close handshake from both sides, its timeouts, and the write timeout.
import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionClosedError } from '../../../src/errors.ts';
import { CloseCode } from '../../../src/protocol/close.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import { RawPeer, closeInfo, delay, serverPool, waitUntil } from './wire.ts';

const pool = serverPool();
afterEach(() => pool.cleanup());

describe('server-initiated close', () => {
  test('close(4001, "bye"): the peer gets the frame, echoes it, and TCP ends', async () => {
    const closes: Array<[number, string]> = [];
    const server = await pool.start({
      handlers: { close: (_c, code, reason) => closes.push([code, reason]) },
    });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    conn.close(4001, 'bye');
    assert.equal(conn.readyState, 'closing');
    await assert.rejects(conn.sendText('too late'), ConnectionClosedError);

    const frame = await peer.waitFor((f) => f.opcode === Opcode.CLOSE);
    assert.equal(frame.masked, false);
    assert.deepEqual(closeInfo(frame), { code: 4001, reason: 'bye' });
    await delay(30);
    assert.equal(peer.closedAt, undefined, 'the server waits for the answer before ending TCP');
    peer.sendClose(4001, 'bye');
    await peer.waitClosed();
    assert.equal(peer.gotEnd, true, 'the server ended TCP cleanly');
    assert.deepEqual(await conn.closed(), { code: 4001, reason: 'bye' });
    assert.equal(conn.readyState, 'closed');
    assert.deepEqual(closes, [[4001, 'bye']], 'the close handler runs once');
    assert.equal(peer.frames.filter((f) => f.opcode === Opcode.CLOSE).length, 1, 'one close frame only');
  });

  test('a peer that never answers the close is destroyed after closeTimeout', async () => {
    const closeTimeout = 150;
    const server = await pool.start({ connection: { closeTimeout } });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    const started = performance.now();
    conn.close(4001, 'bye');
    await peer.waitFor((f) => f.opcode === Opcode.CLOSE);
    await peer.waitClosed(2_000);
    const elapsed = peer.closedAt! - started;
    assert.ok(elapsed >= closeTimeout - 5 && elapsed < closeTimeout + 500, `TCP gone after ${elapsed} ms`);
    // No close frame came back: the code is the one we sent.
    assert.equal((await conn.closed()).code, 4001);
  });

  test('messages queued before close() are sent before the close frame', async () => {
    const server = await pool.start({ connection: { sendQueueSize: 64 } });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    peer.socket.pause();
    const payload = Buffer.alloc(16 * 1024, 2);
    for (let i = 0; i < 20; i++) await conn.sendBinary(payload);
    assert.ok(conn.queuedMessages > 0, 'some messages wait in the queue');
    conn.close(1000, 'after the data');
    peer.socket.resume();
    const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE, 5_000);
    assert.deepEqual(closeInfo(close), { code: 1000, reason: 'after the data' });
    const closeIndex = peer.frames.indexOf(close);
    assert.equal(closeIndex, 20, 'all 20 messages precede the close frame');
    assert.ok(peer.frames.slice(0, 20).every((f) => f.opcode === Opcode.BINARY && f.payload.equals(payload)));
    peer.sendClose(1000);
    await peer.waitClosed();
    assert.equal((await conn.closed()).code, 1000);
  });

  test('invalid codes and long reasons are refused', async () => {
    const server = await pool.start();
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    assert.throws(() => conn.close(1005), RangeError);
    assert.throws(() => conn.close(1000, 'x'.repeat(124)), RangeError);
    assert.ok(conn.isOpen);
    conn.close(1000, 'x'.repeat(123));
    const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE);
    assert.equal(closeInfo(close).reason.length, 123);
    peer.sendClose(1000);
    await peer.waitClosed();
    await conn.closed();
  });
});

describe('peer-initiated close', () => {
  test("the server echoes the peer's code and reason, then ends TCP", async () => {
    const closes: Array<[number, string]> = [];
    const server = await pool.start({
      handlers: { close: (_c, code, reason) => closes.push([code, reason]) },
    });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    peer.sendClose(4002, 'client bye ✓');
    const echo = await peer.waitFor((f) => f.opcode === Opcode.CLOSE);
    assert.deepEqual(closeInfo(echo), { code: 4002, reason: 'client bye ✓' });
    await peer.waitClosed();
    assert.equal(peer.gotEnd, true);
    assert.deepEqual(await conn.closed(), { code: 4002, reason: 'client bye ✓' });
    assert.deepEqual(closes, [[4002, 'client bye ✓']]);
  });

  test('an empty close is answered with an empty close and reported as 1005', async () => {
    const server = await pool.start();
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    peer.send(Opcode.CLOSE);
    const echo = await peer.waitFor((f) => f.opcode === Opcode.CLOSE);
    assert.equal(echo.payload.length, 0);
    await peer.waitClosed();
    assert.deepEqual(await conn.closed(), { code: CloseCode.NO_STATUS, reason: '' });
  });

  test('a peer close discards queued messages and refuses new sends', async () => {
    const server = await pool.start({ connection: { sendQueueSize: 64 } });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    peer.sendClose(1001, 'going away');
    await waitUntil(() => !conn.isOpen);
    await assert.rejects(conn.sendText('late'), ConnectionClosedError);
    await peer.waitClosed();
    assert.equal((await conn.closed()).code, 1001);
    assert.equal(
      peer.frames.filter((f) => f.opcode !== Opcode.CLOSE).length,
      0,
      'nothing but the close frame is sent',
    );
  });

  test('an invalid close code from the peer fails the connection with 1002', async () => {
    const server = await pool.start();
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    peer.sendClose(1005);
    const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE);
    assert.equal(closeInfo(close).code, CloseCode.PROTOCOL_ERROR);
    await peer.waitClosed();
    assert.equal((await conn.closed()).code, CloseCode.PROTOCOL_ERROR);
  });

  test('closed() resolves 1006 when TCP drops without a close frame', async () => {
    const server = await pool.start();
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    peer.socket.destroy();
    assert.deepEqual(await conn.closed(), { code: CloseCode.ABNORMAL, reason: '' });
    // closed() after the fact resolves at once with the same result.
    assert.deepEqual(await conn.closed(), { code: CloseCode.ABNORMAL, reason: '' });
  });
});

describe('writeTimeout', () => {
  test('a peer that stops reading while the server keeps sending is destroyed after ~writeTimeout', async () => {
    const writeTimeout = 200;
    const errors: string[] = [];
    const server = await pool.start({
      connection: { writeTimeout, sendBehavior: 'drop', sendQueueSize: 8 },
      handlers: { error: (_c, error) => errors.push(error.message) },
    });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    peer.socket.pause();
    let lastDrain = performance.now();
    conn.socket.on('drain', () => (lastDrain = performance.now()));
    const payload = Buffer.alloc(64 * 1024);
    const started = performance.now();
    while (conn.isOpen && performance.now() - started < 5_000) {
      conn.sendBinary(payload).catch(() => {});
      await new Promise((resolve) => setImmediate(resolve));
    }
    await conn.closed();
    const closedAt = performance.now();
    const stalledFor = closedAt - lastDrain;
    // The stall starts at the first write refused after the last drain; the sweep ticks every writeTimeout/4.
    assert.ok(
      stalledFor >= writeTimeout && stalledFor <= writeTimeout + writeTimeout / 2 + 300,
      `destroyed ${stalledFor.toFixed(1)} ms after the last drain`,
    );
    assert.ok(
      errors.some((m) => m.includes('write timed out')),
      errors.join('; '),
    );
    peer.socket.destroy();
    await peer.waitClosed();
  });

  test('a slow but reading peer is not cut off', async () => {
    const writeTimeout = 100;
    const server = await pool.start({
      connection: { writeTimeout, sendBehavior: 'block', sendTimeout: 2_000 },
    });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    // Read in short bursts with pauses shorter than writeTimeout.
    let reading = true;
    const reader = setInterval(() => {
      peer.socket.resume();
      setTimeout(() => reading && peer.socket.pause(), 5);
    }, 40);
    try {
      const payload = Buffer.alloc(64 * 1024);
      for (let i = 0; i < 200; i++) await conn.sendBinary(payload);
      assert.ok(conn.isOpen);
    } finally {
      reading = false;
      clearInterval(reader);
    }
    peer.socket.resume();
    await waitUntil(() => peer.frames.length >= 200, 5_000);
    conn.close(1000);
    await peer.waitFor((f) => f.opcode === Opcode.CLOSE);
    peer.sendClose(1000);
    await peer.waitClosed();
    assert.equal((await conn.closed()).code, 1000);
  });
});
