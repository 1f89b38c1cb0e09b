import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  EMPTY_PING,
  MAX_CONTROL_PAYLOAD,
  Opcode,
  applyMask,
  closePayload,
  encodeFrame,
  encodeMessage,
  headerSize,
  randomMask,
} from '../../../src/protocol/frame.ts';
import { FrameParser, type ParserOptions } from '../../../src/protocol/parser.ts';
import type { ProtocolError } from '../../../src/protocol/close.ts';

interface Decoded {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  masked: boolean;
  mask: Buffer | undefined;
  /** Size of the header in bytes. */
  header: number;
  /** The payload, unmasked. */
  payload: Buffer;
}

/**
 * An independent reference decoder (RFC 6455 §5.2) used to check the
 * encoder's output byte by byte; returns the frames in `buf`.
 */
function decodeFrames(buf: Buffer): Decoded[] {
  const frames: Decoded[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const b0 = buf[pos]!;
    const b1 = buf[pos + 1]!;
    let length = b1 & 0x7f;
    let p = pos + 2;
    if (length === 126) {
      length = buf.readUInt16BE(p);
      p += 2;
    } else if (length === 127) {
      length = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    let mask: Buffer | undefined;
    if (masked) {
      mask = Buffer.from(buf.subarray(p, p + 4));
      p += 4;
    }
    const payload = Buffer.from(buf.subarray(p, p + length));
    if (mask) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
    frames.push({
      fin: (b0 & 0x80) !== 0,
      rsv1: (b0 & 0x40) !== 0,
      opcode: b0 & 0x0f,
      masked,
      mask,
      header: p - pos,
      payload,
    });
    pos = p + length;
  }
  assert.equal(pos, buf.length, 'frames must end exactly at the end of the buffer');
  return frames;
}

/** Naive reference for applyMask: byte-by-byte XOR. */
function naiveMask(data: Uint8Array, mask: Uint8Array, start: number, end: number, maskOffset: number): void {
  for (let i = start; i < end; i++) data[i] = data[i]! ^ mask[(maskOffset + i - start) % 4]!;
}

/**
 * Parses `bytes` (as a server when masked) and returns the messages it
 * yields. The parser unmasks in place, so it gets a private copy unless
 * `copy` is false.
 */
function parseMessages(
  bytes: Buffer,
  expectMasked: boolean,
  copy = true,
): Array<{ opcode: number; data: Buffer }> {
  const out: Array<{ opcode: number; data: Buffer }> = [];
  const errors: ProtocolError[] = [];
  const options: ParserOptions = { maxMessageSize: 0, expectMasked };
  const parser = new FrameParser(
    {
      onMessage: (opcode, data) => out.push({ opcode, data: Buffer.from(data) }),
      onPing: () => {},
      onPong: () => {},
      onClose: () => {},
      onError: (e) => errors.push(e),
    },
    options,
  );
  parser.push(copy ? Buffer.from(bytes) : bytes);
  assert.deepEqual(errors, []);
  return out;
}

describe('headerSize and length forms', () => {
  const cases: Array<[number, number, number]> = [
    // [payload length, header bytes unmasked, 7-bit length field]
    [0, 2, 0],
    [1, 2, 1],
    [125, 2, 125],
    [126, 4, 126],
    [65535, 4, 126],
    [65536, 10, 127],
  ];
  for (const [length, header, field] of cases) {
    test(`payload of ${length} bytes uses a ${header}-byte header`, () => {
      assert.equal(headerSize(length, false), header);
      assert.equal(headerSize(length, true), header + 4);
      const payload = Buffer.alloc(length, 0x5a);
      const frame = encodeFrame(Opcode.BINARY, payload);
      assert.equal(frame.length, header + length);
      assert.equal(frame[0], 0x82);
      assert.equal(frame[1], field);
      if (field === 126) assert.equal(frame.readUInt16BE(2), length);
      if (field === 127) assert.equal(frame.readBigUInt64BE(2), BigInt(length));
      const [decoded] = decodeFrames(frame);
      assert.equal(decoded!.header, header);
      assert.ok(decoded!.payload.equals(payload));
    });
  }

  test('a masked frame sets the mask bit and carries the key after the length', () => {
    const mask = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
    // RFC 6455 §5.7: a single-frame masked text message containing "Hello".
    const frame = encodeFrame(Opcode.TEXT, Buffer.from('Hello'), { mask });
    assert.equal(frame.toString('hex'), '818537fa213d7f9f4d5158');
  });

  test('RFC 6455 §5.7 examples: unmasked "Hello", fragmented "Hel"+"lo", ping "Hello"', () => {
    assert.equal(encodeFrame(Opcode.TEXT, Buffer.from('Hello')).toString('hex'), '810548656c6c6f');
    assert.equal(encodeFrame(Opcode.TEXT, Buffer.from('Hel'), { fin: false }).toString('hex'), '010348656c');
    assert.equal(encodeFrame(Opcode.CONTINUATION, Buffer.from('lo')).toString('hex'), '80026c6f');
    assert.equal(encodeFrame(Opcode.PING, Buffer.from('Hello')).toString('hex'), '890548656c6c6f');
  });

  test('no reserved bit is ever set: no extension is negotiated', () => {
    const frames = [
      encodeFrame(Opcode.TEXT, Buffer.from('x')),
      encodeFrame(Opcode.BINARY, Buffer.from('x'), { fin: false, mask: Buffer.alloc(4, 1) }),
      encodeFrame(Opcode.CONTINUATION, Buffer.alloc(70_000)),
      encodeFrame(Opcode.PING, Buffer.alloc(0)),
      encodeMessage(Opcode.TEXT, 'plain'),
    ];
    for (const frame of frames) assert.equal(frame[0]! & 0x70, 0);
  });

  test('EMPTY_PING is a final, empty, unmasked ping', () => {
    assert.equal(EMPTY_PING.toString('hex'), '8900');
    assert.equal(MAX_CONTROL_PAYLOAD, 125);
  });
});

describe('masked frames', () => {
  for (const length of [0, 1, 3, 4, 5, 125, 126, 1000, 65535, 65536, 70001]) {
    test(`a masked ${length}-byte frame decodes back to the payload`, () => {
      const payload = Buffer.alloc(length);
      for (let i = 0; i < length; i++) payload[i] = (i * 31 + 7) & 0xff;
      const mask = randomMask();
      const frame = encodeFrame(Opcode.BINARY, payload, { mask });
      assert.equal(frame.length, headerSize(length, true) + length);
      const [decoded] = decodeFrames(frame);
      assert.equal(decoded!.masked, true);
      assert.ok(decoded!.mask!.equals(mask));
      assert.ok(decoded!.payload.equals(payload));
      // The payload argument is left untouched.
      for (let i = 0; i < length; i++) assert.equal(payload[i], (i * 31 + 7) & 0xff);
      // And the parser (server side) agrees.
      const messages = parseMessages(frame, true);
      assert.equal(messages.length, 1);
      assert.ok(messages[0]!.data.equals(payload));
    });
  }

  test('a zero mask leaves the payload on the wire as is', () => {
    const frame = encodeFrame(Opcode.BINARY, Buffer.from([1, 2, 3]), { mask: Buffer.alloc(4) });
    assert.equal(frame.toString('hex'), '828300000000010203');
  });

  test('randomMask returns fresh 4-byte keys', () => {
    const a = randomMask();
    const b = randomMask();
    assert.equal(a.length, 4);
    assert.equal(b.length, 4);
    assert.notEqual(a, b);
  });
});

describe('encodeMessage', () => {
  test('a short message is a single final frame', () => {
    const frame = encodeMessage(Opcode.BINARY, Buffer.from([9, 8, 7]));
    const frames = decodeFrames(frame);
    assert.equal(frames.length, 1);
    assert.deepEqual(
      frames.map((f) => [f.fin, f.opcode, f.masked]),
      [[true, Opcode.BINARY, false]],
    );
    assert.deepEqual([...frames[0]!.payload], [9, 8, 7]);
  });

  test('a large message is split into continuation frames, FIN only on the last', () => {
    const payload = Buffer.alloc(10_000);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
    const frames = decodeFrames(encodeMessage(Opcode.BINARY, payload, 4096));
    assert.deepEqual(
      frames.map((f) => [f.opcode, f.fin, f.payload.length]),
      [
        [Opcode.BINARY, false, 4096],
        [Opcode.CONTINUATION, false, 4096],
        [Opcode.CONTINUATION, true, 10_000 - 8192],
      ],
    );
    assert.ok(Buffer.concat(frames.map((f) => f.payload)).equals(payload));
  });

  test('an exact multiple of the fragment size has no empty trailing frame', () => {
    const frames = decodeFrames(encodeMessage(Opcode.BINARY, Buffer.alloc(300, 1), 100));
    assert.deepEqual(
      frames.map((f) => [f.opcode, f.fin, f.payload.length]),
      [
        [Opcode.BINARY, false, 100],
        [Opcode.CONTINUATION, false, 100],
        [Opcode.CONTINUATION, true, 100],
      ],
    );
  });

  test('a message of exactly fragmentSize bytes is not fragmented', () => {
    const frames = decodeFrames(encodeMessage(Opcode.TEXT, 'abcd', 4));
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.fin, true);
  });

  test('fragmented client messages use a fresh key per frame and parse back', () => {
    const keys = [Buffer.from([1, 2, 3, 4]), Buffer.from([5, 6, 7, 8]), Buffer.from([9, 10, 11, 12])];
    let next = 0;
    const payload = Buffer.alloc(250);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    const wire = encodeMessage(Opcode.BINARY, payload, 100, () => keys[next++]!);
    assert.equal(next, 3);
    const frames = decodeFrames(wire);
    assert.deepEqual(
      frames.map((f) => f.mask),
      keys,
    );
    assert.ok(Buffer.concat(frames.map((f) => f.payload)).equals(payload));
    const messages = parseMessages(wire, true);
    assert.equal(messages.length, 1);
    assert.ok(messages[0]!.data.equals(payload));
  });

  test('string payloads are encoded as UTF-8 (multibyte), with the byte length in the header', () => {
    const text = 'héllo €uro 😀 日本';
    const expected = Buffer.from(text, 'utf8');
    assert.notEqual(expected.length, text.length);
    for (const wire of [
      encodeMessage(Opcode.TEXT, text),
      encodeMessage(Opcode.TEXT, text, 5),
      encodeMessage(Opcode.TEXT, text, 0, randomMask),
      encodeMessage(Opcode.TEXT, text, 7, randomMask),
    ]) {
      const frames = decodeFrames(wire);
      assert.equal(frames[0]!.opcode, Opcode.TEXT);
      assert.ok(Buffer.concat(frames.map((f) => f.payload)).equals(expected));
    }
    // Fragmenting may cut a code point in half; the parser reassembles it.
    const messages = parseMessages(encodeMessage(Opcode.TEXT, text, 5, randomMask), true);
    assert.equal(messages[0]!.data.toString('utf8'), text);
  });

  test('a long string uses the 16-bit and 64-bit length forms with its byte length', () => {
    for (const chars of [100, 30_000, 40_000]) {
      const text = 'é'.repeat(chars); // 2 bytes each
      const wire = encodeMessage(Opcode.TEXT, text);
      const [frame] = decodeFrames(wire);
      assert.equal(frame!.payload.length, chars * 2);
      assert.equal(frame!.header, headerSize(chars * 2, false));
      assert.equal(frame!.payload.toString('utf8'), text);
    }
  });

  test('empty string and empty binary messages are one empty frame', () => {
    assert.equal(encodeMessage(Opcode.TEXT, '').toString('hex'), '8100');
    assert.equal(encodeMessage(Opcode.BINARY, new Uint8Array(0)).toString('hex'), '8200');
    const masked = decodeFrames(encodeMessage(Opcode.TEXT, '', 0, randomMask));
    assert.equal(masked.length, 1);
    assert.equal(masked[0]!.masked, true);
    assert.equal(masked[0]!.payload.length, 0);
  });

  test('the encoded Buffer is reusable: encode once, decode many times equal', () => {
    const payload = Buffer.from('broadcast to everyone 📣');
    const wire = encodeMessage(Opcode.TEXT, payload.toString(), 8);
    const snapshot = Buffer.from(wire);
    for (let i = 0; i < 5; i++) {
      const messages = parseMessages(wire, false, false);
      assert.equal(messages.length, 1);
      assert.ok(messages[0]!.data.equals(payload));
      assert.ok(wire.equals(snapshot), 'decoding must not alter the shared frame');
    }
  });

  test('encodeMessage does not alter a binary payload it masks', () => {
    const payload = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const copy = Buffer.from(payload);
    encodeMessage(Opcode.BINARY, payload, 4, randomMask);
    encodeMessage(Opcode.BINARY, payload, 0, randomMask);
    assert.ok(payload.equals(copy));
  });

  test('property: any payload and fragment size round-trips through the parser', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 600 }),
        fc.integer({ min: 0, max: 300 }),
        fc.boolean(),
        (payload, fragmentSize, masked) => {
          const wire = encodeMessage(Opcode.BINARY, payload, fragmentSize, masked ? randomMask : undefined);
          const frames = decodeFrames(wire);
          const expectedFrames =
            fragmentSize <= 0 || payload.length <= fragmentSize
              ? 1
              : Math.ceil(payload.length / fragmentSize);
          assert.equal(frames.length, expectedFrames);
          frames.forEach((f, i) => {
            assert.equal(f.fin, i === frames.length - 1);
            assert.equal(f.opcode, i === 0 ? Opcode.BINARY : Opcode.CONTINUATION);
            assert.equal(f.masked, masked);
          });
          const messages = parseMessages(wire, masked);
          assert.equal(messages.length, 1);
          assert.ok(messages[0]!.data.equals(payload));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('closePayload', () => {
  test('no code gives an empty payload', () => {
    assert.equal(closePayload().length, 0);
  });

  test('code and UTF-8 reason', () => {
    const p = closePayload(1000, 'bye ✓');
    assert.equal(p.readUInt16BE(0), 1000);
    assert.equal(p.subarray(2).toString('utf8'), 'bye ✓');
    assert.equal(p.length, 2 + Buffer.byteLength('bye ✓'));
    assert.equal(closePayload(4999).toString('hex'), '1387');
  });

  test('a 123-byte reason is accepted, a 124-byte reason is rejected', () => {
    assert.equal(closePayload(1001, 'a'.repeat(123)).length, 125);
    assert.throws(() => closePayload(1001, 'a'.repeat(124)), RangeError);
    // Counted in bytes, not characters: 62 × "é" = 124 bytes.
    assert.throws(() => closePayload(1001, 'é'.repeat(62)), RangeError);
    assert.equal(closePayload(1001, 'é'.repeat(61) + 'a').length, 125);
  });

  test('a reason without a code is rejected', () => {
    assert.throws(() => closePayload(undefined, 'why'), RangeError);
  });

  test('codes that may not be sent are rejected', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
      assert.throws(() => closePayload(code), RangeError, String(code));
    }
    for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999]) {
      assert.equal(closePayload(code).readUInt16BE(0), code);
    }
  });

  test('a close frame built from it is a valid control frame', () => {
    const frame = encodeFrame(Opcode.CLOSE, closePayload(1000, 'a'.repeat(123)));
    assert.equal(frame[0], 0x88);
    assert.equal(frame[1], 125);
    assert.equal(frame.length, 127);
  });
});

describe('applyMask', () => {
  test('XORs with the key, cycling every 4 bytes', () => {
    const data = Buffer.from([0, 0, 0, 0, 0, 0, 0]);
    applyMask(data, Buffer.from([1, 2, 3, 4]));
    assert.deepEqual([...data], [1, 2, 3, 4, 1, 2, 3]);
  });

  test('start/end restrict the range and maskOffset shifts the key', () => {
    const data = Buffer.alloc(8);
    applyMask(data, Buffer.from([1, 2, 3, 4]), 2, 6, 3);
    assert.deepEqual([...data], [0, 0, 4, 1, 2, 3, 0, 0]);
  });

  test('masking twice restores the data', () => {
    const data = Buffer.from('some payload bytes');
    const copy = Buffer.from(data);
    const key = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
    applyMask(data, key);
    assert.ok(!data.equals(copy));
    applyMask(data, key);
    assert.ok(data.equals(copy));
  });

  test('property: equals a naive XOR for random data, ranges and offsets', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 80 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.nat(),
        fc.nat(),
        fc.nat({ max: 1000 }),
        (data, key, a, b, maskOffset) => {
          const start = data.length === 0 ? 0 : a % (data.length + 1);
          const end = start + (data.length - start === 0 ? 0 : b % (data.length - start + 1));
          const fast = Uint8Array.from(data);
          const slow = Uint8Array.from(data);
          applyMask(fast, key, start, end, maskOffset);
          naiveMask(slow, key, start, end, maskOffset);
          assert.deepEqual(fast, slow);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('property: unmasking a payload in arbitrary pieces with running offsets equals unmasking it whole', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 100 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 }),
        (data, key, sizes) => {
          const whole = Uint8Array.from(data);
          applyMask(whole, key);
          const pieces = Uint8Array.from(data);
          let pos = 0;
          let k = 0;
          while (pos < pieces.length) {
            const end = Math.min(pieces.length, pos + sizes[k++ % sizes.length]!);
            applyMask(pieces, key, pos, end, pos);
            pos = end;
          }
          assert.deepEqual(pieces, whole);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
