import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameParser, type ParserOptions } from '../../../src/protocol/parser.ts';
import { ProtocolError } from '../../../src/protocol/close.ts';
import { Opcode, closePayload } from '../../../src/protocol/frame.ts';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** One observable parser event, in a form deepEqual can compare. */
type Event =
  | ['message', number, string]
  | ['ping', string]
  | ['pong', string]
  | ['close', number | undefined, string]
  | ['error', number, string];

interface RawFrame {
  opcode: number;
  payload?: Uint8Array | string;
  fin?: boolean;
  rsv1?: boolean;
  rsv2?: boolean;
  rsv3?: boolean;
  /** Masking key; null for an unmasked frame. Defaults to a fixed key. */
  mask?: Uint8Array | null;
  /** Force a length encoding (7, 16 or 64 bits) instead of the minimal one. */
  lengthForm?: 7 | 16 | 64;
  /** Write this length in the header instead of the payload's (for 64-bit forms, a bigint is allowed). */
  declaredLength?: number | bigint;
}

const KEY = Uint8Array.from([0x12, 0x34, 0x56, 0x78]);

/**
 * Builds a frame byte by byte, independently of the encoder under test, so
 * malformed headers (non-minimal lengths, reserved bits) can be produced.
 */
function rawFrame(f: RawFrame): Buffer {
  const payload = typeof f.payload === 'string' ? Buffer.from(f.payload) : Buffer.from(f.payload ?? []);
  const mask = f.mask === undefined ? KEY : f.mask;
  const length = f.declaredLength ?? payload.length;
  const form = f.lengthForm ?? (Number(length) < 126 ? 7 : Number(length) < 65536 ? 16 : 64);
  const b0 =
    ((f.fin ?? true) ? 0x80 : 0) | (f.rsv1 ? 0x40 : 0) | (f.rsv2 ? 0x20 : 0) | (f.rsv3 ? 0x10 : 0) | f.opcode;
  const maskBit = mask ? 0x80 : 0;
  const parts: Buffer[] = [];
  if (form === 7) {
    parts.push(Buffer.from([b0, maskBit | Number(length)]));
  } else if (form === 16) {
    const h = Buffer.alloc(4);
    h[0] = b0;
    h[1] = maskBit | 126;
    h.writeUInt16BE(Number(length), 2);
    parts.push(h);
  } else {
    const h = Buffer.alloc(10);
    h[0] = b0;
    h[1] = maskBit | 127;
    h.writeBigUInt64BE(BigInt(length), 2);
    parts.push(h);
  }
  if (mask) {
    parts.push(Buffer.from(mask));
    const masked = Buffer.from(payload);
    for (let i = 0; i < masked.length; i++) masked[i] = masked[i]! ^ mask[i % 4]!;
    parts.push(masked);
  } else {
    parts.push(payload);
  }
  return Buffer.concat(parts);
}

/** Server-side defaults: masked frames, no size limit. */
const SERVER: ParserOptions = { maxMessageSize: 0, expectMasked: true };
const CLIENT: ParserOptions = { maxMessageSize: 0, expectMasked: false };

/** A parser that records its events. */
function recorder(options: ParserOptions = SERVER): { parser: FrameParser; events: Event[] } {
  const events: Event[] = [];
  const parser = new FrameParser(
    {
      onMessage: (opcode, data) => events.push(['message', opcode, data.toString('hex')]),
      onPing: (p) => events.push(['ping', p.toString('hex')]),
      onPong: (p) => events.push(['pong', p.toString('hex')]),
      onClose: (code, reason) => events.push(['close', code, reason]),
      onError: (e) => {
        assert.ok(e instanceof ProtocolError);
        events.push(['error', e.closeCode, e.message]);
      },
    },
    options,
  );
  return { parser, events };
}

/**
 * Feeds `chunks` (each copied first: the parser unmasks in place) and returns
 * the events seen.
 */
function feed(chunks: Uint8Array[], options: ParserOptions = SERVER): Event[] {
  const { parser, events } = recorder(options);
  for (const c of chunks) parser.push(Buffer.from(c));
  return events;
}

/** Feeds the concatenation of `frames` in one push. */
function parse(frames: Uint8Array[], options: ParserOptions = SERVER): Event[] {
  return feed([Buffer.concat(frames)], options);
}

/** The close code of the single error in `events`, asserting it is the last event. */
function errorCode(events: Event[]): number {
  const errors = events.filter((e) => e[0] === 'error');
  assert.equal(errors.length, 1, `expected one error, got ${JSON.stringify(events)}`);
  assert.equal(events[events.length - 1]![0], 'error', 'the error must be the last event');
  return errors[0]![1];
}

/** Splits `data` into pieces whose sizes cycle through `sizes` (one piece when empty). */
function chunk(data: Uint8Array, sizes: number[]): Uint8Array[] {
  if (sizes.length === 0) return [data];
  const out: Uint8Array[] = [];
  let pos = 0;
  let k = 0;
  while (pos < data.length) {
    const size = sizes[k++ % sizes.length]!;
    out.push(data.subarray(pos, pos + size));
    pos += size;
  }
  return out;
}

const hex = (s: string | Uint8Array): string =>
  (typeof s === 'string' ? Buffer.from(s) : Buffer.from(s)).toString('hex');

const TEXT = Opcode.TEXT;
const BINARY = Opcode.BINARY;
const CONT = Opcode.CONTINUATION;
const CLOSE = Opcode.CLOSE;
const PING = Opcode.PING;
const PONG = Opcode.PONG;

// ---------------------------------------------------------------------------
// Valid input
// ---------------------------------------------------------------------------

describe('FrameParser: valid input', () => {
  test('single text, binary, ping and pong frames', () => {
    const events = parse([
      rawFrame({ opcode: TEXT, payload: 'héllo' }),
      rawFrame({ opcode: BINARY, payload: Uint8Array.from([0, 255, 1]) }),
      rawFrame({ opcode: PING, payload: 'p' }),
      rawFrame({ opcode: PONG, payload: 'q' }),
    ]);
    assert.deepEqual(events, [
      ['message', TEXT, hex('héllo')],
      ['message', BINARY, '00ff01'],
      ['ping', hex('p')],
      ['pong', hex('q')],
    ]);
  });

  test('client side: unmasked server frames', () => {
    const events = parse([rawFrame({ opcode: TEXT, payload: 'hi', mask: null })], CLIENT);
    assert.deepEqual(events, [['message', TEXT, hex('hi')]]);
  });

  test('16-bit and 64-bit lengths, masked', () => {
    const p1 = Buffer.alloc(126, 7);
    const p2 = Buffer.alloc(65536, 9);
    const events = parse([
      rawFrame({ opcode: BINARY, payload: p1 }),
      rawFrame({ opcode: BINARY, payload: p2 }),
    ]);
    assert.deepEqual(events, [
      ['message', BINARY, p1.toString('hex')],
      ['message', BINARY, p2.toString('hex')],
    ]);
  });

  test('control frames interleaved in a fragmented message', () => {
    const events = parse([
      rawFrame({ opcode: TEXT, payload: 'Hel', fin: false }),
      rawFrame({ opcode: PING, payload: 'a' }),
      rawFrame({ opcode: CONT, payload: 'l', fin: false }),
      rawFrame({ opcode: PONG, payload: 'b' }),
      rawFrame({ opcode: PING }),
      rawFrame({ opcode: CONT, payload: 'o' }),
    ]);
    assert.deepEqual(events, [
      ['ping', hex('a')],
      ['pong', hex('b')],
      ['ping', ''],
      ['message', TEXT, hex('Hello')],
    ]);
  });

  test('a UTF-8 code point split across fragments, with a ping in between', () => {
    const emoji = Buffer.from('😀');
    const events = parse([
      rawFrame({ opcode: TEXT, payload: emoji.subarray(0, 1), fin: false }),
      rawFrame({ opcode: CONT, payload: emoji.subarray(1, 3), fin: false }),
      rawFrame({ opcode: PING, payload: 'x' }),
      rawFrame({ opcode: CONT, payload: emoji.subarray(3) }),
    ]);
    assert.deepEqual(events, [
      ['ping', hex('x')],
      ['message', TEXT, emoji.toString('hex')],
    ]);
  });

  test('empty messages: text, binary, fragmented with empty fragments', () => {
    const events = parse([
      rawFrame({ opcode: TEXT }),
      rawFrame({ opcode: BINARY }),
      rawFrame({ opcode: TEXT, fin: false }),
      rawFrame({ opcode: CONT, fin: false }),
      rawFrame({ opcode: CONT }),
      rawFrame({ opcode: BINARY, fin: false, payload: '' }),
      rawFrame({ opcode: CONT, payload: 'z' }),
    ]);
    assert.deepEqual(events, [
      ['message', TEXT, ''],
      ['message', BINARY, ''],
      ['message', TEXT, ''],
      ['message', BINARY, hex('z')],
    ]);
  });

  test('close with no payload reports code undefined', () => {
    const { parser, events } = recorder();
    parser.push(rawFrame({ opcode: CLOSE }));
    assert.deepEqual(events, [['close', undefined, '']]);
    assert.equal(parser.finished, true);
  });

  test('close with code and UTF-8 reason', () => {
    const events = parse([rawFrame({ opcode: CLOSE, payload: closePayload(1000, 'bye ✓') })]);
    assert.deepEqual(events, [['close', 1000, 'bye ✓']]);
  });

  test('every valid close code is accepted', () => {
    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]) {
      const b = Buffer.alloc(2);
      b.writeUInt16BE(code);
      assert.deepEqual(parse([rawFrame({ opcode: CLOSE, payload: b })]), [['close', code, '']], String(code));
    }
  });

  test('data after a close frame is ignored, in the same push and later ones', () => {
    const { parser, events } = recorder();
    parser.push(
      Buffer.concat([
        rawFrame({ opcode: TEXT, payload: 'a' }),
        rawFrame({ opcode: CLOSE, payload: closePayload(1001) }),
        rawFrame({ opcode: TEXT, payload: 'b' }),
      ]),
    );
    parser.push(rawFrame({ opcode: TEXT, payload: 'c' }));
    // Even garbage is not reported once closed.
    parser.push(Buffer.from([0xff, 0xff, 0xff]));
    assert.deepEqual(events, [
      ['message', TEXT, hex('a')],
      ['close', 1001, ''],
    ]);
  });

  test('the header may arrive one byte at a time', () => {
    for (const frame of [
      rawFrame({ opcode: TEXT, payload: 'hello' }),
      rawFrame({ opcode: BINARY, payload: Buffer.alloc(300, 1) }),
      rawFrame({ opcode: BINARY, payload: Buffer.alloc(70000, 2) }),
      rawFrame({ opcode: PING }),
    ]) {
      const whole = parse([frame]);
      assert.equal(whole.length, 1);
      for (let cut = 0; cut <= 14; cut++) {
        assert.deepEqual(feed([frame.subarray(0, cut), frame.subarray(cut)]), whole, `cut at ${cut}`);
      }
      assert.deepEqual(feed(chunk(frame, [1])), whole);
    }
  });

  test('a message exactly at maxMessageSize is accepted, also when fragmented', () => {
    const opts: ParserOptions = { maxMessageSize: 10, expectMasked: true };
    assert.deepEqual(parse([rawFrame({ opcode: BINARY, payload: Buffer.alloc(10) })], opts), [
      ['message', BINARY, '00'.repeat(10)],
    ]);
    assert.deepEqual(
      parse(
        [
          rawFrame({ opcode: BINARY, payload: Buffer.alloc(4), fin: false }),
          rawFrame({ opcode: CONT, payload: Buffer.alloc(6) }),
          // The count restarts with each message.
          rawFrame({ opcode: TEXT, payload: 'x'.repeat(10) }),
        ],
        opts,
      ),
      [
        ['message', BINARY, '00'.repeat(10)],
        ['message', TEXT, hex('x'.repeat(10))],
      ],
    );
  });

  test('the limit does not apply to control frames', () => {
    const events = parse([rawFrame({ opcode: PING, payload: Buffer.alloc(100, 1) })], {
      maxMessageSize: 10,
      expectMasked: true,
    });
    assert.deepEqual(events, [['ping', '01'.repeat(100)]]);
  });

  test('binary messages are not UTF-8 checked', () => {
    assert.deepEqual(parse([rawFrame({ opcode: BINARY, payload: Uint8Array.from([0xc0, 0xff]) })]), [
      ['message', BINARY, 'c0ff'],
    ]);
  });

  test('finished is false while waiting for more bytes', () => {
    const { parser, events } = recorder();
    const frame = rawFrame({ opcode: TEXT, payload: 'hello' });
    parser.push(frame.subarray(0, 8));
    assert.equal(parser.finished, false);
    assert.deepEqual(events, []);
    parser.push(frame.subarray(8));
    assert.deepEqual(events, [['message', TEXT, hex('hello')]]);
    assert.equal(parser.finished, false);
  });
});

// ---------------------------------------------------------------------------
// Rejections
// ---------------------------------------------------------------------------

describe('FrameParser: rejections', () => {
  /** Asserts that `frames` fed in one piece end in exactly one error with `code`. */
  function rejects(frames: Buffer[], code: number, options: ParserOptions = SERVER): Event[] {
    const events = parse(frames, options);
    assert.equal(errorCode(events), code, JSON.stringify(events));
    return events;
  }

  test('RSV2 and RSV3 → 1002', () => {
    rejects([rawFrame({ opcode: TEXT, payload: 'a', rsv2: true })], 1002);
    rejects([rawFrame({ opcode: TEXT, payload: 'a', rsv3: true })], 1002);
    rejects([rawFrame({ opcode: PING, rsv2: true })], 1002);
  });

  test('RSV1 without a negotiated extension → 1002', () => {
    rejects([rawFrame({ opcode: TEXT, payload: 'a', rsv1: true })], 1002);
    rejects([rawFrame({ opcode: BINARY, payload: 'a', rsv1: true })], 1002);
  });

  test('RSV1 on a continuation or control frame → 1002', () => {
    rejects(
      [
        rawFrame({ opcode: TEXT, payload: 'a', fin: false }),
        rawFrame({ opcode: CONT, payload: 'b', rsv1: true }),
      ],
      1002,
    );
    rejects([rawFrame({ opcode: PING, rsv1: true })], 1002);
    rejects([rawFrame({ opcode: CLOSE, rsv1: true })], 1002);
  });

  test('an unmasked client frame (server side) → 1002', () => {
    rejects([rawFrame({ opcode: TEXT, payload: 'a', mask: null })], 1002);
    rejects([rawFrame({ opcode: PING, mask: null })], 1002);
    // Also after valid masked frames.
    const events = rejects(
      [rawFrame({ opcode: TEXT, payload: 'ok' }), rawFrame({ opcode: CLOSE, mask: null })],
      1002,
    );
    assert.deepEqual(events[0], ['message', TEXT, hex('ok')]);
  });

  test('a masked frame when expectMasked=false (client side) → 1002', () => {
    rejects([rawFrame({ opcode: TEXT, payload: 'a' })], 1002, CLIENT);
    rejects([rawFrame({ opcode: PONG })], 1002, CLIENT);
  });

  test('reserved opcodes 3–7 and 11–15 → 1002', () => {
    for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
      rejects([rawFrame({ opcode, payload: 'a' })], 1002);
      rejects([rawFrame({ opcode, fin: false })], 1002);
      // Inside a fragmented message too.
      rejects([rawFrame({ opcode: BINARY, payload: 'a', fin: false }), rawFrame({ opcode })], 1002);
    }
  });

  test('fragmented control frames → 1002', () => {
    for (const opcode of [CLOSE, PING, PONG]) {
      rejects([rawFrame({ opcode, payload: 'a', fin: false })], 1002);
    }
  });

  test('control frame payload over 125 bytes → 1002', () => {
    for (const opcode of [CLOSE, PING, PONG]) {
      rejects([rawFrame({ opcode, payload: Buffer.alloc(126) })], 1002);
      rejects([rawFrame({ opcode, payload: Buffer.alloc(70000) })], 1002);
    }
    // 125 is the maximum that is accepted.
    assert.deepEqual(parse([rawFrame({ opcode: PING, payload: Buffer.alloc(125) })]), [
      ['ping', '00'.repeat(125)],
    ]);
  });

  test('a control frame over 125 bytes is rejected from its header alone', () => {
    const { parser, events } = recorder();
    parser.push(rawFrame({ opcode: PING, payload: Buffer.alloc(126) }).subarray(0, 8));
    assert.equal(errorCode(events), 1002);
  });

  test('continuation without a started message → 1002', () => {
    rejects([rawFrame({ opcode: CONT, payload: 'a' })], 1002);
    rejects([rawFrame({ opcode: CONT, payload: 'a', fin: false })], 1002);
    // After a complete message the next continuation has nothing to continue.
    rejects([rawFrame({ opcode: TEXT, payload: 'a' }), rawFrame({ opcode: CONT, payload: 'b' })], 1002);
  });

  test('a new data frame inside a fragmented message → 1002', () => {
    rejects(
      [rawFrame({ opcode: TEXT, payload: 'a', fin: false }), rawFrame({ opcode: TEXT, payload: 'b' })],
      1002,
    );
    rejects(
      [rawFrame({ opcode: TEXT, payload: 'a', fin: false }), rawFrame({ opcode: BINARY, payload: 'b' })],
      1002,
    );
    rejects(
      [
        rawFrame({ opcode: BINARY, payload: 'a', fin: false }),
        rawFrame({ opcode: PING }),
        rawFrame({ opcode: BINARY, payload: 'b', fin: false }),
      ],
      1002,
    );
  });

  test('non-minimal 16-bit length → 1002', () => {
    for (const length of [0, 1, 125]) {
      rejects([rawFrame({ opcode: BINARY, payload: Buffer.alloc(length), lengthForm: 16 })], 1002);
    }
    // 126 in 16 bits is minimal.
    assert.equal(
      parse([rawFrame({ opcode: BINARY, payload: Buffer.alloc(126), lengthForm: 16 })])[0]![0],
      'message',
    );
  });

  test('non-minimal 64-bit length → 1002', () => {
    for (const length of [0, 125, 126, 65535]) {
      rejects([rawFrame({ opcode: BINARY, payload: Buffer.alloc(length), lengthForm: 64 })], 1002);
    }
    assert.equal(
      parse([rawFrame({ opcode: BINARY, payload: Buffer.alloc(65536), lengthForm: 64 })])[0]![0],
      'message',
    );
  });

  test('64-bit length with the most significant bit set → 1002 (even with no size limit)', () => {
    for (const declared of [0x8000000000000000n, 0xffffffffffffffffn, 0x8000000000010000n]) {
      const { parser, events } = recorder(SERVER);
      parser.push(rawFrame({ opcode: BINARY, lengthForm: 64, declaredLength: declared }));
      assert.equal(errorCode(events), 1002, declared.toString(16));
    }
  });

  test('read limit: 1009 from the header alone, before the payload arrives', () => {
    const opts: ParserOptions = { maxMessageSize: 1000, expectMasked: true };
    const frame = rawFrame({ opcode: BINARY, payload: Buffer.alloc(1001) });
    const { parser, events } = recorder(opts);
    parser.push(frame.subarray(0, 8)); // 2 + 2 (length) + 4 (mask): the header only
    assert.equal(errorCode(events), 1009);
    assert.equal(parser.finished, true);
    parser.push(frame.subarray(8));
    assert.equal(events.length, 1);
  });

  test('read limit: huge 64-bit lengths are refused at the header', () => {
    const opts: ParserOptions = { maxMessageSize: 1 << 20, expectMasked: true };
    for (const declared of [1n << 32n, (1n << 53n) + 1n, 0x7fffffffffffffffn]) {
      const { parser, events } = recorder(opts);
      parser.push(rawFrame({ opcode: TEXT, lengthForm: 64, declaredLength: declared }));
      assert.equal(errorCode(events), 1009, declared.toString(16));
    }
  });

  test('read limit: counted across fragments, refused at the header of the fragment that overflows', () => {
    const opts: ParserOptions = { maxMessageSize: 100, expectMasked: true };
    const first = rawFrame({ opcode: TEXT, payload: 'a'.repeat(60), fin: false });
    const ping = rawFrame({ opcode: PING, payload: 'p' });
    const second = rawFrame({ opcode: CONT, payload: 'b'.repeat(41) });
    const { parser, events } = recorder(opts);
    parser.push(Buffer.concat([first, ping]));
    assert.deepEqual(events, [['ping', hex('p')]]);
    parser.push(second.subarray(0, 6)); // header of the second fragment only
    assert.equal(errorCode(events), 1009);
    // The same stream with a 40-byte second fragment is fine.
    assert.deepEqual(parse([first, rawFrame({ opcode: CONT, payload: 'b'.repeat(40) })], opts), [
      ['message', TEXT, hex('a'.repeat(60) + 'b'.repeat(40))],
    ]);
  });

  test('invalid UTF-8 fails fast: reported while the frame is still incomplete', () => {
    const payload = Buffer.concat([Buffer.from('abc'), Buffer.from([0xff]), Buffer.alloc(1000, 0x61)]);
    const frame = rawFrame({ opcode: TEXT, payload });
    const { parser, events } = recorder();
    parser.push(frame.subarray(0, 8 + 2)); // header + "ab"
    assert.deepEqual(events, []);
    parser.push(frame.subarray(10, 12)); // "c" + 0xFF
    assert.equal(errorCode(events), 1007);
    parser.push(frame.subarray(12));
    assert.equal(events.length, 1);
  });

  test('an impossible UTF-8 prefix at the end of the bytes so far fails fast', () => {
    // ED A0 starts a surrogate: no continuation can make it valid.
    const frame = rawFrame({ opcode: TEXT, payload: Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x61]) });
    const { parser, events } = recorder();
    parser.push(frame.subarray(0, 6 + 3));
    assert.equal(errorCode(events), 1007);
  });

  test('invalid UTF-8 across a fragment boundary → 1007, reported at the offending fragment', () => {
    const first = rawFrame({ opcode: TEXT, payload: Buffer.from([0x61, 0xe2, 0x82]), fin: false });
    const second = rawFrame({ opcode: CONT, payload: Buffer.from([0x41, 0x42]) });
    const { parser, events } = recorder();
    parser.push(first);
    assert.deepEqual(events, []);
    parser.push(second.subarray(0, 7)); // header + 0x41
    assert.equal(errorCode(events), 1007);
    // Overlong and surrogate forms split across fragments.
    rejects(
      [
        rawFrame({ opcode: TEXT, payload: Buffer.from([0xe0]), fin: false }),
        rawFrame({ opcode: CONT, payload: Buffer.from([0x80, 0x80]) }),
      ],
      1007,
    );
    rejects(
      [
        rawFrame({ opcode: TEXT, payload: Buffer.from([0xed]), fin: false }),
        rawFrame({ opcode: CONT, payload: Buffer.from([0xa0, 0x80]) }),
      ],
      1007,
    );
  });

  test('a text message ending inside a UTF-8 sequence → 1007', () => {
    rejects([rawFrame({ opcode: TEXT, payload: Buffer.from([0x61, 0xe2, 0x82]) })], 1007);
    rejects([rawFrame({ opcode: TEXT, payload: Buffer.from([0xf0, 0x9f, 0x98]) })], 1007);
    rejects(
      [
        rawFrame({ opcode: TEXT, payload: Buffer.from([0x61]), fin: false }),
        rawFrame({ opcode: CONT, payload: Buffer.from([0xc3]) }),
      ],
      1007,
    );
    // An empty final fragment does not complete a pending code point.
    rejects(
      [rawFrame({ opcode: TEXT, payload: Buffer.from([0xc3]), fin: false }), rawFrame({ opcode: CONT })],
      1007,
    );
  });

  test('invalid UTF-8 inside a single text frame → 1007', () => {
    for (const bad of [[0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x80], [0xf5], [0xff]]) {
      rejects([rawFrame({ opcode: TEXT, payload: Buffer.from(bad) })], 1007);
    }
  });

  test('close payload of 1 byte → 1002', () => {
    rejects([rawFrame({ opcode: CLOSE, payload: Buffer.from([0x03]) })], 1002);
  });

  test('invalid close codes → 1002', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
      const b = Buffer.alloc(2);
      b.writeUInt16BE(code);
      rejects([rawFrame({ opcode: CLOSE, payload: b })], 1002);
      rejects([rawFrame({ opcode: CLOSE, payload: Buffer.concat([b, Buffer.from('why')]) })], 1002);
    }
  });

  test('invalid UTF-8 close reason → 1007', () => {
    for (const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0x61, 0xc0, 0xaf]]) {
      rejects(
        [rawFrame({ opcode: CLOSE, payload: Buffer.concat([closePayload(1000), Buffer.from(bad)]) })],
        1007,
      );
    }
  });

  test('nothing is reported after an error', () => {
    const { parser, events } = recorder();
    parser.push(
      Buffer.concat([
        rawFrame({ opcode: TEXT, payload: 'ok' }),
        rawFrame({ opcode: 3 }),
        rawFrame({ opcode: TEXT, payload: 'ignored' }),
        rawFrame({ opcode: 4 }),
      ]),
    );
    parser.push(rawFrame({ opcode: TEXT, payload: 'later' }));
    parser.push(rawFrame({ opcode: CLOSE, payload: closePayload(1000) }));
    parser.push(Buffer.from([0x83, 0x00]));
    assert.equal(parser.finished, true);
    assert.equal(events.length, 2);
    assert.deepEqual(events[0], ['message', TEXT, hex('ok')]);
    assert.equal(errorCode(events), 1002);
  });

  test('an error inside a fragmented message drops the partial message', () => {
    const events = parse([
      rawFrame({ opcode: TEXT, payload: 'part', fin: false }),
      rawFrame({ opcode: CONT, payload: 'x', rsv2: true }),
    ]);
    assert.equal(events.length, 1);
    assert.equal(errorCode(events), 1002);
  });
});

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/** A control frame in a generated stream. */
interface GenControl {
  kind: 'control';
  opcode: typeof PING | typeof PONG;
  payload: Uint8Array;
}

/** A data message, its fragments, and control frames interleaved between them. */
interface GenMessage {
  kind: 'message';
  opcode: typeof TEXT | typeof BINARY;
  payload: Uint8Array;
  cuts: number[];
  interleaved: Array<GenControl | null>;
}

const keyArb = fc.uint8Array({ minLength: 4, maxLength: 4 });

const controlArb: fc.Arbitrary<GenControl> = fc.record({
  kind: fc.constant('control' as const),
  opcode: fc.constantFrom(PING, PONG),
  payload: fc.uint8Array({ maxLength: 125 }),
});

const messageArb: fc.Arbitrary<GenMessage> = fc.oneof(
  fc.record({
    kind: fc.constant('message' as const),
    opcode: fc.constant(TEXT),
    payload: fc.string({ unit: 'binary', maxLength: 80 }).map((s) => new Uint8Array(Buffer.from(s, 'utf8'))),
    cuts: fc.array(fc.nat({ max: 320 }), { maxLength: 4 }),
    interleaved: fc.array(fc.option(controlArb, { nil: null }), { maxLength: 4 }),
  }),
  fc.record({
    kind: fc.constant('message' as const),
    opcode: fc.constant(BINARY),
    payload: fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n)),
    ),
    cuts: fc.array(fc.nat({ max: 70_000 }), { maxLength: 4 }),
    interleaved: fc.array(fc.option(controlArb, { nil: null }), { maxLength: 4 }),
  }),
);

const closeArb = fc.option(
  fc.record({
    code: fc.option(fc.constantFrom(1000, 1001, 1011, 3000, 4000, 4999), { nil: undefined }),
    reason: fc.string({ unit: 'binary', maxLength: 30 }),
  }),
  { nil: null },
);

/** Chunk sizes mixing tiny and large pieces. */
const sizesArb = fc.array(
  fc.oneof(
    fc.integer({ min: 1, max: 3 }),
    fc.integer({ min: 1, max: 40 }),
    fc.integer({ min: 1, max: 5000 }),
  ),
  { maxLength: 8 },
);

interface Stream {
  bytes: Buffer;
  expected: Event[];
}

/** Encodes generated items into a byte stream and the events a parser must report for it. */
function buildStream(
  items: Array<GenMessage | GenControl>,
  close: { code: number | undefined; reason: string } | null,
  masked: boolean,
  keys: Uint8Array[],
  trailing: Uint8Array,
): Stream {
  const frames: Buffer[] = [];
  const expected: Event[] = [];
  let k = 0;
  const mask = (): Uint8Array | null => (masked ? keys[k++ % keys.length]! : null);
  for (const item of items) {
    if (item.kind === 'control') {
      frames.push(rawFrame({ opcode: item.opcode, payload: item.payload, mask: mask() }));
      expected.push([item.opcode === PING ? 'ping' : 'pong', hex(item.payload)]);
      continue;
    }
    const bounds = [...new Set(item.cuts.filter((c) => c > 0 && c < item.payload.length))].sort(
      (a, b) => a - b,
    );
    const edges = [0, ...bounds, item.payload.length];
    for (let i = 0; i + 1 < edges.length; i++) {
      const last = i + 2 === edges.length;
      frames.push(
        rawFrame({
          opcode: i === 0 ? item.opcode : CONT,
          payload: item.payload.subarray(edges[i], edges[i + 1]),
          fin: last,
          mask: mask(),
        }),
      );
      const control = last ? null : item.interleaved[i];
      if (control) {
        frames.push(rawFrame({ opcode: control.opcode, payload: control.payload, mask: mask() }));
        expected.push([control.opcode === PING ? 'ping' : 'pong', hex(control.payload)]);
      }
    }
    expected.push(['message', item.opcode, hex(item.payload)]);
  }
  if (close) {
    frames.push(
      rawFrame({
        opcode: CLOSE,
        payload: closePayload(close.code, close.code === undefined ? '' : close.reason),
        mask: mask(),
      }),
    );
    expected.push(['close', close.code, close.code === undefined ? '' : close.reason]);
    // Anything after the close frame must be ignored.
    frames.push(Buffer.from(trailing));
  }
  return { bytes: Buffer.concat(frames), expected };
}

/** Input bytes and the options of the parser that reads them. */
interface NoisyCase {
  bytes: Buffer;
  options: ParserOptions;
}

/**
 * Arbitrary bytes, mixing pure noise with valid streams that have bytes
 * overwritten and garbage appended. The parser usually expects the stream's
 * own masking, so that parsing gets past the first header.
 */
const noisyArb: fc.Arbitrary<NoisyCase> = fc
  .tuple(
    fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc
        .tuple(
          fc.array(fc.oneof(messageArb, controlArb), { maxLength: 4 }),
          closeArb,
          fc.array(keyArb, { minLength: 1, maxLength: 3 }),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
          fc.uint8Array({ maxLength: 30 }),
        )
        .map(([items, close, keys, flips, tail]) => {
          const b = Buffer.from(buildStream(items, close, true, keys, new Uint8Array(0)).bytes);
          for (const [at, value] of flips) if (b.length > 0) b[at % b.length] = value;
          return Buffer.concat([b, tail]);
        }),
    ),
    fc.integer({ min: 0, max: 9 }),
    fc.constantFrom(0, 0, 16, 200, 100_000),
  )
  .map(([bytes, wrongSide, maxMessageSize]) => ({
    bytes,
    options: { maxMessageSize, expectMasked: wrongSide !== 0 },
  }));

describe('FrameParser: properties', () => {
  test('(a) valid frame streams: any chunking yields the same events as one piece, and the original messages', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(messageArb, controlArb), { maxLength: 6 }),
        closeArb,
        fc.boolean(),
        fc.array(keyArb, { minLength: 1, maxLength: 4 }),
        fc.uint8Array({ maxLength: 20 }),
        sizesArb,
        (items, close, masked, keys, trailing, sizes) => {
          const { bytes, expected } = buildStream(items, close, masked, keys, trailing);
          const options = masked ? SERVER : CLIENT;
          const whole = feed([bytes], options);
          assert.deepEqual(whole, expected);
          assert.deepEqual(feed(chunk(bytes, sizes), options), whole);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('(b) arbitrary bytes never throw; they end waiting, or in exactly one error (1002/1007/1009) or close', () => {
    fc.assert(
      fc.property(noisyArb, sizesArb, ({ bytes, options }, sizes) => {
        const { parser, events } = recorder(options);
        for (const c of chunk(bytes, sizes)) parser.push(Buffer.from(c));
        const terminal = events.filter((e) => e[0] === 'error' || e[0] === 'close');
        assert.ok(terminal.length <= 1, JSON.stringify(events));
        if (terminal.length === 1) {
          assert.equal(events[events.length - 1], terminal[0], 'error/close must be the last event');
          if (terminal[0]![0] === 'error') assert.ok([1002, 1007, 1009].includes(terminal[0]![1]));
          assert.equal(parser.finished, true);
        } else {
          assert.equal(parser.finished, false);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('(c) arbitrary bytes: the events do not depend on the chunking', () => {
    fc.assert(
      fc.property(noisyArb, sizesArb, ({ bytes, options }, sizes) => {
        assert.deepEqual(feed(chunk(bytes, sizes), options), feed([bytes], options));
        // Byte at a time too, where that stays cheap.
        if (bytes.length <= 8192) assert.deepEqual(feed(chunk(bytes, [1]), options), feed([bytes], options));
      }),
      { numRuns: 2000 },
    );
  });
});
