// What a peer can make one connection hold: frames per message, pongs owed
// to a peer that does not read, and bytes waiting to go out. Each test uses
// a raw client over loopback, a bounded number of frames and a few seconds.
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection } from '../../../src/connection/connection.ts';
import { CloseCode } from '../../../src/protocol/close.ts';
import { Opcode, encodeFrame, randomMask } from '../../../src/protocol/frame.ts';
import { ResourceGuard } from '../../../src/connection/resource-guard.ts';
import { RawPeer, closeInfo, delay, serverPool, waitUntil } from './wire.ts';

const pool = serverPool();
afterEach(() => pool.cleanup());

const KiB = 1024;

/** A masked client frame with an explicit FIN bit. */
function clientFrame(opcode: number, payload: Uint8Array | string, fin = true): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return encodeFrame(opcode, bytes, { fin, mask: randomMask() });
}

/**
 * Writes binary frames straight into the server socket until it holds
 * `bytes` that the stalled peer has not read, so the connection is backed up.
 */
async function backUp(conn: Connection, bytes: number): Promise<void> {
  const frame = encodeFrame(Opcode.BINARY, Buffer.alloc(256 * KiB, 7));
  for (let i = 0; i < 256 && conn.socket.writableLength < bytes; i++) {
    conn.socket.write(frame);
    await delay(1);
  }
  assert.ok(conn.socket.writableLength >= bytes, `socket holds ${conn.socket.writableLength} bytes`);
  assert.ok(conn.socket.writableNeedDrain, 'the socket is backed up');
}

/** Resolves with conn.closed() or rejects after `ms`. */
async function closedWithin(conn: Connection, ms: number): Promise<{ code: number; reason: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      conn.closed(),
      new Promise<never>((_, fail) => {
        timer = setTimeout(() => fail(new Error(`connection still open after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('frames per message', () => {
  test('20,000 one-byte fragments over a socket: closed with 1009 at the cap', async () => {
    const guard = new ResourceGuard(0);
    const messages: Buffer[] = [];
    const server = await pool.start({
      connection: { maxFragments: 1000, guard },
      handlers: { message: (_conn, data) => void messages.push(data) },
    });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    const frames: Buffer[] = [clientFrame(Opcode.BINARY, Buffer.from([1]), false)];
    for (let i = 1; i < 20_000; i++)
      frames.push(clientFrame(Opcode.CONTINUATION, Buffer.from([1]), i === 19_999));
    peer.socket.write(Buffer.concat(frames));
    const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE, 3_000);
    assert.equal(closeInfo(close).code, CloseCode.MESSAGE_TOO_BIG);
    assert.equal(messages.length, 0, 'the message was never delivered');
    assert.equal(guard.fragmentLimitCloses, 1);
    await peer.waitClosed(3_000);
    assert.equal((await conn.closed()).code, CloseCode.MESSAGE_TOO_BIG);
    assert.equal(guard.partialBytes, 0, 'the partial message was released');
  });
});

describe('pings', () => {
  test('pings while the socket is backed up get one pong, with the latest payload, after drain', async () => {
    const received: string[] = [];
    const server = await pool.start({
      connection: { writeTimeout: 0 },
      handlers: { message: (_conn, data) => void received.push(data.toString()) },
    });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    peer.socket.pause();
    await backUp(conn, 512 * KiB);
    for (let i = 0; i < 50; i++) peer.send(Opcode.PING, `ping-${i}`);
    peer.send(Opcode.TEXT, 'after the pings');
    await waitUntil(() => received.length === 1, 3_000, 'the server to read every ping');
    assert.ok(conn.isOpen, 'still open: 50 pings are within the rate');
    peer.socket.resume();
    await waitUntil(() => peer.frames.some((f) => f.opcode === Opcode.PONG), 5_000, 'a pong');
    await delay(100);
    const pongs = peer.frames.filter((f) => f.opcode === Opcode.PONG).map((f) => f.payload.toString());
    assert.deepEqual(pongs, ['ping-49']);
    // With the socket drained, the next ping is answered at once.
    peer.send(Opcode.PING, 'again');
    await peer.waitFor((f) => f.opcode === Opcode.PONG && f.payload.toString() === 'again', 2_000);
    conn.terminate();
    await peer.waitClosed(2_000);
  });

  test('a ping flood from a peer that never reads: closed with 1008, nothing piles up', async () => {
    const guard = new ResourceGuard(0);
    const server = await pool.start({ connection: { guard } });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    peer.socket.pause();
    const ping = clientFrame(Opcode.PING, Buffer.alloc(125, 0x61));
    let maxOutbound = 0;
    const started = performance.now();
    // 20 bursts of 1,000 pings (2.6 MB in all), 5 ms apart.
    for (let burst = 0; burst < 20 && !peer.socket.destroyed; burst++) {
      peer.socket.write(Buffer.concat(Array.from({ length: 1000 }, () => ping)));
      await delay(5);
      maxOutbound = Math.max(maxOutbound, conn.bufferedBytes);
    }
    await waitUntil(() => !conn.isOpen, 2_000, 'the server to close the connection');
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 2_000, `closed after ${elapsed} ms`);
    assert.ok(maxOutbound < 64 * KiB, `the server held ${maxOutbound} outbound bytes`);
    assert.equal(guard.pingFloodCloses, 1);
    peer.socket.resume();
    const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE, 3_000);
    assert.equal(closeInfo(close).code, CloseCode.POLICY_VIOLATION);
    const pongs = peer.frames.filter((f) => f.opcode === Opcode.PONG).length;
    assert.ok(pongs <= 101, `${pongs} pongs`);
    await peer.waitClosed(3_000);
    assert.equal((await conn.closed()).code, CloseCode.POLICY_VIOLATION);
  });

  test('pings at the allowed rate are all answered', async () => {
    const server = await pool.start({ connection: { maxPingRate: 20 } });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    for (let i = 0; i < 20; i++) peer.send(Opcode.PING, `p${i}`);
    await waitUntil(
      () => peer.frames.filter((f) => f.opcode === Opcode.PONG).length === 20,
      2_000,
      '20 pongs',
    );
    assert.ok(conn.isOpen, 'still open');
    conn.terminate();
    await peer.waitClosed(2_000);
  });
});

describe('outbound cap', () => {
  test('control frames written into a backed-up socket: destroyed as soon as the cap is passed', async () => {
    const guard = new ResourceGuard(0);
    const errors: string[] = [];
    const server = await pool.start({
      connection: { maxOutboundBytes: 2048 * KiB, writeTimeout: 10_000, guard },
      handlers: { error: (_conn, error) => void errors.push(error.message) },
    });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    peer.socket.pause();
    await backUp(conn, 512 * KiB);
    const started = performance.now();
    const payload = Buffer.alloc(125, 0x62);
    for (let i = 0; i < 50_000 && conn.isOpen; i++) conn.ping(payload);
    assert.ok(conn.socket.destroyed, 'destroyed at once, not after the write timeout');
    assert.ok(conn.socket.writableLength <= 2048 * KiB + 256, `${conn.socket.writableLength} bytes`);
    const { code } = await closedWithin(conn, 2_000);
    assert.ok(performance.now() - started < 2_000, 'well before writeTimeout');
    assert.equal(code, CloseCode.ABNORMAL);
    assert.equal(guard.outboundOverflowCloses, 1);
    assert.ok(
      errors.some((m) => /outbound bytes \d+ over the cap of 2097152/.test(m)),
      errors.join('; '),
    );
    peer.socket.resume();
    await peer.waitClosed(2_000);
  });

  test('a message queued behind a backed-up socket that passes the cap destroys the connection', async () => {
    const guard = new ResourceGuard(0);
    const server = await pool.start({
      connection: { sendQueueBytes: 64 * KiB, maxOutboundBytes: 1024 * KiB, guard },
    });
    const peer = await RawPeer.connect(server.port);
    const conn = await server.nextConnection();
    peer.socket.pause();
    await backUp(conn, 512 * KiB);
    // An empty queue takes one message of any size; this one passes the cap.
    await assert.rejects(conn.sendBinary(Buffer.alloc(1024 * KiB)), { name: 'ConnectionClosedError' });
    assert.ok(conn.socket.destroyed, 'destroyed at once');
    assert.equal(guard.outboundOverflowCloses, 1);
    await closedWithin(conn, 2_000);
    peer.socket.resume();
    await peer.waitClosed(2_000);
  });
});
