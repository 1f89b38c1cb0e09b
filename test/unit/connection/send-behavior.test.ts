// The three send behaviours against a peer that stops reading: a raw client
// that pauses its socket, so the server's socket buffer and then its send
// queue fill up.
import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { SLOW_CONSUMER_CLOSE_CODE, type Connection } from '../../../src/connection/connection.ts';
import { ConnectionClosedError, QueueFullError, SendTimeoutError } from '../../../src/errors.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import { RawPeer, closeInfo, delay, serverPool, waitUntil } from './wire.ts';

const pool = serverPool();
afterEach(() => pool.cleanup());

const KiB = 1024;

/** Binary frames the peer has received so far. */
function binaryFrames(peer: RawPeer): number {
  return peer.frames.filter((f) => f.opcode === Opcode.BINARY).length;
}

/** Starts a server with `options`, connects a raw peer and stops it reading. */
async function stalledPair(
  options: Parameters<typeof pool.start>[0] & object,
): Promise<{ conn: Connection; peer: RawPeer }> {
  const server = await pool.start(options);
  const peer = await RawPeer.connect(server.port);
  const conn = await server.nextConnection();
  peer.socket.pause();
  return { conn, peer };
}

/** Closes normally from the server and waits until both ends are gone. */
async function closeBoth(conn: Connection, peer: RawPeer): Promise<void> {
  peer.socket.resume();
  conn.close(1000);
  const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE, 5_000);
  peer.sendClose(closeInfo(close).code ?? 1000);
  await peer.waitClosed(5_000);
  await conn.closed();
}

describe('sendBehavior "drop"', () => {
  test('sends beyond the queue capacity reject with QueueFullError and are counted exactly', async () => {
    const { conn, peer } = await stalledPair({
      connection: { sendBehavior: 'drop', sendQueueSize: 8, sendQueueBytes: 1024 * KiB },
    });
    const payload = Buffer.alloc(16 * KiB, 3);
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => conn.sendBinary(payload)));
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const rejected = results.filter((r) => r.status === 'rejected');
    for (const r of rejected) assert.ok(r.reason instanceof QueueFullError, String(r.reason));
    // One frame goes to the socket (its buffer is then full), eight wait in the queue.
    assert.equal(ok, 9);
    assert.equal(rejected.length, 11);
    assert.equal(conn.dropped, 11);
    assert.equal(conn.queuedMessages, 8);
    assert.ok(conn.isOpen);

    peer.socket.resume();
    await waitUntil(() => binaryFrames(peer) >= ok, 5_000, 'the queued frames');
    await delay(20);
    assert.equal(binaryFrames(peer), ok, 'exactly the accepted messages arrive');
    await closeBoth(conn, peer);
  });

  test('memory stays bounded over 10,000 sends of 16 KiB to a stalled peer', async () => {
    const sendQueueBytes = 64 * KiB;
    const { conn, peer } = await stalledPair({
      connection: { sendBehavior: 'drop', sendQueueSize: 8, sendQueueBytes, writeTimeout: 0 },
    });
    const payload = Buffer.alloc(16 * KiB, 5);
    const bound = sendQueueBytes + conn.socket.writableHighWaterMark + payload.length + 64;
    let ok = 0;
    let full = 0;
    let maxBuffered = 0;
    for (let i = 0; i < 10_000; i++) {
      conn.sendBinary(payload).then(
        () => ok++,
        (error: unknown) => {
          assert.ok(error instanceof QueueFullError);
          full++;
        },
      );
      maxBuffered = Math.max(maxBuffered, conn.bufferedBytes);
      assert.ok(conn.queuedMessages <= 8);
      // Yield now and then so the socket can drain into the kernel until that is full too.
      if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(ok + full, 10_000);
    assert.equal(conn.dropped, full);
    assert.ok(full > 0, 'a stalled peer must cause drops');
    assert.ok(maxBuffered <= bound, `buffered ${maxBuffered} bytes, bound ${bound}`);

    peer.socket.resume();
    await waitUntil(() => binaryFrames(peer) >= ok, 10_000, 'every accepted frame');
    await delay(20);
    assert.equal(binaryFrames(peer), ok);
    await closeBoth(conn, peer);
  });
});

describe('sendBehavior "block"', () => {
  test('a send waits for room, times out with SendTimeoutError, and succeeds once the peer reads', async () => {
    const sendTimeout = 300;
    const { conn, peer } = await stalledPair({
      connection: { sendBehavior: 'block', sendQueueSize: 8, sendQueueBytes: 1024 * KiB, sendTimeout },
    });
    const payload = Buffer.alloc(64 * KiB, 9);

    // Fill the kernel buffers and the queue until a send finds no room in time.
    let ok = 0;
    let timedOut: unknown;
    let waited = 0;
    for (let i = 0; i < 5_000 && timedOut === undefined; i++) {
      const started = performance.now();
      try {
        await conn.sendBinary(payload);
        ok++;
      } catch (error) {
        timedOut = error;
        waited = performance.now() - started;
      }
    }
    assert.ok(timedOut instanceof SendTimeoutError, `expected SendTimeoutError, got ${String(timedOut)}`);
    assert.ok(waited >= sendTimeout - 5 && waited < sendTimeout + 1_000, `gave up after ${waited} ms`);
    assert.equal(conn.dropped, 1, 'the timed-out send is counted as dropped');
    assert.equal(conn.queuedMessages, 8);
    assert.ok(conn.isOpen);

    // A send now has to wait; it completes when the peer reads again.
    let settled = false;
    const pending = conn.sendBinary(payload).finally(() => (settled = true));
    await delay(50);
    assert.equal(settled, false, 'the send waits while the peer does not read');
    peer.socket.resume();
    await pending;
    ok++;

    await waitUntil(() => binaryFrames(peer) >= ok, 10_000, 'every sent frame');
    await delay(20);
    assert.equal(binaryFrames(peer), ok, 'sent_ok equals received');
    await closeBoth(conn, peer);
  });

  test('waiting sends keep their order and are rejected when the connection closes', async () => {
    const { conn, peer } = await stalledPair({
      connection: { sendBehavior: 'block', sendQueueSize: 2, sendTimeout: 5_000 },
    });
    const payload = Buffer.alloc(16 * KiB);
    // 1 to the socket, 2 queued, then 2 waiting.
    const sends = Array.from({ length: 5 }, () => conn.sendBinary(payload));
    const results = Promise.allSettled(sends);
    conn.terminate();
    const settled = await results;
    assert.deepEqual(
      settled.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected'],
    );
    for (const r of settled.slice(3)) {
      assert.ok(r.status === 'rejected' && r.reason instanceof ConnectionClosedError);
    }
    await conn.closed();
    peer.socket.resume();
    await peer.waitClosed(5_000);
  });
});

describe('sendBehavior "close"', () => {
  const options = {
    connection: {
      sendBehavior: 'close' as const,
      sendQueueSize: 8,
      sendQueueBytes: 1024 * KiB,
      closeTimeout: 2_000,
    },
  };

  /**
   * Sends 20 frames of 16 KiB in one tick. Returns how many sends resolved,
   * and how many were made while the connection was still open.
   */
  async function overflow(conn: Connection): Promise<{ ok: number; whileOpen: number }> {
    const payload = Buffer.alloc(16 * KiB, 1);
    let whileOpen = 0;
    const sends: Array<Promise<void>> = [];
    for (let i = 0; i < 20; i++) {
      if (conn.isOpen) whileOpen++;
      sends.push(conn.sendBinary(payload));
    }
    const results = await Promise.allSettled(sends);
    let ok = 0;
    for (const r of results) {
      if (r.status === 'fulfilled') ok++;
      else {
        assert.ok(
          r.reason instanceof ConnectionClosedError || r.reason instanceof QueueFullError,
          String(r.reason),
        );
      }
    }
    return { ok, whileOpen };
  }

  test('a full queue closes the connection with 1008; every attempt is delivered, dropped or refused', async () => {
    const { conn, peer } = await stalledPair(options);
    const { ok, whileOpen } = await overflow(conn);
    assert.equal(conn.readyState, 'closing');
    assert.ok(whileOpen < 20 && ok < 20, 'sends after the overflow are refused');

    peer.socket.resume();
    const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE, 5_000);
    assert.equal(closeInfo(close).code, SLOW_CONSUMER_CLOSE_CODE);
    const received = binaryFrames(peer);
    assert.equal(peer.frames.at(-1), close, 'nothing follows the close frame');
    peer.sendClose(SLOW_CONSUMER_CLOSE_CODE);
    await peer.waitClosed(5_000);
    const info = await conn.closed();
    assert.equal(info.code, SLOW_CONSUMER_CLOSE_CODE);
    // Each send made while the connection was open is either received or counted in `dropped`.
    assert.equal(
      received + conn.dropped,
      whileOpen,
      `ok=${ok} whileOpen=${whileOpen} received=${received} dropped=${conn.dropped}`,
    );
  });

  test('every send that resolved before the overflow is delivered before the 1008 close frame', async () => {
    const { conn, peer } = await stalledPair(options);
    const { ok } = await overflow(conn);
    peer.socket.resume();
    const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE, 5_000);
    assert.equal(closeInfo(close).code, SLOW_CONSUMER_CLOSE_CODE);
    const received = binaryFrames(peer);
    peer.sendClose(SLOW_CONSUMER_CLOSE_CODE);
    await peer.waitClosed(5_000);
    await conn.closed();
    assert.equal(received, ok, `sends resolved: ${ok}, frames received before the close: ${received}`);
  });

  test('a peer that never reads again is disconnected after closeTimeout', async () => {
    const closeTimeout = 200;
    const { conn, peer } = await stalledPair({ connection: { ...options.connection, closeTimeout } });
    const started = performance.now();
    await overflow(conn);
    const info = await conn.closed();
    const elapsed = performance.now() - started;
    assert.equal(info.code, SLOW_CONSUMER_CLOSE_CODE);
    assert.ok(elapsed >= closeTimeout - 5 && elapsed < closeTimeout + 1_000, `closed after ${elapsed} ms`);
    peer.socket.destroy();
    await peer.waitClosed();
  });
});
