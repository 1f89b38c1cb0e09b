import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, inflateRawSync } from 'node:zlib';
import { Hub } from '../../../src/hub/hub.ts';
import { DeflateEndpoint, MessageCompressor, defaultDeflateSettings } from '../../../src/protocol/deflate.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import { FakeConn } from './fake-conn.ts';
import type { DeflateSession } from '../../../src/protocol/deflate.ts';

/** Counts the compressions a compressor does. */
class CountingCompressor extends MessageCompressor {
  calls = 0;
  override compress(payload: Uint8Array | string): Buffer {
    this.calls++;
    return super.compress(payload);
  }
}

function session(compressor: MessageCompressor): DeflateSession {
  return { compressor, inflateWindowBits: 15, inflateNoContextTakeover: true, header: 'permessage-deflate' };
}

class DeflateConn extends FakeConn {
  constructor(readonly deflate: DeflateSession | null) {
    super();
  }
}

/** Reads one unmasked frame: RSV1 and the payload. */
function readFrame(frame: Buffer): { rsv1: boolean; opcode: number; payload: Buffer } {
  let length = frame[1]! & 0x7f;
  let at = 2;
  if (length === 126) {
    length = frame.readUInt16BE(2);
    at = 4;
  } else if (length === 127) {
    length = Number(frame.readBigUInt64BE(2));
    at = 10;
  }
  return {
    rsv1: (frame[0]! & 0x40) !== 0,
    opcode: frame[0]! & 0x0f,
    payload: frame.subarray(at, at + length),
  };
}

const inflate = (payload: Buffer): Buffer =>
  inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), {
    finishFlush: constants.Z_SYNC_FLUSH,
  });

test('a broadcast is deflated once per parameter set, and each recipient gets the shared frame of its set', () => {
  const hub = new Hub<DeflateConn>();
  const wide = new CountingCompressor(128, 3, 8, 15);
  const narrow = new CountingCompressor(128, 3, 8, 10);
  const a = session(wide);
  const b = session(narrow);
  const conns = [
    ...Array.from({ length: 500 }, () => new DeflateConn(a)),
    ...Array.from({ length: 300 }, () => new DeflateConn(b)),
    ...Array.from({ length: 200 }, () => new DeflateConn(null)),
  ];
  for (const conn of conns) assert.ok(hub.tryJoin('room', conn).ok);
  const json = JSON.stringify({ feed: Array.from({ length: 40 }, (_, i) => ({ id: i, text: `item ${i}` })) });
  const result = hub.tryBroadcastRoom('room', Opcode.TEXT, json);
  assert.equal(result.enqueued, 1000);
  assert.equal(wide.calls, 1);
  assert.equal(narrow.calls, 1);
  const frameOf = (conn: FakeConn) => conn.frames[0]!;
  // One Buffer per set, shared by reference.
  assert.ok(conns.slice(0, 500).every((c) => frameOf(c) === frameOf(conns[0]!)));
  assert.ok(conns.slice(500, 800).every((c) => frameOf(c) === frameOf(conns[500]!)));
  assert.ok(conns.slice(800).every((c) => frameOf(c) === frameOf(conns[800]!)));
  const plain = readFrame(frameOf(conns[800]!));
  assert.equal(plain.rsv1, false);
  assert.equal(plain.payload.toString(), json);
  for (const conn of [conns[0]!, conns[500]!]) {
    const frame = readFrame(frameOf(conn));
    assert.equal(frame.rsv1, true);
    assert.equal(frame.opcode, Opcode.TEXT);
    assert.ok(frame.payload.length < json.length / 2);
    assert.equal(inflate(frame.payload).toString(), json);
  }
});

test("a turn's batch compresses each message on its own; small ones stay plain", async () => {
  const hub = new Hub<DeflateConn>();
  const compressor = new CountingCompressor(128, 3, 8, 15);
  const zipped = new DeflateConn(session(compressor));
  const plain = new DeflateConn(null);
  hub.tryJoin('r', zipped);
  hub.tryJoin('r', plain);
  const big = 'x'.repeat(1000);
  hub.broadcastRoom('r', Opcode.TEXT, big);
  hub.broadcastRoom('r', Opcode.TEXT, 'tiny');
  hub.broadcastRoom('r', Opcode.BINARY, Buffer.alloc(500, 1));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(compressor.calls, 2, 'the two messages over the threshold, once each');
  const batch = zipped.frames[0]!;
  const frames: Array<ReturnType<typeof readFrame>> = [];
  for (let at = 0; at < batch.length;) {
    const frame = readFrame(batch.subarray(at));
    frames.push(frame);
    at = frame.payload.byteOffset - batch.byteOffset + frame.payload.length;
  }
  assert.deepEqual(
    frames.map((f) => f.rsv1),
    [true, false, true],
  );
  assert.equal(inflate(frames[0]!.payload).toString(), big);
  assert.equal(frames[1]!.payload.toString(), 'tiny');
  assert.deepEqual(inflate(frames[2]!.payload), Buffer.alloc(500, 1));
});

test('sessions and compressors are shared by every connection with the same agreement', () => {
  const endpoint = new DeflateEndpoint(defaultDeflateSettings());
  const s1 = endpoint.negotiate('permessage-deflate; client_max_window_bits');
  const s2 = endpoint.negotiate('permessage-deflate; client_max_window_bits');
  const s3 = endpoint.negotiate('permessage-deflate; server_max_window_bits=10');
  const s4 = endpoint.negotiate('permessage-deflate; server_max_window_bits=10; client_no_context_takeover');
  assert.equal(s1, s2);
  assert.notEqual(s1, s3);
  assert.equal(s3!.compressor, s4!.compressor, 'same window: same compressor');
  assert.notEqual(s1!.compressor, s3!.compressor);
  assert.equal(endpoint.negotiate(undefined), null);
});
