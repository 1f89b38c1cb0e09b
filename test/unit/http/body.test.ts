// Bounded JSON bodies: the nesting depth is read off the text (strings and
// their escapes included) before JSON.parse runs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonDepthExceeds, parseJsonBody } from '../../../src/http/body.ts';

test('depth counts arrays and objects alike, and only outside strings', () => {
  assert.equal(jsonDepthExceeds('[]', 1), false);
  assert.equal(jsonDepthExceeds('[[]]', 1), true);
  assert.equal(jsonDepthExceeds('{"a":{"b":[1]}}', 3), false);
  assert.equal(jsonDepthExceeds('{"a":{"b":[1]}}', 2), true);
  assert.equal(jsonDepthExceeds('[[],[],[],[]]', 2), false, 'siblings do not add up');
  assert.equal(jsonDepthExceeds('["[[[[", "{{{{"]', 1), false);
});

test('escaped quotes and backslashes do not end or start a string early', () => {
  // The string is `\"[[[[` : its escaped quote does not close it.
  assert.equal(jsonDepthExceeds(String.raw`["\"[[[["]`, 1), false);
  // The string is a lone backslash; the brackets after it are real.
  assert.equal(jsonDepthExceeds(String.raw`["\\", [[]]]`, 2), true);
  assert.equal(jsonDepthExceeds(String.raw`["\\", [[]]]`, 3), false);
});

test('parseJsonBody: a value, or why not', () => {
  assert.deepEqual(parseJsonBody(Buffer.from('{"a":[1,"é"]}'), 2), { ok: true, value: { a: [1, 'é'] } });
  assert.deepEqual(parseJsonBody(Buffer.from('{"a":[[1]]}'), 2), { ok: false, reason: 'too_deep' });
  assert.deepEqual(parseJsonBody(Buffer.from('{"a":'), 2), { ok: false, reason: 'invalid_json' });
  assert.deepEqual(parseJsonBody(Buffer.from([0x22, 0xff, 0x22]), 2), { ok: false, reason: 'not_utf8' });
  assert.deepEqual(parseJsonBody(Buffer.from('null'), 0), { ok: true, value: null });
});

test('a megabyte of nesting is refused in one pass, without building anything', () => {
  const text = '['.repeat(1 << 20);
  const started = performance.now();
  assert.deepEqual(parseJsonBody(Buffer.from(text), 64), { ok: false, reason: 'too_deep' });
  assert.ok(performance.now() - started < 1_000);
});
