// Hardening, end to end against `createWshub().createServer()` on loopback:
// what one client's framing, a group of clients' partial messages, or a
// ping flood from a client that never reads can make the server hold.
// Each test sends a bounded number of frames and ends within seconds.
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveConfig, type WshubConfig } from '../../../src/config.ts';
import type { Connection } from '../../../src/connection/connection.ts';
import { ConfigError } from '../../../src/errors.ts';
import { CloseCode } from '../../../src/protocol/close.ts';
import { Opcode, encodeFrame, randomMask } from '../../../src/protocol/frame.ts';
import { authHeaders, cleanupHubs, connectClient, startHub } from '../server/harness.ts';
import { RawPeer, closeInfo, delay, waitUntil } from '../../unit/connection/wire.ts';

afterEach(cleanupHubs);

const KiB = 1024;

/** A masked client frame with an explicit FIN bit. */
function clientFrame(opcode: number, payload: Uint8Array | string, fin = true): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return encodeFrame(opcode, bytes, { fin, mask: randomMask() });
}

async function rawPeer(port: number, room: string): Promise<RawPeer> {
  return RawPeer.connect(port, { path: `/ws?room=${room}`, headers: await authHeaders() });
}

describe('hardening: frames', () => {
  test('a message sent as 70,000 one-byte frames is refused with 1009 at the frame cap', async () => {
    const hub = await startHub();
    const peer = await rawPeer(hub.port, 'frag');
    const frames: Buffer[] = [clientFrame(Opcode.BINARY, Buffer.from([0]), false)];
    for (let i = 1; i < 70_000; i++)
      frames.push(clientFrame(Opcode.CONTINUATION, Buffer.from([i & 0xff]), i === 69_999));
    peer.socket.write(Buffer.concat(frames));
    const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE, 5_000);
    assert.equal(closeInfo(close).code, CloseCode.MESSAGE_TOO_BIG);
    assert.match(closeInfo(close).reason, /more than 65536 frames/);
    await peer.waitClosed(5_000);
    const metrics = hub.ws.metrics();
    assert.equal(metrics.fragment_limit_closes, 1);
    assert.equal(metrics.partial_message_bytes, 0);
  });

  test('the partial-message budget: the connection that crosses it gets 1013, others finish or give theirs back', async () => {
    const hub = await startHub({ readLimit: 1024 * KiB, maxPartialMessageBytes: 2560 * KiB });
    const a = await rawPeer(hub.port, 'budget');
    const b = await rawPeer(hub.port, 'budget');
    const c = await rawPeer(hub.port, 'budget');
    const first = (): Buffer => clientFrame(Opcode.BINARY, Buffer.alloc(900 * KiB, 1), false);
    a.socket.write(first());
    await waitUntil(() => hub.ws.metrics().partial_message_bytes >= 900 * KiB, 3_000, "a's partial message");
    b.socket.write(first());
    await waitUntil(() => hub.ws.metrics().partial_message_bytes >= 1800 * KiB, 3_000, "b's partial message");
    c.socket.write(first());
    const close = await c.waitFor((f) => f.opcode === Opcode.CLOSE, 3_000);
    assert.equal(closeInfo(close).code, CloseCode.TRY_AGAIN_LATER);
    assert.equal(hub.ws.metrics().partial_message_budget_closes, 1);
    await c.waitClosed(3_000);
    // b vanishes mid-message: its reservation goes back to the budget.
    b.socket.destroy();
    await waitUntil(
      () => hub.ws.metrics().partial_message_bytes < 1800 * KiB,
      3_000,
      "b's partial message to be released",
    );
    // a was not affected: its message completes and reaches the room.
    a.socket.write(clientFrame(Opcode.CONTINUATION, 'end', true));
    const echo = await a.waitFor((f) => f.opcode === Opcode.BINARY, 5_000);
    assert.equal(echo.payload.length, 900 * KiB + 3);
    assert.equal(hub.ws.metrics().partial_message_bytes, 0, 'the budget is back to 0');
    a.sendClose(1000);
    await a.waitClosed(3_000);
    await b.waitClosed(3_000);
    assert.equal(hub.ws.metrics().partial_message_bytes, 0);
  });

  test('a ping flood from a client that never reads: 1008 within a second, nothing piles up, others served', async () => {
    const conns: Connection[] = [];
    const hub = await startHub({ onConnect: (conn) => void conns.push(conn) });
    const flooder = await rawPeer(hub.port, 'flood');
    const victim = conns[0]!;
    const other = await connectClient(hub.url('/ws?room=flood'), { headers: await authHeaders() });
    flooder.socket.pause();
    const burst = Buffer.concat(
      Array.from({ length: 1000 }, () => clientFrame(Opcode.PING, Buffer.alloc(125, 0x66))),
    );
    let maxOutbound = 0;
    let closedAfter: number | undefined;
    let broadcastLatency: number | undefined;
    const started = performance.now();
    // About one second of flooding (at most 64 MiB), whatever the server does.
    for (let i = 0; i < 500 && performance.now() - started < 1_000; i++) {
      if (flooder.socket.writableLength < 1024 * KiB) flooder.socket.write(burst);
      await delay(2);
      maxOutbound = Math.max(maxOutbound, victim.bufferedBytes);
      if (closedAfter === undefined && !victim.isOpen) closedAfter = performance.now() - started;
      if (i === 100) {
        const sent = performance.now();
        hub.ws.hub.broadcastRoom('flood', Opcode.TEXT, 'still here');
        assert.equal((await other.queue.next(2_000)).text, 'still here');
        broadcastLatency = performance.now() - sent;
      }
    }
    assert.ok(closedAfter !== undefined && closedAfter < 1_000, `closed after ${closedAfter} ms`);
    assert.ok(maxOutbound < 64 * KiB, `the server held ${maxOutbound} bytes for the flooder`);
    assert.ok(
      broadcastLatency !== undefined && broadcastLatency < 1_000,
      `broadcast took ${broadcastLatency} ms`,
    );
    assert.equal(hub.ws.metrics().ping_flood_closes, 1);
    flooder.socket.resume();
    const close = await flooder.waitFor((f) => f.opcode === Opcode.CLOSE, 5_000);
    assert.equal(closeInfo(close).code, CloseCode.POLICY_VIOLATION);
    await flooder.waitClosed(6_000);
    assert.ok(other.conn.isOpen, 'the other client is still connected');
    other.conn.close(1000);
    await other.conn.closed();
  });

  test('after a protocol error the server stops reading what the client keeps sending', async () => {
    const conns: Connection[] = [];
    const hub = await startHub({ onConnect: (conn) => void conns.push(conn) });
    const peer = await RawPeer.connect(hub.port, {
      path: '/ws?room=after-error',
      headers: await authHeaders(),
      allowHalfOpen: true,
    });
    const server = conns[0]!;
    // RSV2 without an extension: 1002, then a flood of well-formed frames for half a second.
    peer.socket.write(Buffer.from([0xa2, 0x80, 0, 0, 0, 0]));
    const flood = Buffer.concat(
      Array.from({ length: 64 }, () => clientFrame(Opcode.BINARY, Buffer.alloc(1024, 7))),
    );
    const started = performance.now();
    let sent = 0;
    while (performance.now() - started < 500) {
      if (peer.socket.writableLength < 256 * KiB) {
        peer.socket.write(flood);
        sent += flood.length;
      }
      await delay(1);
    }
    const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE, 3_000);
    assert.equal(closeInfo(close).code, CloseCode.PROTOCOL_ERROR);
    const read = server.socket.bytesRead;
    assert.ok(sent > 4 * 1024 * KiB, `the client sent ${sent} bytes`);
    assert.ok(read < 1024 * KiB, `the server read ${read} of ${sent} bytes after the error`);
    peer.socket.destroy();
  });
});

describe('hardening: frame and memory options', () => {
  test('defaults, the outbound cap following sendQueueBytes, and refused values', () => {
    const defaults = resolveConfig({ allowUnauthenticated: true });
    assert.equal(defaults.maxFragments, 65_536);
    assert.equal(defaults.maxPartialMessageBytes, 256 * 1024 * KiB);
    assert.equal(defaults.maxPingRate, 100);
    assert.equal(defaults.maxOutboundBytes, 32 * 1024 * KiB);
    const bigQueue = resolveConfig({ allowUnauthenticated: true, sendQueueBytes: 40 * 1024 * KiB });
    assert.equal(bigQueue.maxOutboundBytes, 80 * 1024 * KiB, 'unset, it is twice sendQueueBytes');
    const refused: Array<[Partial<WshubConfig>, string]> = [
      [{ maxOutboundBytes: 1024 }, 'maxOutboundBytes'],
      [{ maxPartialMessageBytes: 1024 }, 'maxPartialMessageBytes'],
      [{ maxFragments: -1 }, 'maxFragments'],
      [{ maxPingRate: Number.NaN }, 'maxPingRate'],
    ];
    for (const [input, option] of refused) {
      assert.throws(
        () => resolveConfig({ allowUnauthenticated: true, ...input }),
        (error: unknown) => error instanceof ConfigError && error.option === option,
        option,
      );
    }
    const off = resolveConfig({ allowUnauthenticated: true, maxOutboundBytes: 0, maxPartialMessageBytes: 0 });
    assert.deepEqual([off.maxOutboundBytes, off.maxPartialMessageBytes], [0, 0]);
  });
});
