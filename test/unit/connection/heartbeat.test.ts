// Pings from the shared sweep, and the pong deadline.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCode } from '../../../src/protocol/close.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import { activeSweepers } from '../../../src/connection/heartbeat.ts';
import { RawPeer, delay, serverPool } from './wire.ts';

const pool = serverPool();
afterEach(() => pool.cleanup());

const pingPeriod = 50;
const pongWait = 100;
/** The sweep tick for these settings: a quarter of the shortest timeout. */
const tick = pingPeriod / 4;

test('a peer that never answers pings is disconnected after pingPeriod + pongWait', async () => {
  const errors: string[] = [];
  const server = await pool.start({
    connection: { pingPeriod, pongWait },
    handlers: { error: (_conn, error) => errors.push(error.message) },
  });
  const started = performance.now();
  const peer = await RawPeer.connect(server.port);
  const conn = await server.nextConnection();
  assert.equal(activeSweepers(), 1);
  const info = await conn.closed();
  const elapsed = performance.now() - started;
  assert.ok(
    elapsed >= pingPeriod + pongWait - tick && elapsed <= pingPeriod + pongWait + 2 * tick + 250,
    `disconnected after ${elapsed.toFixed(1)} ms`,
  );
  assert.equal(info.code, CloseCode.ABNORMAL);
  assert.ok(
    errors.some((m) => m.includes('pong')),
    errors.join('; '),
  );
  await peer.waitClosed();
  const pings = peer.frames.filter((f) => f.opcode === Opcode.PING);
  assert.equal(pings.length, 1, 'no further ping while a pong is awaited');
  assert.equal(pings[0]!.masked, false);
  assert.equal(pings[0]!.payload.length, 0);
});

test('a peer that answers pongs stays connected over many periods', async () => {
  const server = await pool.start({ connection: { pingPeriod, pongWait } });
  const peer = await RawPeer.connect(server.port, { autoPong: true });
  const conn = await server.nextConnection();
  await delay(8 * pingPeriod);
  assert.ok(conn.isOpen, 'still open');
  assert.equal(peer.closedAt, undefined);
  const pings = peer.frames.filter((f) => f.opcode === Opcode.PING).length;
  // About one ping per period; allow for a slow machine.
  assert.ok(pings >= 4 && pings <= 9, `${pings} pings in ${8 * pingPeriod} ms`);
  conn.close(1000);
  await peer.waitFor((f) => f.opcode === Opcode.CLOSE);
  peer.sendClose(1000);
  await peer.waitClosed();
  assert.equal((await conn.closed()).code, 1000);
});

test('the server answers a ping with a pong carrying the same payload', async () => {
  const server = await pool.start();
  const peer = await RawPeer.connect(server.port);
  const conn = await server.nextConnection();
  peer.send(Opcode.PING, 'hello?');
  const pong = await peer.waitFor((f) => f.opcode === Opcode.PONG);
  assert.equal(pong.payload.toString(), 'hello?');
  assert.equal(pong.masked, false);
  conn.terminate();
  await peer.waitClosed();
  await conn.closed();
});

test('with every sweep timing off no sweep timer runs and no ping is sent', async () => {
  const server = await pool.start({ connection: { pingPeriod: 0, pongWait: 0, writeTimeout: 0 } });
  const peer = await RawPeer.connect(server.port);
  const conn = await server.nextConnection();
  assert.equal(activeSweepers(), 0);
  await delay(100);
  assert.equal(peer.frames.length, 0);
  conn.terminate();
  await peer.waitClosed();
  await conn.closed();
});
