import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import {
  WEBSOCKET_GUID,
  acceptKey,
  acceptResponse,
  checkHandshake,
  checkKey,
  checkMethod,
  checkRequest,
  checkUpgradeHeaders,
  checkVersion,
  headerHasToken,
  isValidKey,
  MAX_SUBPROTOCOLS,
  parseSubprotocols,
  readSubprotocols,
  readHandshake,
  type Handshake,
} from '../../../src/upgrade/handshake.ts';
import { rejection, rejectionBody, rejectionResponse, type Rejection } from '../../../src/http/rejections.ts';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/**
 * A valid upgrade request, with `overrides` applied (undefined removes a
 * header); a null method leaves the method unset.
 */
function request(overrides: IncomingHttpHeaders = {}, method: string | null = 'GET'): Handshake {
  const headers: IncomingHttpHeaders = {
    host: '127.0.0.1',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-version': '13',
    'sec-websocket-key': KEY,
  };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete headers[name];
    else headers[name] = value;
  }
  return readHandshake({ method: method ?? undefined, headers });
}

/** Splits a raw HTTP response into status line, headers (lower-cased names) and body. */
function parseResponse(raw: string): { statusLine: string; headers: Map<string, string>; body: string } {
  const end = raw.indexOf('\r\n\r\n');
  assert.notEqual(end, -1, 'head must end with CRLF CRLF');
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    assert.ok(colon > 0, `malformed header line ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).toLowerCase();
    assert.ok(!headers.has(name), `duplicate header ${name}`);
    headers.set(name, line.slice(colon + 1).trim());
  }
  return { statusLine: statusLine!, headers, body: raw.slice(end + 4) };
}

function assertRejected(r: Rejection | null, status: number, code: string): Rejection {
  assert.ok(r !== null, `expected ${code}, got null`);
  assert.equal(r.status, status);
  assert.equal(r.code, code);
  return r;
}

describe('checkMethod', () => {
  test('GET passes', () => {
    assert.equal(checkMethod(request()), null);
  });

  test('any other method → 405 with Allow: GET', () => {
    for (const method of ['POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'CONNECT', null]) {
      const r = assertRejected(checkMethod(request({}, method)), 405, 'METHOD_NOT_ALLOWED');
      assert.equal(r.category, 'method');
      assert.deepEqual(r.headers, { Allow: 'GET' });
    }
  });
});

describe('checkUpgradeHeaders', () => {
  test('the standard headers pass, in any case', () => {
    assert.equal(checkUpgradeHeaders(request()), null);
    assert.equal(checkUpgradeHeaders(request({ upgrade: 'WebSocket', connection: 'upgrade' })), null);
    assert.equal(checkUpgradeHeaders(request({ upgrade: 'WEBSOCKET', connection: 'UPGRADE' })), null);
  });

  test('Connection may be a comma list', () => {
    for (const connection of [
      'keep-alive, Upgrade',
      'Upgrade, keep-alive',
      'keep-alive,upgrade',
      ' keep-alive ,  UPGRADE ',
    ]) {
      assert.equal(checkUpgradeHeaders(request({ connection })), null, connection);
    }
  });

  test('missing or wrong Upgrade → 400 WEBSOCKET_BAD_UPGRADE', () => {
    for (const upgrade of [undefined, '', 'h2c', 'websockets', 'web socket']) {
      const r = assertRejected(checkUpgradeHeaders(request({ upgrade })), 400, 'WEBSOCKET_BAD_UPGRADE');
      assert.equal(r.category, 'validation');
    }
  });

  test('missing or wrong Connection → 400 WEBSOCKET_BAD_UPGRADE', () => {
    for (const connection of [undefined, '', 'keep-alive', 'close', 'Upgraded', 'keep-alive Upgrade']) {
      assertRejected(checkUpgradeHeaders(request({ connection })), 400, 'WEBSOCKET_BAD_UPGRADE');
    }
  });
});

describe('checkVersion', () => {
  test('13 passes', () => {
    assert.equal(checkVersion(request()), null);
  });

  test('8, 12, 14, missing and "13, 8" → 400 WEBSOCKET_BAD_VERSION with Sec-WebSocket-Version: 13', () => {
    for (const version of ['8', '12', '14', undefined, '13, 8', '', '0']) {
      const r = assertRejected(
        checkVersion(request({ 'sec-websocket-version': version })),
        400,
        'WEBSOCKET_BAD_VERSION',
      );
      assert.equal(r.category, 'validation');
      assert.deepEqual(r.headers, { 'Sec-WebSocket-Version': '13' });
    }
  });
});

describe('checkKey and isValidKey', () => {
  test('a base64 16-byte key passes', () => {
    assert.equal(checkKey(request()), null);
    for (let i = 0; i < 50; i++) {
      const key = randomBytes(16).toString('base64');
      assert.equal(isValidKey(key), true, key);
      assert.equal(checkKey(request({ 'sec-websocket-key': key })), null);
    }
  });

  test('missing or empty → 400 WEBSOCKET_KEY_MISSING', () => {
    for (const key of [undefined, '']) {
      const r = assertRejected(checkKey(request({ 'sec-websocket-key': key })), 400, 'WEBSOCKET_KEY_MISSING');
      assert.equal(r.category, 'validation');
    }
  });

  test('wrong length, bad characters, 15 or 17 bytes → 400 WEBSOCKET_KEY_INVALID', () => {
    const invalid = [
      'abc',
      KEY.slice(0, -2), // padding removed
      KEY + '=',
      ' ' + KEY,
      KEY + ' ',
      'dGhlIHNhbXBsZSBub25j-Q==', // base64url alphabet
      'dGhlIHNhbXBsZSBub25j_Q==',
      'dGhlIHNhbXBsZSBub25j!Q==',
      'dGhlIHNhbXBsZSBub25jZQ=A',
      randomBytes(15).toString('base64'),
      randomBytes(17).toString('base64'),
      randomBytes(32).toString('base64'),
      randomBytes(16).toString('hex'),
    ];
    for (const key of invalid) {
      assert.equal(isValidKey(key), false, key);
      const r = assertRejected(checkKey(request({ 'sec-websocket-key': key })), 400, 'WEBSOCKET_KEY_INVALID');
      assert.equal(r.category, 'validation');
    }
    assert.equal(isValidKey(undefined), false);
  });
});

describe('checkHandshake', () => {
  test('a valid request passes', () => {
    assert.equal(checkHandshake(request()), null);
    assert.equal(checkHandshake(request({ connection: 'keep-alive, Upgrade', upgrade: 'WebSocket' })), null);
  });

  test('checks run in order: method, upgrade headers, version, key', () => {
    const everythingWrong = request(
      { upgrade: undefined, connection: undefined, 'sec-websocket-version': '8', 'sec-websocket-key': 'x' },
      'POST',
    );
    assertRejected(checkHandshake(everythingWrong), 405, 'METHOD_NOT_ALLOWED');
    assertRejected(checkHandshake({ ...everythingWrong, method: 'GET' }), 400, 'WEBSOCKET_BAD_UPGRADE');
    assertRejected(
      checkHandshake(request({ 'sec-websocket-version': '8', 'sec-websocket-key': 'x' })),
      400,
      'WEBSOCKET_BAD_VERSION',
    );
    assertRejected(
      checkHandshake(request({ 'sec-websocket-version': undefined, 'sec-websocket-key': undefined })),
      400,
      'WEBSOCKET_BAD_VERSION',
    );
    assertRejected(checkHandshake(request({ 'sec-websocket-key': undefined })), 400, 'WEBSOCKET_KEY_MISSING');
    assertRejected(checkHandshake(request({ 'sec-websocket-key': 'x' })), 400, 'WEBSOCKET_KEY_INVALID');
  });

  test('each step in isolation returns the same rejection as the pipeline', () => {
    const cases: Array<[Handshake, (r: Handshake) => Rejection | null]> = [
      [request({}, 'PUT'), checkMethod],
      [request({ upgrade: 'h2c' }), checkUpgradeHeaders],
      [request({ 'sec-websocket-version': '14' }), checkVersion],
      [request({ 'sec-websocket-key': undefined }), checkKey],
      [request({ 'sec-websocket-key': '!!' }), checkKey],
    ];
    for (const [req, step] of cases) {
      assert.deepEqual(checkHandshake(req), step(req));
    }
  });
});

describe('acceptKey', () => {
  test('RFC 6455 §1.3 example', () => {
    assert.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.equal(WEBSOCKET_GUID, '258EAFA5-E914-47DA-95CA-C5AB0DC85B11');
  });

  test('equals base64(SHA-1(key + GUID)) for random keys', () => {
    for (let i = 0; i < 20; i++) {
      const key = randomBytes(16).toString('base64');
      const expected = createHash('sha1')
        .update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
        .digest('base64');
      assert.equal(acceptKey(key), expected);
      assert.equal(acceptKey(key).length, 28);
    }
  });
});

describe('headerHasToken', () => {
  test('finds a token in comma lists and repeated headers, case-insensitively', () => {
    assert.equal(headerHasToken('Upgrade', 'upgrade'), true);
    assert.equal(headerHasToken('keep-alive, Upgrade', 'upgrade'), true);
    assert.equal(headerHasToken(['keep-alive', 'UPGRADE'], 'upgrade'), true);
    assert.equal(headerHasToken(' upgrade ', 'Upgrade'), true);
  });

  test('does not match substrings, absent headers or other tokens', () => {
    assert.equal(headerHasToken(undefined, 'upgrade'), false);
    assert.equal(headerHasToken('', 'upgrade'), false);
    assert.equal(headerHasToken('upgrade-insecure-requests', 'upgrade'), false);
    assert.equal(headerHasToken('keep-alive upgrade', 'upgrade'), false);
    assert.equal(headerHasToken([], 'upgrade'), false);
  });

  test('trims only SP and HTAB around elements, and folds only ASCII case', () => {
    assert.equal(headerHasToken('\tupgrade\t, x', 'upgrade'), true);
    assert.equal(headerHasToken('\xa0upgrade', 'upgrade'), false);
    assert.equal(headerHasToken('upgrade\x0b', 'upgrade'), false);
    assert.equal(headerHasToken('WebSocket', 'websocket'), true);
    assert.equal(headerHasToken('websocket', 'WebSocket'), true);
  });

  test('a long list is scanned in one pass', () => {
    const list = `${'keep-alive, '.repeat(200_000)}upgrade`;
    const started = performance.now();
    assert.equal(headerHasToken(list, 'upgrade'), true);
    assert.equal(headerHasToken(list, 'websocket'), false);
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 1_000, `took ${elapsed} ms`);
  });
});

describe('parseSubprotocols', () => {
  test('absent header → empty list', () => {
    assert.deepEqual(parseSubprotocols(undefined), []);
    assert.deepEqual(parseSubprotocols(''), []);
  });

  test('splits on commas, trims spaces, keeps the client order', () => {
    assert.deepEqual(parseSubprotocols('chat, superchat'), ['chat', 'superchat']);
    assert.deepEqual(parseSubprotocols('  v2.json ,v1.json,  '), ['v2.json', 'v1.json']);
    assert.deepEqual(parseSubprotocols(',,chat,,'), ['chat']);
  });

  test('drops duplicates, keeping the first occurrence', () => {
    assert.deepEqual(parseSubprotocols('a, b, a, c, b'), ['a', 'b', 'c']);
  });

  test('drops entries that are not RFC 7230 tokens', () => {
    assert.deepEqual(parseSubprotocols('good, has space, "quoted", a/b, ok!, x=y, [v], é, semi;colon'), [
      'good',
      'ok!',
    ]);
    assert.deepEqual(parseSubprotocols("~a|b`c^d_e-f.g+h*i'j&k%l$m#n!"), ["~a|b`c^d_e-f.g+h*i'j&k%l$m#n!"]);
  });

  test('repeated headers are merged in order, with duplicates dropped', () => {
    assert.deepEqual(parseSubprotocols(['chat, v1', 'v2', 'chat']), ['chat', 'v1', 'v2']);
  });

  test('case is preserved and significant', () => {
    assert.deepEqual(parseSubprotocols('Chat, chat'), ['Chat', 'chat']);
  });

  test('only SP and HTAB are trimmed', () => {
    assert.deepEqual(parseSubprotocols('\tchat\t, \xa0v1, v2\x0b'), ['chat']);
  });

  test('a long list of distinct entries is parsed in linear time', () => {
    // Deduplicating with Array.includes took seconds here (quadratic).
    const list = Array.from({ length: 40_000 }, (_, i) => `p${i}`).join(',');
    const started = performance.now();
    const parsed = parseSubprotocols(list);
    const elapsed = performance.now() - started;
    assert.equal(parsed.length, 40_000);
    assert.equal(parsed[39_999], 'p39999');
    assert.ok(elapsed < 1_000, `took ${elapsed} ms`);
  });
});

describe('readSubprotocols', () => {
  const list = (n: number) => Array.from({ length: n }, (_, i) => `p${i}`).join(', ');

  test('checkHandshake refuses more than the cap with 400 WEBSOCKET_BAD_PROTOCOL', () => {
    assert.equal(checkHandshake(request({ 'sec-websocket-protocol': list(64) })), null);
    const r = checkHandshake(request({ 'sec-websocket-protocol': list(65) }));
    assert.deepEqual([r?.status, r?.code], [400, 'WEBSOCKET_BAD_PROTOCOL']);
  });

  test(`takes up to ${MAX_SUBPROTOCOLS} entries and refuses (null) one more`, () => {
    assert.equal(MAX_SUBPROTOCOLS, 64);
    assert.equal(readSubprotocols(list(64))?.length, 64);
    assert.equal(readSubprotocols(list(65)), null);
    assert.deepEqual(readSubprotocols(undefined), []);
  });

  test('empty elements do not count; duplicates, invalid entries and repeated fields do', () => {
    assert.equal(readSubprotocols(`,, ${list(64)} ,,,`)?.length, 64);
    assert.equal(readSubprotocols(Array(65).fill('a').join(',')), null);
    assert.equal(readSubprotocols(Array(65).fill('a b').join(',')), null);
    assert.equal(readSubprotocols([list(40), list(25)]), null);
    assert.deepEqual(readSubprotocols(Array(64).fill('a').join(',')), ['a']);
  });

  test('the cap is a parameter, and a list over it is refused however long', () => {
    const huge = `${list(65)}, ${'x'.repeat(1_000_000)}`;
    assert.equal(readSubprotocols(huge), null);
    assert.equal(readSubprotocols('a, b', 1), null);
    assert.deepEqual(readSubprotocols('a, b', 2), ['a', 'b']);
  });
});

describe('rejectionResponse', () => {
  test('status line, JSON body and a correct Content-Length', () => {
    const r = checkHandshake(request({ 'sec-websocket-version': '8' }))!;
    const raw = rejectionResponse(r);
    const { statusLine, headers, body } = parseResponse(raw);
    assert.equal(statusLine, 'HTTP/1.1 400 Bad Request');
    assert.equal(headers.get('content-type'), 'application/json');
    assert.equal(headers.get('connection'), 'close');
    assert.equal(headers.get('sec-websocket-version'), '13');
    assert.equal(Number(headers.get('content-length')), Buffer.byteLength(body));
    assert.deepEqual(JSON.parse(body), {
      error: { code: 'WEBSOCKET_BAD_VERSION', message: r.message, category: 'validation' },
    });
    assert.equal(body, rejectionBody(r));
  });

  test('405 carries Allow: GET', () => {
    const raw = rejectionResponse(checkHandshake(request({}, 'POST'))!);
    const { statusLine, headers, body } = parseResponse(raw);
    assert.equal(statusLine, 'HTTP/1.1 405 Method Not Allowed');
    assert.equal(headers.get('allow'), 'GET');
    assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, 'METHOD_NOT_ALLOWED');
  });

  test('Content-Length counts bytes, not characters', () => {
    const r = rejection(403, 'ORIGIN_FORBIDDEN', 'origin “ü.example” not allowed ✗', 'forbidden');
    const { statusLine, headers, body } = parseResponse(rejectionResponse(r));
    assert.equal(statusLine, 'HTTP/1.1 403 Forbidden');
    assert.notEqual(body.length, Buffer.byteLength(body));
    assert.equal(Number(headers.get('content-length')), Buffer.byteLength(body));
    assert.deepEqual(JSON.parse(body), {
      error: { code: 'ORIGIN_FORBIDDEN', message: 'origin “ü.example” not allowed ✗', category: 'forbidden' },
    });
  });

  test('every status used has its reason phrase; unknown ones still form a valid status line', () => {
    for (const [status, phrase] of [
      [401, 'Unauthorized'],
      [404, 'Not Found'],
      [429, 'Too Many Requests'],
      [503, 'Service Unavailable'],
    ] as const) {
      const { statusLine } = parseResponse(rejectionResponse(rejection(status, 'X', 'x', 'validation')));
      assert.equal(statusLine, `HTTP/1.1 ${status} ${phrase}`);
    }
    const { statusLine } = parseResponse(rejectionResponse(rejection(499, 'X', 'x', 'validation')));
    assert.match(statusLine, /^HTTP\/1\.1 499 \S/);
  });

  test('rejection() omits headers when none are given', () => {
    assert.equal('headers' in rejection(400, 'X', 'x', 'validation'), false);
  });
});

describe('acceptResponse', () => {
  test('101 with Upgrade, Connection and Sec-WebSocket-Accept, no protocol', () => {
    const raw = acceptResponse(KEY);
    assert.ok(raw.endsWith('\r\n\r\n'));
    const { statusLine, headers, body } = parseResponse(raw);
    assert.equal(statusLine, 'HTTP/1.1 101 Switching Protocols');
    assert.equal(headers.get('upgrade'), 'websocket');
    assert.equal(headers.get('connection'), 'Upgrade');
    assert.equal(headers.get('sec-websocket-accept'), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.equal(headers.has('sec-websocket-protocol'), false);
    assert.equal(body, '');
  });

  test('with a protocol and extra headers', () => {
    const { headers, body } = parseResponse(acceptResponse(KEY, 'chat', { 'X-Hub': 'one' }));
    assert.equal(headers.get('sec-websocket-protocol'), 'chat');
    assert.equal(headers.get('x-hub'), 'one');
    assert.equal(headers.get('sec-websocket-accept'), acceptKey(KEY));
    assert.equal(body, '');
  });
});

describe('checkRequest: one Host, no body', () => {
  test('a request without Host, or with two, is 400 WEBSOCKET_BAD_REQUEST', () => {
    assertRejected(checkRequest(request({ host: undefined })), 400, 'WEBSOCKET_BAD_REQUEST');
    const twice = readHandshake({
      method: 'GET',
      headers: { host: 'a', upgrade: 'websocket', connection: 'Upgrade' },
      rawHeaders: ['Host', 'a', 'Upgrade', 'websocket', 'host', 'b', 'Connection', 'Upgrade'],
    });
    assert.equal(twice.hosts, 2);
    assertRejected(checkRequest(twice), 400, 'WEBSOCKET_BAD_REQUEST');
  });

  test('an HTTP/1.0 upgrade is 400 WEBSOCKET_BAD_REQUEST; 1.1 (or unset: the fast path) passes', () => {
    const h = { host: 'a' };
    assertRejected(
      checkRequest(readHandshake({ headers: h, httpVersion: '1.0' })),
      400,
      'WEBSOCKET_BAD_REQUEST',
    );
    assertRejected(
      checkRequest(readHandshake({ headers: h, httpVersion: '0.9' })),
      400,
      'WEBSOCKET_BAD_REQUEST',
    );
    assert.equal(checkRequest(readHandshake({ headers: h, httpVersion: '1.1' })), null);
    assert.equal(checkRequest(readHandshake({ headers: h })), null);
  });

  test('one Host, empty or not, passes', () => {
    assert.equal(checkRequest(request()), null);
    assert.equal(checkRequest(request({ host: '' })), null);
    const raw = readHandshake({
      method: 'GET',
      headers: { host: 'a' },
      rawHeaders: ['HOST', 'a', 'X-Host', 'b'],
    });
    assert.equal(checkRequest(raw), null);
  });

  test('Transfer-Encoding, or a Content-Length other than 0, is refused: the body would be read as frames', () => {
    for (const overrides of [
      { 'transfer-encoding': 'chunked' },
      { 'transfer-encoding': 'identity' },
      { 'content-length': '5' },
      { 'content-length': '00' },
    ]) {
      const r = assertRejected(checkRequest(request(overrides)), 400, 'WEBSOCKET_BAD_REQUEST');
      assert.match(r.message, /body/);
    }
    assert.equal(checkRequest(request({ 'content-length': '0' })), null);
  });
});
