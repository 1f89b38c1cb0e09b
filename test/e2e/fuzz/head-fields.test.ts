// The request-head fast path against node:http's parser, field by field.
//
// Two bare node:http servers listen on loopback with the same limits. One
// has the fast path (interceptUpgrades) in front of it; both answer every
// request they parse with what they read: which event fired (upgrade or
// request), the method, the target and the whole headers object. Each
// generated head is sent, byte for byte and cut at random points, to both;
// the answers must be identical. Heads the fast path hands off are parsed
// by node:http on both sides (they agree trivially); what this proves is
// that every head the fast path takes, node:http would take too and read
// the same way: same accept/reject, same Upgrade, Connection,
// Sec-WebSocket-*, Host, Origin, Authorization, Cookie…
//
// Runs: WSHUB_FUZZ_RUNS (default 400); seed: WSHUB_FUZZ_SEED. fast-check
// prints the seed and the path of a failing case.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { interceptUpgrades } from '../../../src/upgrade/fast-path.ts';
import { boundedServerOptions } from '../../../src/upgrade/respond.ts';
import { assertNoLeaks, closeServer, trackSockets } from '../../helpers/leaks.ts';

const RUNS = Number(process.env.WSHUB_FUZZ_RUNS ?? 300);
const SEED = Number(process.env.WSHUB_FUZZ_SEED ?? 20_261_202);
const MAX_HEADER_SIZE = 8192;
const HEADERS_TIMEOUT = 1_500;
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

interface Parsed {
  by: 'fast' | 'node';
  event: 'upgrade' | 'request';
  method: string | undefined;
  url: string | undefined;
  headers: IncomingMessage['headers'];
}

/** Answers with what was parsed, as JSON, and closes. */
function answer(socket: { end(data: string): void }, parsed: Parsed): void {
  const body = JSON.stringify(parsed);
  socket.end(
    `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}

function nodeServer(): Server {
  const server = trackSockets(createServer(boundedServerOptions(HEADERS_TIMEOUT, MAX_HEADER_SIZE)));
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    const { method, url, headers } = req;
    answer(socket, { by: 'node', event: 'upgrade', method, url, headers });
  });
  server.on('request', (req: IncomingMessage, res) => {
    const { method, url, headers } = req;
    // Written on the raw socket, like the upgrade answer, so both look alike.
    if (res.socket !== null) answer(res.socket, { by: 'node', event: 'request', method, url, headers });
  });
  return server;
}

let plain: Server;
let fast: Server;
const ports = { plain: 0, fast: 0 };

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

before(async () => {
  plain = nodeServer();
  fast = nodeServer();
  interceptUpgrades(fast, {
    paths: ['/ws'],
    maxHeaderSize: MAX_HEADER_SIZE,
    upgrade(request, socket) {
      const { method, url, headers } = request;
      answer(socket, { by: 'fast', event: 'upgrade', method, url, headers });
    },
  });
  ports.plain = await listen(plain);
  ports.fast = await listen(fast);
});

after(async () => {
  await closeServer(plain);
  await closeServer(fast);
  await assertNoLeaks();
});

interface Outcome {
  /** Status code, `closed` (no answer), or `pending` (nothing within the wait). */
  status: string;
  parsed?: Parsed;
}

/** Sends `chunks` (2 ms apart) and reads the answer until the server closes. */
function send(port: number, chunks: Buffer[], waitMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(received).toString('latin1');
      if (text === '') return resolve({ status: timedOut ? 'pending' : 'closed' });
      const status = /^HTTP\/1\.[01] (\d{3}) /.exec(text)?.[1] ?? `garbage ${JSON.stringify(text)}`;
      if (status !== '200') return resolve({ status });
      const body = Buffer.concat(received).subarray(text.indexOf('\r\n\r\n') + 4);
      resolve({ status, parsed: JSON.parse(body.toString('utf8')) as Parsed });
    };
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      finish();
    }, waitMs);
    socket.on('data', (data: Buffer) => received.push(data));
    socket.on('close', finish);
    socket.on('error', finish);
    const write = async () => {
      for (let i = 0; i < chunks.length && !done; i++) {
        if (i > 0) await sleep(2);
        if (!socket.destroyed) socket.write(chunks[i]!);
      }
    };
    socket.on('connect', () => void write());
  });
}

// ---- the head grammar ----------------------------------------------------------

/** One header line as generated: name, what separates it from the value, value, line end. */
interface Line {
  name: string;
  sep: string;
  value: string;
  eol: string;
}

/** Random ASCII case, as clients and attackers may send it. */
function recase(name: string, bits: number): string {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    out += (bits >> (i % 30)) & 1 ? c.toUpperCase() : c.toLowerCase();
  }
  return out;
}

const FIELD_NAMES = [
  'Host',
  'Upgrade',
  'Connection',
  'Sec-WebSocket-Key',
  'Sec-WebSocket-Version',
  'Sec-WebSocket-Protocol',
  'Sec-WebSocket-Extensions',
  'Origin',
  'Authorization',
  'Proxy-Authorization',
  'Cookie',
  'Set-Cookie',
  'User-Agent',
  'Referer',
  'X-Forwarded-For',
  'Forwarded',
  'X-WebSocket-Room-Password',
  'Content-Length',
  'Transfer-Encoding',
  'Expect',
  'Content-Type',
  'Keep-Alive',
  'Te',
  'Trailer',
  'Max-Forwards',
  'X-A',
];
/** Names that are not tokens, or barely. */
const ODD_NAMES = [
  '',
  'X Y',
  'X(Y)',
  'X\x00Y',
  'X\x7fY',
  'X\xe9',
  'X/Y',
  'X"Y',
  'X{Y}',
  'X@Y',
  "!#$%&'*+-.^_`|~",
  'Transfer-Encoding\t',
  ' Host',
];
const FIELD_VALUES = [
  'websocket',
  'WebSocket',
  'websocket, h2c',
  'h2c, websocket',
  'Upgrade',
  'upgrade',
  'keep-alive, Upgrade',
  'Upgrade, close',
  'upgrade\t',
  'upgradex',
  'close',
  '13',
  ' 13 ',
  '13, 8',
  KEY,
  'AAAAAAAAAAAAAAAAAAAAAA==',
  'chat, superchat',
  'permessage-deflate; client_max_window_bits',
  'http://127.0.0.1',
  'null',
  'https://example.com:8443',
  'Bearer abc.def.ghi',
  'Basic dXNlcjpwYXNz',
  'a=1; b=2',
  'a=1;b=2',
  'chunked',
  'gzip, chunked',
  'chunked, gzip',
  'identity',
  '0',
  '5',
  '+1',
  '-1',
  '1, 1',
  '00',
  '100-continue',
  '127.0.0.1',
  'example.com:80',
  '',
  ' ',
  '\t',
  'caf\xe9',
  '\xa0x\xa0',
  '\xff\xfe',
];
/** Bytes worth inserting anywhere: controls, separators and non-ASCII. */
const SPICE = [
  0x00, 0x01, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1f, 0x20, 0x22, 0x2c, 0x3a, 0x3b, 0x7f, 0x80, 0xa0, 0xff,
];

const spice = fc.oneof(
  fc.constantFrom(...SPICE).map((c) => String.fromCharCode(c)),
  fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)),
);

/** A string with a few odd bytes inserted. */
function spiced(base: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(base, fc.array(fc.tuple(fc.nat(), spice), { maxLength: 2 })).map(([s, inserts]) => {
    let out = s;
    for (const [at, c] of inserts) {
      const i = at % (out.length + 1);
      out = out.slice(0, i) + c + out.slice(i);
    }
    return out;
  });
}

const nameArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...FIELD_NAMES), fc.nat()).map(([n, b]) => recase(n, b)) },
  { weight: 1, arbitrary: fc.constantFrom(...ODD_NAMES) },
  { weight: 1, arbitrary: spiced(fc.constantFrom(...FIELD_NAMES)) },
);
const valueArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...FIELD_VALUES) },
  { weight: 2, arbitrary: spiced(fc.constantFrom(...FIELD_VALUES)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 12 }) },
  // An oversized header line, around the size limit.
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: MAX_HEADER_SIZE - 200, max: MAX_HEADER_SIZE + 200 })
      .map((n) => 'v'.repeat(n)),
  },
);
const sepArb = fc.oneof(
  { weight: 12, arbitrary: fc.constant(': ') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(':', ':\t', ':  ', ' :', ' : ', '\t:', ': \r\n ', ': \r\n\t', '::'),
  },
);
const eolArb = fc.oneof(
  { weight: 20, arbitrary: fc.constant('\r\n') },
  {
    weight: 1,
    arbitrary: fc.constantFrom('\n', '\r', '\r\r\n', '\n\r', '\r\n ', '\r\n\t', ' \r\n', '\r\n\r\n'),
  },
);
const lineArb: fc.Arbitrary<Line> = fc.record({ name: nameArb, sep: sepArb, value: valueArb, eol: eolArb });

/** The fields of a valid upgrade, each possibly recased, revalued or dropped. */
const BASE: Array<[string, string]> = [
  ['Host', '127.0.0.1'],
  ['Upgrade', 'websocket'],
  ['Connection', 'Upgrade'],
  ['Sec-WebSocket-Version', '13'],
  ['Sec-WebSocket-Key', KEY],
];
const baseLineArb = (name: string, value: string): fc.Arbitrary<Line | null> =>
  fc.oneof(
    { weight: 20, arbitrary: fc.constant({ name, sep: ': ', value, eol: '\r\n' }) },
    { weight: 2, arbitrary: fc.nat().map((b) => ({ name: recase(name, b), sep: ': ', value, eol: '\r\n' })) },
    { weight: 2, arbitrary: lineArb.map((l) => ({ ...l, name })) },
    { weight: 1, arbitrary: fc.constant(null) },
  );

const methodArb = fc.oneof(
  { weight: 20, arbitrary: fc.constant('GET') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'get',
      'Get',
      'HEAD',
      'POST',
      'PUT',
      'OPTIONS',
      'CONNECT',
      'PRI',
      'DELETE',
      'GETS',
      'G3T',
      'GET\t',
      'GET/',
      'M-SEARCH',
      'PROPFIND',
      '',
      'G\x00T',
    ),
  },
);
const targetArb = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('/ws', '/ws?room=a', '/ws?room=a&token=t', '/ws?') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'http://127.0.0.1/ws',
      'ws://127.0.0.1/ws',
      'HTTP://127.0.0.1/ws',
      '127.0.0.1:80',
      '*',
      '//ws',
      '/ws#f',
      '/ws/',
      '/WS',
      '/ws;x',
      '/ws%20',
      '/ws?a%00',
      '/other',
      '',
      ' /ws',
      '/ws ',
    ),
  },
  { weight: 1, arbitrary: spiced(fc.constant('/ws?room=a')) },
  // An oversized request line.
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: MAX_HEADER_SIZE - 300, max: MAX_HEADER_SIZE + 300 })
      .map((n) => `/ws?p=${'x'.repeat(n)}`),
  },
);
const versionArb = fc.oneof(
  { weight: 20, arbitrary: fc.constant('HTTP/1.1') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'HTTP/1.0',
      'HTTP/0.9',
      'HTTP/2.0',
      'HTTP/1.2',
      'http/1.1',
      'HTTP/1.10',
      'HTTP/1',
      'HTTP/1.1 ',
      'HTTP/1.1\t',
      'ICE/1.1',
      'RTSP/1.0',
      '',
    ),
  },
);
const requestSepArb = fc.oneof(
  { weight: 20, arbitrary: fc.constant(' ') },
  { weight: 1, arbitrary: fc.constantFrom('  ', '\t', '\x0b') },
);

interface Head {
  bytes: Buffer;
  cuts: number[];
}

/** Many filler fields around node:http's limit of 1000 kept fields. */
const fillerArb = fc.option(
  fc.tuple(fc.oneof(fc.integer({ min: 990, max: 1_010 }), fc.nat({ max: 30 })), fc.nat()),
  { nil: null, freq: 8 },
);

/** Valid lines only: any field name in any case, listed values, the separators RFC 9112 allows. */
const tameLineArb: fc.Arbitrary<Line> = fc.record({
  name: fc.tuple(fc.constantFrom(...FIELD_NAMES), fc.nat()).map(([n, b]) => recase(n, b)),
  sep: fc.constantFrom(': ', ':', ':\t', ':  '),
  value: fc.constantFrom(...FIELD_VALUES.filter((v) => /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(v))),
  eol: fc.constant('\r\n'),
});
const tameBaseLineArb = (name: string, value: string): fc.Arbitrary<Line | null> =>
  fc.oneof(
    { weight: 20, arbitrary: fc.constant({ name, sep: ': ', value, eol: '\r\n' }) },
    { weight: 3, arbitrary: fc.nat().map((b) => ({ name: recase(name, b), sep: ': ', value, eol: '\r\n' })) },
    { weight: 2, arbitrary: tameLineArb.map((l) => ({ ...l, name })) },
    { weight: 1, arbitrary: fc.constant(null) },
  );

/** What a head is made of, before it is rendered. */
const partsArb = (wild: boolean) =>
  fc.record({
    lead: wild
      ? fc.oneof(
          { weight: 30, arbitrary: fc.constant('') },
          { weight: 1, arbitrary: fc.constantFrom('\r\n', '\n', ' ', '\x00') },
        )
      : fc.constant(''),
    method: wild ? methodArb : fc.constant('GET'),
    sep1: wild ? requestSepArb : fc.constant(' '),
    target: wild ? targetArb : fc.constantFrom('/ws', '/ws?room=a', '/ws?room=a&token=t', '/ws?', '/other'),
    sep2: wild ? requestSepArb : fc.constant(' '),
    version: wild ? versionArb : fc.constant('HTTP/1.1'),
    firstEol: wild ? eolArb : fc.constant('\r\n'),
    base: fc.tuple(...BASE.map(([n, v]) => (wild ? baseLineArb(n, v) : tameBaseLineArb(n, v)))),
    extra: fc.array(fc.tuple(fc.nat(), wild ? lineArb : tameLineArb), { maxLength: 4 }),
    filler: fillerArb,
    cuts: fc.array(fc.nat(), { maxLength: 3 }),
    oneByteAt: fc.option(fc.nat(), { nil: null, freq: 10 }),
  });

const headArb: fc.Arbitrary<Head> = fc.oneof(partsArb(false), partsArb(true)).map((h) => {
  const lines: Line[] = h.base.filter((l): l is Line => l !== null);
  for (const [at, line] of h.extra) lines.splice(at % (lines.length + 1), 0, line);
  if (h.filler !== null) {
    const [count, at] = h.filler;
    const filler = Array.from({ length: count }, (): Line => ({
      name: 'a',
      sep: ':',
      value: '',
      eol: '\r\n',
    }));
    lines.splice(at % (lines.length + 1), 0, ...filler);
  }
  let text = `${h.lead}${h.method}${h.sep1}${h.target}${h.sep2}${h.version}${h.firstEol}`;
  for (const l of lines) text += `${l.name}${l.sep}${l.value}${l.eol}`;
  text += '\r\n';
  const bytes = Buffer.from(text, 'latin1');
  const cuts = h.cuts.map((c) => c % bytes.length);
  // Sometimes a stretch of single bytes, where incremental scanning is most exposed.
  if (h.oneByteAt !== null) {
    const from = h.oneByteAt % bytes.length;
    for (let i = 1; i <= 24; i++) cuts.push(Math.min(bytes.length - 1, from + i));
  }
  return { bytes, cuts };
});

function cutInto(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(from, point));
    from = point;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

/** The answer without who parsed it; a wait on either side is node's 408. */
function comparable(outcome: Outcome): unknown {
  if (outcome.status === 'pending') return { status: '408' };
  if (outcome.parsed === undefined) return { status: outcome.status };
  const { by: _by, ...rest } = outcome.parsed;
  return { status: outcome.status, ...rest };
}

test('every head the fast path takes, node:http takes too and reads the same way', async () => {
  const tally = { fast: 0, nodeUpgrade: 0, nodeRequest: 0, refused: 0 };
  const statuses = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(headArb, async ({ bytes, cuts }) => {
      const chunks = cutInto(bytes, cuts);
      const [viaFast, viaNode] = await Promise.all([
        send(ports.fast, chunks, HEADERS_TIMEOUT + 1_500),
        send(ports.plain, chunks, HEADERS_TIMEOUT + 1_500),
      ]);
      assert.deepEqual(
        comparable(viaFast),
        comparable(viaNode),
        `fast path and node:http differ on ${JSON.stringify(bytes.toString('latin1').slice(0, 600))}`,
      );
      statuses.set(viaNode.status, (statuses.get(viaNode.status) ?? 0) + 1);
      if (viaFast.parsed?.by === 'fast') tally.fast++;
      else if (viaNode.parsed?.event === 'upgrade') tally.nodeUpgrade++;
      else if (viaNode.parsed?.event === 'request') tally.nodeRequest++;
      else tally.refused++;
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: true },
  );
  const summary = JSON.stringify({ ...tally, statuses: Object.fromEntries(statuses) });
  if (process.env.WSHUB_FUZZ_DEBUG) console.log(summary);
  // The corpus must reach both sides of the line, or it proves little.
  assert.ok(tally.fast >= RUNS * 0.15, `too few heads taken by the fast path: ${summary}`);
  assert.ok(tally.refused >= RUNS * 0.1, `too few heads refused: ${summary}`);
  assert.ok(
    tally.nodeUpgrade + tally.nodeRequest >= RUNS * 0.05,
    `too few heads handed off and accepted: ${summary}`,
  );
});
