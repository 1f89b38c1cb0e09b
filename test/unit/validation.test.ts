import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  ROOM_NAME_MAX_BYTES,
  defaultTextValidationOptions,
  isValidRoomName,
  sanitizeForLogging,
  validateTextMessage,
  type TextValidationResult,
} from '../../src/hub/validation.ts';

const enc = new TextEncoder();
const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

function closeCode(r: TextValidationResult): number | undefined {
  return r.ok ? undefined : r.closeCode;
}

describe('isValidRoomName', () => {
  test('accepts every allowed character class', () => {
    for (const room of [
      'default',
      'A',
      'z',
      '0',
      '9',
      'a.b',
      'a_b',
      'a:b',
      'a-b',
      'Room-1.2_x:y',
      '...',
      ':',
    ]) {
      assert.equal(isValidRoomName(room), true, room);
    }
  });

  test('length limit is 128 bytes', () => {
    assert.equal(ROOM_NAME_MAX_BYTES, 128);
    assert.equal(isValidRoomName('a'.repeat(128)), true);
    assert.equal(isValidRoomName('a'.repeat(129)), false);
  });

  test('rejects the empty name', () => {
    assert.equal(isValidRoomName(''), false);
  });

  test('rejects multibyte characters, even when short', () => {
    for (const room of ['é', 'caf\u00e9', '部屋', 'a\u{1f600}', '\u00a0', 'a\u0130']) {
      assert.equal(isValidRoomName(room), false, room);
    }
  });

  test('rejects each forbidden ASCII character', () => {
    for (let c = 0; c < 0x80; c++) {
      const ch = String.fromCharCode(c);
      const allowed = /[A-Za-z0-9._:-]/.test(ch);
      assert.equal(isValidRoomName(`a${ch}b`), allowed, `code ${c}`);
    }
  });
});

describe('defaultTextValidationOptions', () => {
  test('returns the documented defaults as a fresh object', () => {
    const a = defaultTextValidationOptions();
    assert.deepEqual(a, { maxBytes: 1024 * 1024, allowEmpty: false, allowNewline: true, allowTab: true });
    a.maxBytes = 1;
    assert.equal(defaultTextValidationOptions().maxBytes, 1024 * 1024);
  });
});

describe('validateTextMessage', () => {
  test('accepts ordinary ASCII and multibyte UTF-8', () => {
    assert.deepEqual(validateTextMessage(enc.encode('hello world')), { ok: true });
    assert.deepEqual(validateTextMessage(enc.encode('héllo 部屋 \u{1f600} \u00a0\u00ff')), { ok: true });
  });

  test('size: exactly maxBytes passes, maxBytes + 1 is 1009', () => {
    assert.equal(validateTextMessage(enc.encode('abcd'), { maxBytes: 4 }).ok, true);
    assert.equal(closeCode(validateTextMessage(enc.encode('abcde'), { maxBytes: 4 })), 1009);
    // Limit counts bytes, not characters: 'é' is two bytes.
    assert.equal(closeCode(validateTextMessage(enc.encode('ééé'), { maxBytes: 5 })), 1009);
  });

  test('default limit is 1 MiB', () => {
    const max = new Uint8Array(1024 * 1024).fill(0x61);
    assert.equal(validateTextMessage(max).ok, true);
    const over = new Uint8Array(1024 * 1024 + 1).fill(0x61);
    assert.equal(closeCode(validateTextMessage(over)), 1009);
  });

  test('size is checked before content', () => {
    assert.equal(closeCode(validateTextMessage(bytes(0xff, 0xff, 0xff), { maxBytes: 2 })), 1009);
  });

  test('empty: 1008 by default, ok when allowed', () => {
    const r = validateTextMessage(new Uint8Array(0));
    assert.equal(closeCode(r), 1008);
    assert.ok(!r.ok && r.reason.length > 0);
    assert.equal(validateTextMessage(new Uint8Array(0), { allowEmpty: true }).ok, true);
  });

  test('invalid UTF-8 is 1007', () => {
    const cases: Record<string, Uint8Array> = {
      'lone continuation': bytes(0x61, 0x80),
      'overlong 2-byte NUL': bytes(0xc0, 0x80),
      'overlong 2-byte slash': bytes(0xc1, 0xaf),
      'overlong 3-byte': bytes(0xe0, 0x80, 0xaf),
      'overlong 4-byte': bytes(0xf0, 0x80, 0x80, 0xaf),
      'surrogate high': bytes(0xed, 0xa0, 0x80),
      'surrogate low': bytes(0xed, 0xbf, 0xbf),
      'above U+10FFFF': bytes(0xf4, 0x90, 0x80, 0x80),
      'truncated 2-byte': bytes(0x61, 0xc3),
      'truncated 3-byte': bytes(0xe2, 0x82),
      'truncated 4-byte': bytes(0xf0, 0x9f, 0x98),
      'byte 0xff': bytes(0xff),
      'byte 0xf5': bytes(0xf5, 0x80, 0x80, 0x80),
      'truncated C2 at end': bytes(0x61, 0x62, 0xc2),
    };
    for (const [name, data] of Object.entries(cases)) {
      assert.equal(closeCode(validateTextMessage(data)), 1007, name);
    }
  });

  test('invalid UTF-8 wins over a control character', () => {
    assert.equal(closeCode(validateTextMessage(bytes(0x01, 0xff))), 1007);
  });

  test('every C0 control except newline and tab is 1008', () => {
    for (let c = 0; c < 0x20; c++) {
      const r = validateTextMessage(bytes(0x61, c, 0x62));
      if (c === 0x0a || c === 0x09) assert.equal(r.ok, true, `code ${c}`);
      else assert.equal(closeCode(r), 1008, `code ${c}`);
    }
  });

  test('carriage return is a forbidden control', () => {
    assert.equal(closeCode(validateTextMessage(enc.encode('line\r\n'))), 1008);
  });

  test('DEL is 1008', () => {
    assert.equal(closeCode(validateTextMessage(enc.encode('a\x7fb'))), 1008);
  });

  test('C1 controls U+0080..U+009F are 1008, U+00A0 is fine', () => {
    for (let cp = 0x80; cp <= 0x9f; cp++) {
      const r = validateTextMessage(enc.encode(`x${String.fromCodePoint(cp)}y`));
      assert.equal(closeCode(r), 1008, `U+${cp.toString(16)}`);
    }
    assert.equal(validateTextMessage(enc.encode('x\u00a0\u00c2\u0100y')).ok, true);
  });

  test('newline and tab can be disallowed separately', () => {
    const nl = enc.encode('a\nb');
    const tab = enc.encode('a\tb');
    assert.equal(closeCode(validateTextMessage(nl, { allowNewline: false })), 1008);
    assert.equal(validateTextMessage(tab, { allowNewline: false }).ok, true);
    assert.equal(closeCode(validateTextMessage(tab, { allowTab: false })), 1008);
    assert.equal(validateTextMessage(nl, { allowTab: false }).ok, true);
  });

  test('undefined option fields fall back to the defaults', () => {
    assert.equal(validateTextMessage(enc.encode('a'), { maxBytes: undefined }).ok, true);
    assert.equal(validateTextMessage(enc.encode('a\nb'), { allowNewline: undefined }).ok, true);
  });

  test('works on a subarray view of a larger buffer', () => {
    const whole = enc.encode('\x01ok\x01');
    assert.equal(validateTextMessage(whole.subarray(1, 3)).ok, true);
    assert.equal(closeCode(validateTextMessage(whole)), 1008);
  });

  test('reasons are short enough for a close frame', () => {
    const results = [
      validateTextMessage(new Uint8Array(0)),
      validateTextMessage(bytes(0xff)),
      validateTextMessage(bytes(0x01)),
      validateTextMessage(bytes(0x61, 0x61), { maxBytes: 1 }),
    ];
    for (const r of results) {
      assert.ok(!r.ok);
      assert.ok(Buffer.byteLength(r.reason) <= 123);
    }
  });
});

describe('sanitizeForLogging', () => {
  test('leaves short plain text unchanged', () => {
    assert.equal(sanitizeForLogging('hello, 部屋 \u{1f600}'), 'hello, 部屋 \u{1f600}');
    assert.equal(sanitizeForLogging(enc.encode('hello, 部屋')), 'hello, 部屋');
    assert.equal(sanitizeForLogging(''), '');
  });

  test('truncates to 200 characters by default and marks the cut', () => {
    assert.equal(sanitizeForLogging('a'.repeat(200)), 'a'.repeat(200));
    assert.equal(sanitizeForLogging('a'.repeat(201)), 'a'.repeat(200) + '…');
    assert.equal(sanitizeForLogging(new Uint8Array(10_000).fill(0x62)), 'b'.repeat(200) + '…');
  });

  test('custom maxLen counts code points, never splitting a pair', () => {
    assert.equal(sanitizeForLogging('\u{1f600}\u{1f601}\u{1f602}', 2), '\u{1f600}\u{1f601}…');
    assert.equal(sanitizeForLogging(enc.encode('ééé'), 2), 'éé…');
    assert.equal(sanitizeForLogging('abc', 3), 'abc');
    assert.equal(sanitizeForLogging('abc', 0), '…');
  });

  test('rejects a bad maxLen', () => {
    assert.throws(() => sanitizeForLogging('x', -1), RangeError);
    assert.throws(() => sanitizeForLogging('x', 1.5), RangeError);
    assert.throws(() => sanitizeForLogging('x', Number.NaN), RangeError);
  });

  test('replaces invalid UTF-8 with U+FFFD', () => {
    assert.equal(sanitizeForLogging(bytes(0x61, 0xff, 0x62)), 'a\ufffdb');
    assert.equal(sanitizeForLogging(bytes(0xed, 0xa0, 0x80)), '\ufffd\ufffd\ufffd');
    assert.equal(sanitizeForLogging(bytes(0x61, 0xe2, 0x82)), 'a\ufffd');
  });

  test('replaces lone surrogates in strings with U+FFFD', () => {
    assert.equal(sanitizeForLogging('a\ud800b\udc00'), 'a\ufffdb\ufffd');
  });

  test('escapes control characters visibly', () => {
    assert.equal(sanitizeForLogging('a\nb\rc\td'), 'a\\nb\\rc\\td');
    assert.equal(sanitizeForLogging('\x00\x1b[31m\x7f'), '\\u0000\\u001b[31m\\u007f');
    assert.equal(sanitizeForLogging('x\u0085y\u2028z'), 'x\\u0085y\\u2028z');
    assert.equal(sanitizeForLogging(enc.encode('l1\nl2')), 'l1\\nl2');
  });

  test('escapes backslashes so escapes are unambiguous', () => {
    assert.equal(sanitizeForLogging('a\\nb'), 'a\\\\nb');
    assert.notEqual(sanitizeForLogging('a\\nb'), sanitizeForLogging('a\nb'));
  });

  test('output never contains raw control characters', () => {
    let all = '';
    for (let c = 0; c < 0xa0; c++) all += String.fromCharCode(c);
    const out = sanitizeForLogging(all, 1000);
    const raw = [...out].filter((ch) => {
      const cp = ch.codePointAt(0)!;
      return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
    });
    assert.deepEqual(raw, []);
    assert.ok(out.includes('\\u0085'));
  });

  test('keeps a byte-order mark instead of stripping it', () => {
    assert.equal(sanitizeForLogging(bytes(0xef, 0xbb, 0xbf, 0x61)), '\ufeffa');
  });
});
