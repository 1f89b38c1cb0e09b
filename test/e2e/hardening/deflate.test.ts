// Hardening of permessage-deflate, end to end against a wshub server on
// loopback: decompression bombs stop at the read limit within milliseconds,
// and thousands of compressed messages from many clients at once leave
// memory bounded (zlib work waits for a slot; waiting connections stop
// reading). Bounded in time: a few seconds each.
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, deflateRawSync } from 'node:zlib';
import { CloseCode } from '../../../src/protocol/close.ts';
import { Opcode, encodeFrame, randomMask } from '../../../src/protocol/frame.ts';
import { defaultInflateGate, DEFAULT_INFLATE_SLOTS } from '../../../src/protocol/inflate.ts';
import { authHeaders, cleanupHubs, startHub } from '../server/harness.ts';
import { RawPeer, closeInfo } from '../../unit/connection/wire.ts';

afterEach(cleanupHubs);

const KiB = 1024;
const MiB = 1024 * KiB;

/** A masked client frame with RSV1 set (a compressed message in one frame). */
function compressedFrame(opcode: number, compressed: Buffer): Buffer {
  const frame = encodeFrame(opcode, compressed, { mask: randomMask(), rsv1: true });
  return frame;
}

/** Flushed DEFLATE data without its tail, as RFC 7692 sends it. */
function deflated(data: Buffer): Buffer {
  return deflateRawSync(data, { level: 9, finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);
}

/** `mib` MiB of zeros as DEFLATE data: one flushed MiB repeated (flushed non-final blocks concatenate). */
function bomb(mib: number): Buffer {
  const one = deflateRawSync(Buffer.alloc(MiB), { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
  const all = Buffer.concat(Array.from({ length: mib }, () => one));
  return all.subarray(0, all.length - 4);
}

async function deflatePeer(port: number, room: string): Promise<RawPeer> {
  return RawPeer.connect(port, {
    path: `/ws?room=${room}`,
    headers: await authHeaders({ 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' }),
  });
}

describe('hardening: permessage-deflate', () => {
  for (const [label, payload, readLimit] of [
    ['about 1 MiB inflating to 1 GiB (read limit 16 MiB)', bomb(1024), 16 * MiB],
    ['4 KiB inflating to 4 MiB (read limit 64 KiB)', bomb(4), 64 * KiB],
  ] as const) {
    test(`a bomb of ${label} is closed with 1009 within milliseconds, RSS bounded`, async () => {
      const hub = await startHub({ perMessageDeflate: true, readLimit });
      const peer = await deflatePeer(hub.port, 'bomb');
      const rssBefore = process.memoryUsage().rss;
      let rssPeak = rssBefore;
      const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 2);
      const started = performance.now();
      peer.socket.write(compressedFrame(Opcode.BINARY, payload));
      const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE, 5_000);
      const elapsed = performance.now() - started;
      clearInterval(sampler);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      assert.equal(closeInfo(close).code, CloseCode.MESSAGE_TOO_BIG);
      assert.match(closeInfo(close).reason, /inflated message exceeds/);
      await peer.waitClosed(5_000);
      const growth = (rssPeak - rssBefore) / MiB;
      process.stdout.write(
        `# bomb ${payload.length} B compressed: 1009 after ${elapsed.toFixed(1)} ms, RSS +${growth.toFixed(1)} MiB\n`,
      );
      // The inflated bytes kept are at most the read limit plus one zlib chunk.
      assert.ok(growth < 64 + (readLimit * 2) / MiB, `RSS grew by ${growth.toFixed(1)} MiB`);
      assert.ok(elapsed < 1_000, `took ${elapsed.toFixed(1)} ms`);
      assert.equal(hub.ws.metrics().partial_message_bytes, 0);
    });
  }

  test('thousands of compressed messages from many clients at once: all inflated, zlib bounded, memory bounded', async () => {
    const CLIENTS = 100;
    const PER_CLIENT = 20;
    const SIZE = 256 * KiB;
    let received = 0;
    let bytes = 0;
    let mostActive = 0;
    const hub = await startHub({
      perMessageDeflate: true,
      onMessage: (_conn, data) => {
        received++;
        bytes += data.length;
        mostActive = Math.max(mostActive, defaultInflateGate.active);
      },
    });
    const peers = await Promise.all(Array.from({ length: CLIENTS }, () => deflatePeer(hub.port, 'many')));
    // Compressible but not trivial: 256 KiB of a repeated JSON-ish line.
    const line = Buffer.from('{"sensor":"t-17","value":21.5,"unit":"C","ok":true}\n');
    const message = Buffer.alloc(SIZE);
    for (let at = 0; at < SIZE; at += line.length) line.copy(message, at);
    const z = deflated(message);
    const burst = Buffer.concat(Array.from({ length: PER_CLIENT }, () => compressedFrame(Opcode.TEXT, z)));
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    let mostQueued = 0;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      mostQueued = Math.max(mostQueued, defaultInflateGate.queued);
    }, 5);
    const started = performance.now();
    for (const peer of peers) peer.socket.write(burst);
    const deadline = performance.now() + 30_000;
    while (received < CLIENTS * PER_CLIENT && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    clearInterval(sampler);
    const elapsed = performance.now() - started;
    const growth = (rssPeak - rssBefore) / MiB;
    process.stdout.write(
      `# ${CLIENTS * PER_CLIENT} compressed messages (${(z.length / KiB).toFixed(1)} KiB → 256 KiB each) from ${CLIENTS} clients: ` +
        `${elapsed.toFixed(0)} ms, most inflating at once ${mostActive}, most waiting ${mostQueued}, RSS +${growth.toFixed(1)} MiB\n`,
    );
    assert.equal(received, CLIENTS * PER_CLIENT);
    assert.equal(bytes, CLIENTS * PER_CLIENT * SIZE);
    assert.ok(mostActive <= DEFAULT_INFLATE_SLOTS, `at most ${DEFAULT_INFLATE_SLOTS} inflating at once`);
    assert.ok(mostQueued <= CLIENTS, 'at most one waiting message per connection');
    // 500 MiB are inflated in all; what is held at once is bounded by slots and connections.
    assert.ok(growth < 300, `RSS grew by ${growth.toFixed(1)} MiB`);
    assert.equal(hub.ws.metrics().partial_message_bytes, 0);
    for (const peer of peers) peer.socket.destroy();
  });
});
