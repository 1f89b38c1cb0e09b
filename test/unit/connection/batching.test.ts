// Frames sent in one tick reach the kernel in one write: the socket is corked
// for the tick, so Node hands every buffered chunk to a single _writev call.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { Connection } from '../../../src/connection/connection.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import { RawPeer, serverPool, waitUntil } from './wire.ts';

const pool = serverPool();
afterEach(() => pool.cleanup());

type WritevChunks = Array<{ chunk: unknown; encoding: BufferEncoding }>;

/** Counts the calls Node makes into the socket's low-level write functions. */
function spyWrites(socket: Socket): { writev: number[]; write: number } {
  const calls = { writev: [] as number[], write: 0 };
  const writev = socket._writev?.bind(socket);
  const write = socket._write.bind(socket);
  assert.ok(writev !== undefined, 'net.Socket implements _writev');
  socket._writev = (chunks: WritevChunks, callback: (error?: Error | null) => void) => {
    calls.writev.push(chunks.length);
    writev(chunks, callback);
  };
  socket._write = (chunk: unknown, encoding: BufferEncoding, callback: (error?: Error | null) => void) => {
    calls.write++;
    write(chunk, encoding, callback);
  };
  return calls;
}

async function connectSpied(): Promise<{
  conn: Connection;
  peer: RawPeer;
  calls: ReturnType<typeof spyWrites>;
}> {
  let calls: ReturnType<typeof spyWrites> | undefined;
  const server = await pool.start({
    // Installed right after the 101 went out, before any frame.
    onConnection: (conn) => (calls = spyWrites(conn.socket)),
  });
  const peer = await RawPeer.connect(server.port);
  const conn = await server.nextConnection();
  assert.ok(calls !== undefined);
  return { conn, peer, calls };
}

test('100 messages sent in one tick are written with one syscall', async () => {
  const { conn, peer, calls } = await connectSpied();
  for (let i = 0; i < 100; i++) void conn.sendText(`message ${i}`);
  assert.deepEqual(calls.writev, [], 'nothing is written before the tick ends');
  assert.equal(calls.write, 0);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(calls.writev, [100], 'one _writev call carrying all 100 frames');
  assert.equal(calls.write, 0);

  await waitUntil(() => peer.frames.length >= 100, 2_000, '100 frames');
  assert.deepEqual(
    peer.frames.map((f) => f.payload.toString()),
    Array.from({ length: 100 }, (_, i) => `message ${i}`),
  );
  assert.ok(peer.frames.every((f) => f.opcode === Opcode.TEXT && !f.masked));

  // The next tick starts a new batch.
  for (let i = 0; i < 3; i++) void conn.sendText('again');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(calls.writev, [100, 3]);
  assert.equal(calls.write, 0);

  conn.close(1000);
  peer.sendClose(1000);
  await peer.waitClosed();
  await conn.closed();
});

test('a single message in a tick is one plain write', async () => {
  const { conn, peer, calls } = await connectSpied();
  await conn.sendText('alone');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(calls.writev, []);
  assert.equal(calls.write, 1);
  await peer.waitFor((f) => f.payload.toString() === 'alone');
  conn.terminate();
  await peer.waitClosed();
  await conn.closed();
});

test('bytesWritten covers the whole batch once the tick ends', async () => {
  const { conn, peer } = await connectSpied();
  const before = conn.socket.bytesWritten;
  for (let i = 0; i < 50; i++) void conn.sendBinary(Buffer.alloc(10, i));
  await new Promise((resolve) => setImmediate(resolve));
  // 50 frames of 2 header bytes + 10 payload bytes.
  assert.equal(conn.socket.bytesWritten - before, 50 * 12);
  await waitUntil(() => peer.frames.length >= 50);
  assert.equal(peer.frames.length, 50);
  conn.terminate();
  await peer.waitClosed();
  await conn.closed();
});
