import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { Utf8Validator } from '../../../src/protocol/utf8.ts';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

/** Feeds `chunks` in order; returns the index of the first rejected chunk, or -1. */
function firstRejected(v: Utf8Validator, chunks: Uint8Array[]): number {
  for (let i = 0; i < chunks.length; i++) {
    if (!v.push(chunks[i]!)) return i;
  }
  return -1;
}

/** Whole-input verdict of the incremental validator, as one piece. */
function incremental(data: Uint8Array, chunks: Uint8Array[] = [data]): boolean {
  const v = new Utf8Validator();
  return firstRejected(v, chunks) === -1 && v.complete;
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

/** Length of the shortest prefix of `data` that no valid UTF-8 can start with; -1 if none. */
function shortestInvalidPrefix(data: Uint8Array): number {
  // A prefix is extendable iff it is valid or valid once a few continuation
  // bytes are appended; try every 1–3 byte completion the grammar allows.
  const completions = [
    [],
    [0x80],
    [0x80, 0x80],
    [0x80, 0x80, 0x80],
    [0xa0],
    [0xa0, 0x80],
    [0x90],
    [0x90, 0x80],
    [0x90, 0x80, 0x80],
  ].map((c) => Buffer.from(c));
  for (let n = 1; n <= data.length; n++) {
    const prefix = Buffer.from(data.subarray(0, n));
    if (!completions.some((c) => isUtf8(Buffer.concat([prefix, c])))) return n;
  }
  return -1;
}

const VALID: Array<[string, Uint8Array]> = [
  ['empty', bytes()],
  ['ASCII', Buffer.from('hello, world')],
  ['NUL byte', bytes(0x00)],
  ['U+007F', bytes(0x7f)],
  ['U+0080 (smallest 2-byte)', bytes(0xc2, 0x80)],
  ['U+07FF (largest 2-byte)', bytes(0xdf, 0xbf)],
  ['U+0800 (smallest 3-byte)', bytes(0xe0, 0xa0, 0x80)],
  ['U+D7FF (just below surrogates)', bytes(0xed, 0x9f, 0xbf)],
  ['U+E000 (just above surrogates)', bytes(0xee, 0x80, 0x80)],
  ['U+FFFF', bytes(0xef, 0xbf, 0xbf)],
  ['U+10000 (smallest 4-byte)', bytes(0xf0, 0x90, 0x80, 0x80)],
  ['U+10FFFF (largest code point)', bytes(0xf4, 0x8f, 0xbf, 0xbf)],
  ['mixed text', Buffer.from('κόσμε € 𝄞 日本語 🎉')],
];

const INVALID: Array<[string, Uint8Array]> = [
  ['overlong 2-byte NUL (C0 80)', bytes(0xc0, 0x80)],
  ['overlong 2-byte (C1 BF)', bytes(0xc1, 0xbf)],
  ['overlong 3-byte (E0 80 80)', bytes(0xe0, 0x80, 0x80)],
  ['overlong 3-byte (E0 9F BF)', bytes(0xe0, 0x9f, 0xbf)],
  ['overlong 4-byte (F0 80 80 80)', bytes(0xf0, 0x80, 0x80, 0x80)],
  ['overlong 4-byte (F0 8F BF BF)', bytes(0xf0, 0x8f, 0xbf, 0xbf)],
  ['high surrogate U+D800', bytes(0xed, 0xa0, 0x80)],
  ['low surrogate U+DFFF', bytes(0xed, 0xbf, 0xbf)],
  ['surrogate pair encoded as CESU-8', bytes(0xed, 0xa0, 0xbd, 0xed, 0xb2, 0xa9)],
  ['U+110000 (F4 90 80 80)', bytes(0xf4, 0x90, 0x80, 0x80)],
  ['F5 lead byte', bytes(0xf5, 0x80, 0x80, 0x80)],
  ['F7 BF BF BF', bytes(0xf7, 0xbf, 0xbf, 0xbf)],
  ['F8 (5-byte form)', bytes(0xf8, 0x88, 0x80, 0x80, 0x80)],
  ['FC (6-byte form)', bytes(0xfc, 0x84, 0x80, 0x80, 0x80, 0x80)],
  ['FE', bytes(0xfe)],
  ['FF', bytes(0xff)],
  ['bare continuation 80', bytes(0x80)],
  ['bare continuation BF after ASCII', bytes(0x41, 0xbf)],
  ['too many continuations', bytes(0xc3, 0xa9, 0xa9)],
  ['lead byte followed by ASCII', bytes(0xc3, 0x41)],
  ['3-byte lead followed by a lead', bytes(0xe2, 0x82, 0xe2, 0x82, 0xac)],
  ['truncated 2-byte at end', bytes(0x41, 0xc3)],
  ['truncated 3-byte at end', bytes(0xe2, 0x82)],
  ['truncated 4-byte at end', bytes(0xf0, 0x9f, 0x98)],
  ['lone C0', bytes(0xc0)],
  ['lone C1', bytes(0xc1)],
];

describe('Utf8Validator: whole inputs', () => {
  for (const [name, data] of VALID) {
    test(`accepts ${name}`, () => {
      assert.equal(isUtf8(data), true, 'fixture must be valid');
      assert.equal(incremental(data), true);
      assert.equal(Utf8Validator.validate(data), true);
    });
  }
  for (const [name, data] of INVALID) {
    test(`rejects ${name}`, () => {
      assert.equal(isUtf8(data), false, 'fixture must be invalid');
      assert.equal(incremental(data), false);
      assert.equal(Utf8Validator.validate(data), false);
    });
  }

  test('every single byte 0xC0, 0xC1, 0xF5–0xFF is rejected as soon as it is pushed', () => {
    for (const b of [0xc0, 0xc1, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff]) {
      // Alone, at the end of a longer chunk, and after a complete code point.
      assert.equal(new Utf8Validator().push(bytes(b)), false, b.toString(16));
      assert.equal(new Utf8Validator().push(bytes(0x61, 0x62, 0x63, 0x64, b)), false, b.toString(16));
      const v = new Utf8Validator();
      assert.equal(v.push(bytes(0xc3, 0xa9)), true);
      assert.equal(v.push(bytes(b)), false, b.toString(16));
    }
  });

  test('every 2-byte lead C2–DF with every continuation is accepted', () => {
    for (let lead = 0xc2; lead <= 0xdf; lead++) {
      for (let cont = 0x80; cont <= 0xbf; cont++) {
        assert.equal(incremental(bytes(lead, cont)), true);
        assert.equal(incremental(bytes(lead), [bytes(lead), bytes(cont)]), true);
      }
    }
  });
});

describe('Utf8Validator: split points', () => {
  const samples = [
    bytes(0xc3, 0xa9),
    bytes(0xe2, 0x82, 0xac),
    bytes(0xe0, 0xa0, 0x80),
    bytes(0xed, 0x9f, 0xbf),
    bytes(0xf0, 0x9f, 0x98, 0x80),
    bytes(0xf4, 0x8f, 0xbf, 0xbf),
    Buffer.from('aé€😀b'),
  ];

  test('every two-way split of a valid sequence is accepted', () => {
    for (const s of samples) {
      for (let cut = 0; cut <= s.length; cut++) {
        const v = new Utf8Validator();
        assert.equal(v.push(s.subarray(0, cut)), true, `${Buffer.from(s).toString('hex')} @${cut}`);
        assert.equal(v.push(s.subarray(cut)), true, `${Buffer.from(s).toString('hex')} @${cut}`);
        assert.equal(v.complete, true);
      }
    }
  });

  test('byte-by-byte feeding of a valid sequence is accepted, complete only on boundaries', () => {
    const text = Buffer.from('x€😀é');
    const boundaries = new Set([0, 1, 4, 8, 10]);
    const v = new Utf8Validator();
    assert.equal(v.complete, true);
    for (let i = 0; i < text.length; i++) {
      assert.equal(v.push(text.subarray(i, i + 1)), true, `byte ${i}`);
      assert.equal(v.complete, boundaries.has(i + 1), `complete after ${i + 1} bytes`);
    }
  });

  test('every three-way split of a 4-byte sequence surrounded by ASCII is accepted', () => {
    const s = Buffer.from('ab😀cd');
    for (let a = 0; a <= s.length; a++) {
      for (let b = a; b <= s.length; b++) {
        assert.equal(incremental(s, [s.subarray(0, a), s.subarray(a, b), s.subarray(b)]), true, `${a},${b}`);
      }
    }
  });

  test('invalid continuation after a split is rejected in the chunk that carries it', () => {
    const cases: Array<[Uint8Array, Uint8Array]> = [
      [bytes(0xe0), bytes(0x9f, 0xbf)], // overlong
      [bytes(0xed), bytes(0xa0, 0x80)], // surrogate
      [bytes(0xf0), bytes(0x8f, 0xbf, 0xbf)], // overlong
      [bytes(0xf4), bytes(0x90, 0x80, 0x80)], // > U+10FFFF
      [bytes(0xe2, 0x82), bytes(0x41)], // ASCII inside a sequence
      [bytes(0xf0, 0x9f, 0x98), bytes(0xc3, 0xa9)], // lead inside a sequence
      [bytes(0x41, 0xc3), bytes(0xa9, 0xa9)], // one continuation too many
    ];
    for (const [first, second] of cases) {
      const v = new Utf8Validator();
      assert.equal(v.push(first), true, Buffer.from(first).toString('hex'));
      assert.equal(v.complete, false);
      assert.equal(v.push(second), false, Buffer.from(second).toString('hex'));
    }
  });

  test('truncated at the end: every chunk accepted but not complete', () => {
    for (const s of [
      bytes(0xc3),
      bytes(0xe2, 0x82),
      bytes(0xf0, 0x9f, 0x98),
      bytes(0x61, 0xf4, 0x8f, 0xbf),
    ]) {
      const v = new Utf8Validator();
      assert.equal(v.push(s), true);
      assert.equal(v.complete, false);
    }
  });

  test('reset discards a pending code point', () => {
    const v = new Utf8Validator();
    assert.equal(v.push(bytes(0xe2, 0x82)), true);
    v.reset();
    assert.equal(v.complete, true);
    // 0x41 would have been invalid inside the pending sequence.
    assert.equal(v.push(bytes(0x41)), true);
    assert.equal(v.complete, true);
    // A narrowed range (after E0) is reset too.
    assert.equal(v.push(bytes(0xe0)), true);
    v.reset();
    assert.equal(v.push(bytes(0xc3, 0x80)), true);
    assert.equal(v.complete, true);
  });

  test('an empty chunk keeps the state', () => {
    const v = new Utf8Validator();
    assert.equal(v.push(bytes(0xe2)), true);
    assert.equal(v.push(bytes()), true);
    assert.equal(v.complete, false);
    assert.equal(v.push(bytes(0x82, 0xac)), true);
    assert.equal(v.complete, true);
  });
});

describe('Utf8Validator: fail-fast', () => {
  test('returns false on the first invalid chunk, not at the end', () => {
    const chunks = [Buffer.from('héllo '), bytes(0xed), bytes(0xa0), bytes(0x80), Buffer.from(' world')];
    assert.equal(firstRejected(new Utf8Validator(), chunks), 2);
  });

  test('a stray byte in the middle of a long chunk fails that chunk', () => {
    const big = Buffer.alloc(4096, 0x61);
    big[2000] = 0xff;
    const v = new Utf8Validator();
    assert.equal(v.push(Buffer.alloc(100, 0x62)), true);
    assert.equal(v.push(big), false);
  });

  test('an impossible prefix at the end of a chunk fails before the rest arrives', () => {
    // E0 80 can never be completed (overlong), F4 90 neither (> U+10FFFF), ED A0 neither (surrogate).
    for (const tail of [bytes(0xe0, 0x80), bytes(0xf4, 0x90), bytes(0xed, 0xa0), bytes(0xf0, 0x80)]) {
      const chunk = Buffer.concat([Buffer.from('abc'), tail]);
      assert.equal(new Utf8Validator().push(chunk), false, Buffer.from(tail).toString('hex'));
    }
  });
});

describe('Utf8Validator: properties', () => {
  /** Bytes biased towards UTF-8 structure so that valid inputs are common too. */
  const utf8ish = fc.oneof(
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    {
      weight: 3,
      arbitrary: fc
        .array(
          fc.oneof(
            {
              weight: 4,
              arbitrary: fc.string({ unit: 'binary', maxLength: 8 }).map((s) => Buffer.from(s, 'utf8')),
            },
            {
              weight: 1,
              arbitrary: fc.constantFrom(
                bytes(0x80),
                bytes(0xbf),
                bytes(0xc0),
                bytes(0xc1),
                bytes(0xc2),
                bytes(0xe0),
                bytes(0xed),
                bytes(0xf0),
                bytes(0xf4),
                bytes(0xf5),
                bytes(0xff),
                bytes(0xa0),
                bytes(0x90),
                bytes(0x8f),
              ),
            },
          ),
          { maxLength: 12 },
        )
        .map((parts) => new Uint8Array(Buffer.concat(parts))),
    },
  );
  const sizes = fc.array(fc.integer({ min: 1, max: 7 }), { maxLength: 6 });

  test('incremental verdict over any chunking equals isUtf8 of the whole', () => {
    fc.assert(
      fc.property(utf8ish, sizes, (data, cut) => {
        assert.equal(incremental(data, chunk(data, cut)), isUtf8(data));
      }),
      { numRuns: 10000 },
    );
  });

  test('rejection happens in the chunk that completes the shortest invalid prefix', () => {
    fc.assert(
      fc.property(utf8ish, sizes, (data, cut) => {
        const chunks = chunk(data, cut);
        const bad = shortestInvalidPrefix(data);
        const rejectedAt = firstRejected(new Utf8Validator(), chunks);
        if (bad === -1) {
          assert.equal(rejectedAt, -1);
          return;
        }
        let end = 0;
        let expected = -1;
        for (let i = 0; i < chunks.length; i++) {
          end += chunks[i]!.length;
          if (end >= bad) {
            expected = i;
            break;
          }
        }
        assert.equal(rejectedAt, expected);
      }),
      { numRuns: 10000 },
    );
  });
});
