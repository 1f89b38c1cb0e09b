import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HAND_OFF, findHeadEnd, parseRequestHead } from '../../../src/upgrade/request-head.ts';

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

// ---- agreement with node:http (llhttp, strict) --------------------------------
// Every head refused below is one node:http answers with 400 (checked against
// a node:http server); the fast path must not take any of them.

const UPGRADE_HEAD =
  'GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==';

test('a valid upgrade head is taken, and flagged as an upgrade', () => {
  const parsed = parseRequestHead(UPGRADE_HEAD);
  assert.equal(parsed?.upgrade, true);
  assert.equal(parsed.headers['sec-websocket-version'], '13');
});

test('framing fields are left to node:http: Transfer-Encoding with Content-Length, two Content-Lengths', () => {
  for (const extra of [
    'Transfer-Encoding: chunked\r\nContent-Length: 0',
    'Content-Length: 0\r\nContent-Length: 1',
    'Content-Length: 0\r\nContent-Length: 0',
    'Content-Length: +0',
    'Transfer-Encoding: chunked',
    'Content-Length: 0',
  ]) {
    assert.equal(parseRequestHead(`${UPGRADE_HEAD}\r\n${extra}`), null, JSON.stringify(extra));
  }
});

test('control bytes, DEL and bytes above 0x7e in the request target are refused', () => {
  for (const byte of ['\x00', '\x01', '\x1f', '\x7f', '\x80', '\xa0', '\xff', '\t']) {
    const head = UPGRADE_HEAD.replace('GET /ws ', `GET /ws?a${byte}b `);
    assert.equal(parseRequestHead(head), null, JSON.stringify(byte));
  }
  assert.ok(parseRequestHead(UPGRADE_HEAD.replace('GET /ws ', 'GET /ws?a=%00&b=~!$ ')));
});

test('only SP and HTAB are trimmed from values; VT, FF and NBSP are not whitespace', () => {
  for (const value of ['13\x0b', '13\x0c', '\x0b13', '13\x00', '1\x7f3']) {
    const head = UPGRADE_HEAD.replace('Version: 13', `Version: ${value}`);
    assert.equal(parseRequestHead(head), null, JSON.stringify(value));
  }
  // node:http takes NBSP (obs-text) and keeps it, so the version check refuses the value later.
  const nbsp = parseRequestHead(UPGRADE_HEAD.replace('Version: 13', 'Version: \xa013'));
  assert.equal(nbsp?.headers['sec-websocket-version'], '\xa013');
  const ows = parseRequestHead(UPGRADE_HEAD.replace('Version: 13', 'Version: \t 13 \t'));
  assert.equal(ows?.headers['sec-websocket-version'], '13');
  assert.equal(parseRequestHead('GET / HTTP/1.1\r\nX: a \t b')?.headers.x, 'a \t b');
});

test('bare CR, bare LF, folded lines and whitespace before the colon are refused', () => {
  for (const head of [
    UPGRADE_HEAD.replace(/\r\n/g, '\n'),
    UPGRADE_HEAD.replace('Host: a\r\n', 'Host: a\n'),
    UPGRADE_HEAD.replace('HTTP/1.1\r\n', 'HTTP/1.1\n'),
    UPGRADE_HEAD.replace(/\r\n/g, '\r'),
    UPGRADE_HEAD.replace('Host: a', 'Host: a\rb'),
    UPGRADE_HEAD.replace('HTTP/1.1', 'HTTP/1.1\r'),
    `${UPGRADE_HEAD}\r\nX: a\r\n b`,
    `${UPGRADE_HEAD}\r\nX: a\r\n\tb`,
    `${UPGRADE_HEAD}\r\nX : a`,
    `${UPGRADE_HEAD}\r\n\r\nX: a`,
  ]) {
    assert.equal(parseRequestHead(head), null, JSON.stringify(head));
  }
});

test('request lines outside the strict origin-form HTTP/1.1 form are left to node:http', () => {
  for (const line of [
    'GET * HTTP/1.1',
    'GET http://a/ws HTTP/1.1',
    'GET  /ws HTTP/1.1',
    'GET /ws  HTTP/1.1',
    'GET /ws HTTP/1.0',
    'GET /ws HTTP/2.0',
    'GET /ws http/1.1',
    'GET /ws HTTP/1.1 ',
    'GET ws HTTP/1.1',
  ]) {
    assert.equal(parseRequestHead(UPGRADE_HEAD.replace('GET /ws HTTP/1.1', line)), null, line);
  }
});

test('the upgrade flag follows llhttp: a non-empty Upgrade and `upgrade` in Connection, SP-only after it', () => {
  const upgrade = (connection: string, value = 'websocket') =>
    parseRequestHead(
      UPGRADE_HEAD.replace('Connection: Upgrade', `Connection: ${connection}`).replace(
        'Upgrade: websocket',
        `Upgrade: ${value}`,
      ),
    )?.upgrade;
  for (const yes of [
    'Upgrade',
    'UPGRADE',
    'keep-alive, upgrade',
    ',upgrade',
    'upgrade ,x',
    'x\t,\tupgrade',
  ]) {
    assert.equal(upgrade(yes), true, JSON.stringify(yes));
  }
  for (const no of [
    'upgrade\t',
    'upgrade \t',
    'upgrade\t,x',
    'upgradex',
    'x upgrade',
    'upgrade;q=1',
    'close',
    '',
  ]) {
    assert.equal(upgrade(no), false, JSON.stringify(no));
  }
  assert.equal(upgrade('upgrade', ''), false);
  assert.equal(upgrade('upgrade', 'anything'), true);
  // Repeated Connection fields count as one list.
  const twice = parseRequestHead(
    UPGRADE_HEAD.replace('Connection: Upgrade', 'Connection: close\r\nConnection: upgrade'),
  );
  assert.equal(twice?.upgrade, true);
  assert.equal(twice.headers.connection, 'close, upgrade');
});

test('repeated fields merge as node:http merges them', () => {
  const parsed = parseRequestHead(
    'GET / HTTP/1.1\r\nCookie: a\r\nCookie: b\r\nX-A: 1\r\nx-a: 2\r\nAge: 1\r\nAge: 2\r\nHost: h\r\n' +
      'Set-Cookie: q\r\nSet-Cookie: r\r\nUser-Agent: u\r\nUser-Agent: v',
  );
  assert.deepEqual(parsed?.headers, {
    cookie: 'a; b',
    'x-a': '1, 2',
    age: '1',
    host: 'h',
    'set-cookie': ['q', 'r'],
    'user-agent': 'u',
  });
});

test('more header lines than node:http keeps (1000) go to node:http', () => {
  assert.ok(parseRequestHead(`GET / HTTP/1.1${'\r\na: b'.repeat(1000)}`));
  assert.equal(parseRequestHead(`GET / HTTP/1.1${'\r\na: b'.repeat(1001)}`), null);
});

test('findHeadEnd reports a lone CR or LF at once, even before the head is complete', () => {
  assert.equal(findHeadEnd(Buffer.from('GET /ws HTTP/1.1\nHost: a\n')), HAND_OFF);
  assert.equal(findHeadEnd(Buffer.from('GET /ws HTTP/1.1\rHost: a\r')), HAND_OFF);
  // A CR at the very end may still be followed by its LF.
  assert.equal(findHeadEnd(Buffer.from('GET /ws HTTP/1.1\r')), -1);
  assert.equal(findHeadEnd(Buffer.from('GET /ws HTTP/1.1\r\nA: b\r\n\r')), -1);
});

test('findHeadEnd resumes where the previous call stopped, finding a blank line split across calls', () => {
  const full = Buffer.from('GET / HTTP/1.1\r\nA: b\r\n\r\nrest');
  for (let cut = 1; cut < full.length; cut++) {
    const first = full.subarray(0, cut);
    const before = findHeadEnd(first);
    if (before >= 0) {
      assert.equal(before, 24);
      continue;
    }
    assert.equal(before, -1);
    assert.equal(findHeadEnd(full, cut), 24, `cut at ${cut}`);
  }
});

test('findHeadEnd hands off an incomplete head as soon as a line or byte is outside the strict form', () => {
  for (const partial of [
    'GET /ws HTTP/1.0\r\n',
    'GET  /ws HTTP/1.1\r\n',
    'GET /ws?\xff HTTP/1.1\r\n',
    'GET /ws HTTP/1.1\r\nBad Name: x\r\n',
    'GET /ws HTTP/1.1\r\nX: a\r\n folded\r\n',
    'GET /ws HTTP/1.1\r\nX: caf\xe9\r\nY\r\n',
    'GET /ws HTTP/1.1\r\nConnection: Upg\x0crade',
    'GET /ws HTTP/1.1\r\nX: \x00',
    'GET /ws\x7f',
    'GET /ws HTTP/1.1\r\nHost: a\r\n\x8a\r',
    'GET /ws HTTP/1.1\r\nBad Name',
    'GET /ws HTTP/1.1\r\n X',
    'GET /ws HTTP/1.1\r\n:',
    'GET /ws HTTP/1.0',
    'GET /ws HTTP/1.1 ',
    'GET  /ws',
    'GET ws',
    'GET /ws?\xe9',
    'G\xe9T',
    'GET /ws HTTP/1.1\r\nContent-Length: upgrade\t\r\n\r',
    'GET /ws HTTP/1.1\r\ncontent-length:',
    'GET /ws HTTP/1.1\r\nTransfer-Encoding: chunked',
    'GET /ws HTTP/1.1\r\nUpgra\r',
    'GET /ws HTT\r',
    'GET /ws\r',
  ]) {
    assert.equal(findHeadEnd(Buffer.from(partial, 'latin1')), HAND_OFF, JSON.stringify(partial));
  }
  for (const partial of [
    'GET /ws HTTP/1.1\r\nX: caf\xe9\r\nY',
    'GET /ws?a=1 HTTP/1.1\r\nX:\r\n',
    'GET /w',
    'GET /ws HTT',
    'GET /ws HTTP/1.1\r',
    'GET /ws HTTP/1.1\r\nX: a: b\xe9 \t',
    'GET /ws HTTP/1.1\r\nX: a\r\n\r',
  ]) {
    assert.equal(findHeadEnd(Buffer.from(partial, 'latin1')), -1, JSON.stringify(partial));
  }
  // Line by line, as a slow client sends it.
  const head = Buffer.from('GET /ws HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n');
  let answer = -1;
  for (let size = 1; size <= head.length && answer === -1; size++)
    answer = findHeadEnd(head.subarray(0, size), size - 1);
  assert.equal(answer, HAND_OFF);
});

test('an early hand-off only happens to heads the parser would not take whole', () => {
  const full = `${UPGRADE_HEAD}\r\nCookie: a=b; c\r\nX-Long: ${'v'.repeat(60)}\r\n\r\n`;
  const bytes = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x2c, 0x3a, 0x41, 0x7f, 0x80, 0xff];
  fc.assert(
    fc.property(
      fc.array(fc.record({ at: fc.nat({ max: full.length }), byte: fc.constantFrom(...bytes) }), {
        maxLength: 3,
      }),
      fc.array(fc.nat({ max: full.length + 3 }), { maxLength: 6 }),
      (inserts, cuts) => {
        let text = full;
        for (const { at, byte } of inserts)
          text = text.slice(0, at) + String.fromCharCode(byte) + text.slice(at);
        const data = Buffer.from(text, 'latin1');
        const whole = findHeadEnd(data);
        const taken = whole > 0 && parseRequestHead(data.toString('latin1', 0, whole - 4)) !== null;
        // Chunk by chunk, as onData calls it.
        let answer = -1;
        let seen = 0;
        for (const cut of [...new Set(cuts)].sort((a, b) => a - b).concat(data.length)) {
          if (cut <= seen || cut > data.length) continue;
          answer = findHeadEnd(data.subarray(0, cut), seen);
          seen = cut;
          if (answer !== -1) break;
        }
        if (taken) assert.equal(answer, whole, JSON.stringify(text));
        if (answer === HAND_OFF) assert.equal(taken, false, JSON.stringify(text));
        if (answer > 0) assert.equal(answer, whole, JSON.stringify(text));
      },
    ),
    { seed: 20_261_202, numRuns: 2_000 },
  );
});

test('a second Host field is left to node:http, whose rawHeaders show both', () => {
  assert.equal(parseRequestHead('GET /ws HTTP/1.1\r\nHost: a\r\nX: y\r\nhost: b'), null);
  assert.equal(parseRequestHead('GET /ws HTTP/1.1\r\nHost: a\r\nX-Host: b')?.headers.host, 'a');
});
