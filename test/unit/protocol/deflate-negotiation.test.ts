import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  negotiateDeflate,
  parseExtensions,
  readDeflateAnswer,
  MAX_EXTENSION_ELEMENTS,
  type DeflatePolicy,
} from '../../../src/protocol/deflate-negotiation.ts';

const policy: DeflatePolicy = {
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
  preferClientNoContextTakeover: true,
};

test('a plain offer is answered with server_no_context_takeover, windows of 15', () => {
  const a = negotiateDeflate('permessage-deflate', policy);
  assert.deepEqual(a, {
    serverNoContextTakeover: true,
    clientNoContextTakeover: false,
    serverWindowBits: 15,
    clientWindowBits: 15,
    header: 'permessage-deflate; server_no_context_takeover',
  });
});

test("the browsers' offer: client_max_window_bits without a value is answered with the server's choice", () => {
  const a = negotiateDeflate('permessage-deflate; client_max_window_bits', {
    ...policy,
    clientMaxWindowBits: 12,
  });
  assert.equal(a?.header, 'permessage-deflate; server_no_context_takeover; client_max_window_bits=12');
  assert.equal(a?.clientWindowBits, 12);
  assert.equal(a?.clientNoContextTakeover, false);
});

test('offered parameters are honoured: smaller server window, client_no_context_takeover', () => {
  const a = negotiateDeflate(
    'permessage-deflate; server_max_window_bits=10; client_no_context_takeover; client_max_window_bits=9',
    policy,
  );
  assert.equal(a?.serverWindowBits, 10);
  assert.equal(a?.clientWindowBits, 9);
  assert.equal(a?.clientNoContextTakeover, true);
  assert.equal(
    a?.header,
    'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9',
  );
});

test('client_no_context_takeover is never answered unless offered, and only when preferred', () => {
  assert.equal(negotiateDeflate('permessage-deflate', policy)?.clientNoContextTakeover, false);
  const kept = negotiateDeflate('permessage-deflate; client_no_context_takeover', {
    ...policy,
    preferClientNoContextTakeover: false,
  });
  assert.equal(kept?.clientNoContextTakeover, false);
  assert.doesNotMatch(kept.header, /client_no_context_takeover/);
});

test('invalid offers are declined one by one; the first acceptable one wins', () => {
  const bad = [
    'permessage-deflate; foo',
    'permessage-deflate; server_max_window_bits',
    'permessage-deflate; server_max_window_bits=7',
    'permessage-deflate; server_max_window_bits=16',
    'permessage-deflate; client_max_window_bits=08',
    'permessage-deflate; client_max_window_bits=+9',
    'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
    'permessage-deflate; client_no_context_takeover=true',
    'permessage-deflate; client_max_window_bits="1 0"',
    'permessage-deflate; client_max_window_bits="10',
    'permessage-deflate;',
    'permessage-deflate; =10',
    'x-webkit-deflate-frame',
    '',
    ',,,',
  ];
  for (const offer of bad) assert.equal(negotiateDeflate(offer, policy), null, offer);
  const a = negotiateDeflate([`${bad.join(', ')}`, 'permessage-deflate; client_no_context_takeover'], policy);
  assert.equal(a?.clientNoContextTakeover, true);
});

test('quoted values are unquoted and must be tokens', () => {
  assert.equal(
    negotiateDeflate('permessage-deflate; client_max_window_bits="10"', policy)?.clientWindowBits,
    10,
  );
  assert.equal(
    negotiateDeflate('permessage-deflate; x="a,b", permessage-deflate', policy)?.serverWindowBits,
    15,
  );
});

test('the header is read in bounded elements and time, whatever its size', () => {
  const huge = 'x-ext; a=1, '.repeat(50_000) + 'permessage-deflate';
  const started = performance.now();
  assert.equal(negotiateDeflate(huge, policy), null, 'offers past the cap are not read');
  assert.ok(performance.now() - started < 500);
  assert.equal(parseExtensions(huge).length, MAX_EXTENSION_ELEMENTS);
  const junk = '"'.repeat(100_000);
  assert.equal(negotiateDeflate(junk, policy), null);
});

test('the client reads the answer strictly', () => {
  assert.equal(readDeflateAnswer(undefined), null);
  const ok = readDeflateAnswer('permessage-deflate; server_no_context_takeover; client_max_window_bits=10');
  assert.ok(ok !== null && typeof ok !== 'string');
  assert.equal(ok.clientWindowBits, 10);
  assert.equal(ok.serverNoContextTakeover, true);
  for (const wrong of [
    'x-other',
    'permessage-deflate, permessage-deflate',
    'permessage-deflate; client_max_window_bits',
    'permessage-deflate; foo=1',
  ]) {
    assert.equal(typeof readDeflateAnswer(wrong), 'string', wrong);
  }
});
