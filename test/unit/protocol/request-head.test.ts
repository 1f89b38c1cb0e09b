import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findHeadEnd, parseRequestHead } from '../../../src/protocol/request-head.ts';

test('parses the request line and lower-cases header names', () => {
  const parsed = parseRequestHead(
    'GET /ws?room=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k',
  );
  assert.ok(parsed);
  assert.equal(parsed.method, 'GET');
  assert.equal(parsed.url, '/ws?room=a');
  assert.deepEqual(parsed.headers, {
    host: 'x',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': 'k',
  });
});

test('repeated fields are joined, except those node:http keeps once', () => {
  const parsed = parseRequestHead(
    'GET / HTTP/1.1\r\nSec-WebSocket-Protocol: a\r\nsec-websocket-protocol: b\r\nAuthorization: Bearer 1\r\nAuthorization: Bearer 2',
  );
  assert.equal(parsed?.headers['sec-websocket-protocol'], 'a, b');
  assert.equal(parsed?.headers.authorization, 'Bearer 1');
});

test('values are trimmed; empty values are kept', () => {
  const parsed = parseRequestHead('GET / HTTP/1.1\r\nOrigin:   http://a  \r\nX-Empty:');
  assert.equal(parsed?.headers.origin, 'http://a');
  assert.equal(parsed?.headers['x-empty'], '');
});

test('malformed heads are refused', () => {
  for (const head of [
    'GET /ws HTTP/1.0\r\nHost: x',
    'GET /ws\r\nHost: x',
    'GET  /ws HTTP/1.1',
    'G(T /ws HTTP/1.1',
    'GET /ws HTTP/1.1\r\nNo colon here',
    'GET /ws HTTP/1.1\r\n: empty name',
    'GET /ws HTTP/1.1\r\nBad Name: x',
    'GET /ws HTTP/1.1\r\nX: a\x01b',
  ]) {
    assert.equal(parseRequestHead(head), null, JSON.stringify(head));
  }
});

test('findHeadEnd finds the blank line, or -1', () => {
  assert.equal(findHeadEnd(Buffer.from('GET / HTTP/1.1\r\nA: b\r\n\r\nbody')), 24);
  assert.equal(findHeadEnd(Buffer.from('GET / HTTP/1.1\r\nA: b\r\n')), -1);
});
