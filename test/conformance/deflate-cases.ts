// Cases of the conformance suite for permessage-deflate (RFC 7692), modelled
// on Autobahn|Testsuite sections 12 (compressed echo of different payloads)
// and 13 (different parameters), with reduced message counts (10 per case
// instead of 1000) so the table stays fast. Cases marked `extra` have no
// Autobahn counterpart: malformed compressed input, bombs, bad offers.
import { constants, deflateRawSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { Opcode, Rsv, type FrameSpec, type RawClient } from './raw-client.ts';
import { ClientCompressor, readAnswer, type DeflateAnswer } from './deflate.ts';
import type { ConformanceCase, ExpectedMessage, Expectation } from './evaluate.ts';

export const DEFLATE_SECTIONS: Readonly<Record<number, string>> = {
  12: 'Compression: echo of compressed messages (permessage-deflate)',
  13: 'Compression: negotiation parameters (permessage-deflate)',
};

/** `wshub echo` compresses messages of at least this many bytes (its default threshold). */
const ECHO_THRESHOLD = 128;
const KiB = 1024;
const MiB = 1024 * KiB;
const MESSAGES = 10;
const SIZES = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072];
const normalEnd = { clientCloses: true, codes: [1000], failure: false };

// ---------------------------------------------------------------- payloads

/** JSON text with varied values, as a feed or dashboard sends. */
function jsonText(size: number, seed: number): Buffer {
  let out = '[';
  for (let i = 0; out.length < size; i++) {
    out += `{"id":${seed * 100000 + i},"user":"user-${(i * 7919 + seed) % 997}","price":${((i * 31 + seed) % 10000) / 100},"tags":["a${i % 13}","b${i % 7}"]},`;
  }
  return Buffer.from(out.slice(0, size), 'utf8');
}

/** Multi-byte UTF-8 text (German, Greek, CJK, emoji), cut on a character boundary. */
function utf8Text(size: number, seed: number): Buffer {
  const words = ['Größe', 'Äpfel', 'λόγος', '東京都', '数据流', '🚀', 'naïve', 'façade', 'Übermaß', 'κόσμε'];
  let out = '';
  let length = 0;
  for (let i = 0; length < size; i++) {
    const word = `${words[(i * 3 + seed) % words.length]} `;
    out += word;
    length += Buffer.byteLength(word);
  }
  let bytes = Buffer.from(out, 'utf8').subarray(0, size);
  while (bytes.length > 0 && !isUtf8(bytes)) bytes = bytes.subarray(0, bytes.length - 1);
  return Buffer.from(bytes);
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Compressible binary: a small alphabet with runs. */
function patternedBinary(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = ((i >> 3) * 13 + seed) & 0x3f;
  return out;
}

/**
 * Random bytes repeated with a period of 1.5 × 2^bits: matches exist only
 * at distances a window of `bits` cannot reach, so a server that compresses
 * with a larger window than it agreed to is caught by the judge's inflater.
 */
function periodic(size: number, bits: number): Buffer {
  const block = randomBytes(Math.min(size, 3 << (bits - 1)));
  const out = Buffer.allocUnsafe(size);
  for (let at = 0; at < size; at += block.length) block.copy(out, at, 0, Math.min(block.length, size - at));
  return out;
}

// ---------------------------------------------------------------- helpers

interface Message {
  opcode: typeof Opcode.Text | typeof Opcode.Binary;
  payload: Buffer;
}

/** A compressed message's frames: RSV1 on the first only; `fragment` > 0 splits the compressed bytes. */
function compressedFrames(opcode: number, compressed: Buffer, fragment = 0): FrameSpec[] {
  if (fragment <= 0 || compressed.length <= fragment) return [{ opcode, payload: compressed, rsv: Rsv.Rsv1 }];
  const frames: FrameSpec[] = [];
  for (let at = 0; at < compressed.length; at += fragment) {
    const end = Math.min(at + fragment, compressed.length);
    frames.push({
      opcode: at === 0 ? opcode : Opcode.Continuation,
      payload: compressed.subarray(at, end),
      fin: end === compressed.length,
      ...(at === 0 ? { rsv: Rsv.Rsv1 } : {}),
    });
  }
  return frames;
}

function expected(m: Message): ExpectedMessage {
  return {
    kind: m.opcode === Opcode.Text ? 'text' : 'binary',
    payload: m.payload,
    compressed: m.payload.length >= ECHO_THRESHOLD,
  };
}

/** The answer, or a reason the case cannot go on. */
function answerOf(client: RawClient): DeflateAnswer | string {
  try {
    return readAnswer(client.headers['sec-websocket-extensions']) ?? 'the 101 carries no permessage-deflate';
  } catch (err) {
    return String(err);
  }
}

/**
 * Sends `messages` compressed as agreed (context takeover when the answer
 * allows it), each fragmented into `fragment`-byte frames when > 0, and
 * expects each echoed, compressed from the threshold up.
 */
async function compressedEcho(
  client: RawClient,
  messages: Message[],
  options: { fragment?: number; checkAnswer?: (a: DeflateAnswer) => string | null } = {},
): Promise<Expectation> {
  const answer = answerOf(client);
  if (typeof answer === 'string') return { receive: [], end: normalEnd, mismatch: answer };
  const wrong = options.checkAnswer?.(answer) ?? null;
  const compressor = ClientCompressor.forAnswer(answer);
  const frames: FrameSpec[] = [];
  for (const m of messages)
    frames.push(...compressedFrames(m.opcode, await compressor.compress(m.payload), options.fragment));
  compressor.close();
  await client.sendFrames(frames);
  return {
    receive: messages.map(expected),
    end: normalEnd,
    ...(wrong !== null ? { mismatch: `answer "${answer.raw}": ${wrong}` } : {}),
  };
}

const failsWith = (code: number): Expectation => ({
  receive: [],
  end: { clientCloses: false, codes: [code], failure: true },
});

const DEFLATE_CASES: ConformanceCase[] = [];
const add = (c: ConformanceCase): void => {
  DEFLATE_CASES.push(c);
};
const OFFER = 'permessage-deflate';

function sizeName(size: number): string {
  return size >= KiB ? `${size / KiB} KiB` : `${size} B`;
}

// ---------------------------------------------------------------- 12: payloads

const payloadKinds: Array<[string, string, (size: number, seed: number) => Message]> = [
  ['12.1', 'JSON text', (n, s) => ({ opcode: Opcode.Text, payload: jsonText(n, s) })],
  ['12.2', 'compressible binary', (n, s) => ({ opcode: Opcode.Binary, payload: patternedBinary(n, s) })],
  ['12.3', 'multi-byte UTF-8 text', (n, s) => ({ opcode: Opcode.Text, payload: utf8Text(n, s) })],
  ['12.4', 'random (incompressible) binary', (n) => ({ opcode: Opcode.Binary, payload: randomBytes(n) })],
];
for (const [prefix, name, make] of payloadKinds) {
  for (const [i, size] of SIZES.entries()) {
    add({
      id: `${prefix}.${i + 1}`,
      section: 12,
      extensions: OFFER,
      timeoutMs: 8000,
      description: `${MESSAGES} compressed messages of ${name}, ${sizeName(size)} each (client context takeover), echoed compressed from ${ECHO_THRESHOLD} B`,
      run: (c) =>
        compressedEcho(
          c,
          Array.from({ length: MESSAGES }, (_, k) => make(size, k)),
        ),
    });
  }
}
for (const [i, fragment] of [1, 17, 256, 4096].entries()) {
  add({
    id: `12.5.${i + 1}`,
    section: 12,
    extensions: OFFER,
    timeoutMs: 8000,
    description: `${MESSAGES} compressed JSON messages of 16 KiB, the compressed bytes fragmented into ${fragment}-byte frames (RSV1 on the first only)`,
    run: (c) =>
      compressedEcho(
        c,
        Array.from({ length: MESSAGES }, (_, k) => ({ opcode: Opcode.Text, payload: jsonText(16 * KiB, k) })),
        { fragment },
      ),
  });
}
add({
  id: '12.6.1',
  section: 12,
  extra: true,
  extensions: OFFER,
  description: 'a compressed message fragmented around a ping: pong first, then the echo',
  run: async (c) => {
    const payload = jsonText(4 * KiB, 1);
    const z = deflateRawSync(payload, { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);
    const half = z.length >> 1;
    await c.sendFrames([
      { opcode: Opcode.Text, payload: z.subarray(0, half), fin: false, rsv: Rsv.Rsv1 },
      { opcode: Opcode.Ping, payload: 'in the middle' },
      { opcode: Opcode.Continuation, payload: z.subarray(half) },
    ]);
    return {
      receive: [
        { kind: 'pong', payload: Buffer.from('in the middle') },
        { kind: 'text', payload, compressed: true },
      ],
      end: normalEnd,
    };
  },
});
add({
  id: '12.6.2',
  section: 12,
  extra: true,
  extensions: OFFER,
  description: 'plain and compressed messages mixed on one connection (RSV1 is per message)',
  run: async (c) => {
    const a = jsonText(2 * KiB, 1);
    const b = jsonText(2 * KiB, 2);
    const z = deflateRawSync(b, { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);
    await c.sendFrames([
      { opcode: Opcode.Text, payload: a },
      { opcode: Opcode.Text, payload: z, rsv: Rsv.Rsv1 },
      { opcode: Opcode.Binary, payload: Buffer.from('x') },
    ]);
    return {
      receive: [
        { kind: 'text', payload: a, compressed: true },
        { kind: 'text', payload: b, compressed: true },
        { kind: 'binary', payload: Buffer.from('x'), compressed: false },
      ],
      end: normalEnd,
    };
  },
});
add({
  id: '12.6.3',
  section: 12,
  extra: true,
  extensions: OFFER,
  description: 'an empty compressed message (the single byte 0x00) echoes as an empty message',
  run: async (c) => {
    await c.sendFrame({ opcode: Opcode.Text, payload: Buffer.from([0x00]), rsv: Rsv.Rsv1 });
    return { receive: [{ kind: 'text', payload: Buffer.alloc(0), compressed: false }], end: normalEnd };
  },
});

// Failures.
add({
  id: '12.7.1',
  section: 12,
  extra: true,
  extensions: OFFER,
  description: 'RSV1 on a continuation frame: 1002',
  run: async (c) => {
    const z = deflateRawSync(jsonText(1024, 1), { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);
    await c.sendFrames([
      { opcode: Opcode.Text, payload: z.subarray(0, 10), fin: false, rsv: Rsv.Rsv1 },
      { opcode: Opcode.Continuation, payload: z.subarray(10), rsv: Rsv.Rsv1 },
    ]);
    return failsWith(1002);
  },
});
add({
  id: '12.7.2',
  section: 12,
  extra: true,
  extensions: OFFER,
  description: 'RSV1 on a ping (control frames are never compressed): 1002',
  run: async (c) => {
    await c.sendFrame({ opcode: Opcode.Ping, payload: 'x', rsv: Rsv.Rsv1 });
    return failsWith(1002);
  },
});
add({
  id: '12.7.3',
  section: 12,
  extra: true,
  extensions: OFFER,
  description: 'RSV2 with permessage-deflate agreed: 1002',
  run: async (c) => {
    await c.sendFrame({ opcode: Opcode.Text, payload: 'x', rsv: Rsv.Rsv2 });
    return failsWith(1002);
  },
});
add({
  id: '12.7.4',
  section: 12,
  extra: true,
  extensions: OFFER,
  description: 'compressed payload that is not valid DEFLATE data: 1007',
  run: async (c) => {
    await c.sendFrame({
      opcode: Opcode.Binary,
      payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01]),
      rsv: Rsv.Rsv1,
    });
    return failsWith(1007);
  },
});
add({
  id: '12.7.5',
  section: 12,
  extra: true,
  extensions: OFFER,
  description: 'compressed text that inflates to invalid UTF-8: 1007',
  run: async (c) => {
    const z = deflateRawSync(Buffer.from([0x68, 0x69, 0xc0, 0xaf]), { finishFlush: constants.Z_SYNC_FLUSH });
    await c.sendFrame({ opcode: Opcode.Text, payload: z.subarray(0, -4), rsv: Rsv.Rsv1 });
    return failsWith(1007);
  },
});
add({
  id: '12.7.6',
  section: 12,
  extra: true,
  extensions: OFFER,
  timeoutMs: 8000,
  description: 'bomb: about 1 MiB compressed that inflates to 1 GiB (read limit 16 MiB): 1009',
  run: async (c) => {
    await c.sendFrame({ opcode: Opcode.Binary, payload: bomb(1024), rsv: Rsv.Rsv1 });
    return failsWith(1009);
  },
});
add({
  id: '12.7.7',
  section: 12,
  extra: true,
  extensions: OFFER,
  description:
    'a message ending in a final DEFLATE block (BFINAL set, RFC 7692 §7.2.3.4), then another compressed message',
  run: async (c) => {
    const first = jsonText(1024, 1);
    const second = jsonText(1024, 2);
    const z = (data: Buffer, finish: boolean): Buffer =>
      finish
        ? deflateRawSync(data)
        : deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);
    await c.sendFrames([
      { opcode: Opcode.Text, payload: z(first, true), rsv: Rsv.Rsv1 },
      { opcode: Opcode.Text, payload: z(second, false), rsv: Rsv.Rsv1 },
    ]);
    return {
      receive: [
        { kind: 'text', payload: first, compressed: true },
        { kind: 'text', payload: second, compressed: true },
      ],
      end: normalEnd,
    };
  },
});

add({
  id: '12.7.8',
  section: 12,
  extra: true,
  extensions: OFFER,
  description: 'compressed data continuing past a final DEFLATE block: 1007',
  run: async (c) => {
    const final = deflateRawSync(Buffer.from('done'));
    await c.sendFrame({ opcode: Opcode.Text, payload: Buffer.concat([final, final]), rsv: Rsv.Rsv1 });
    return failsWith(1007);
  },
});

/**
 * A DEFLATE stream of `mib` MiB of zeros: one flushed MiB compressed once
 * (about 1 KiB) and repeated, since flushed non-final blocks concatenate.
 */
export function bomb(mib: number): Buffer {
  const one = deflateRawSync(Buffer.alloc(MiB), { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
  const all = Buffer.concat(Array.from({ length: mib }, () => one));
  return all.subarray(0, all.length - 4);
}

// ---------------------------------------------------------------- 13: parameters

const PARAM_SIZES = [64, 4 * KiB, 64 * KiB];

/** One case per size for an offer; `check` validates the answer. */
function parameterCases(
  prefix: string,
  offer: string,
  what: string,
  check: (a: DeflateAnswer) => string | null,
  payload: (size: number, seed: number) => Buffer = jsonText,
): void {
  for (const [i, size] of PARAM_SIZES.entries()) {
    add({
      id: `${prefix}.${i + 1}`,
      section: 13,
      extensions: offer,
      timeoutMs: 8000,
      description: `offer "${offer}" (${what}): ${MESSAGES} messages of ${sizeName(size)}`,
      run: (c) =>
        compressedEcho(
          c,
          Array.from({ length: MESSAGES }, (_, k) => ({ opcode: Opcode.Binary, payload: payload(size, k) })),
          { checkAnswer: check },
        ),
    });
  }
}

const serverNoContext = (a: DeflateAnswer): string | null =>
  a.serverNoContextTakeover ? null : 'server_no_context_takeover missing';

parameterCases('13.1', OFFER, 'defaults', serverNoContext);
parameterCases(
  '13.2',
  `${OFFER}; client_no_context_takeover`,
  'client resets its context',
  (a) => serverNoContext(a) ?? (a.clientNoContextTakeover ? null : 'client_no_context_takeover not accepted'),
);
for (let bits = 8; bits <= 15; bits++) {
  parameterCases(
    `13.3.${bits}`,
    `${OFFER}; server_max_window_bits=${bits}`,
    'the server compresses within the window; the judge inflates with exactly that window',
    (a) =>
      serverNoContext(a) ?? (a.serverMaxWindowBits === bits ? null : `server_max_window_bits not ${bits}`),
    (size) => periodic(size, bits),
  );
}
for (let bits = 8; bits <= 15; bits++) {
  parameterCases(
    `13.4.${bits}`,
    `${OFFER}; client_max_window_bits=${bits}`,
    'the client compresses within the window, with context takeover',
    (a) => serverNoContext(a) ?? (a.clientMaxWindowBits <= bits ? null : 'client window above the offer'),
    (size) => periodic(size, bits),
  );
}
for (const bits of [8, 11, 15]) {
  parameterCases(
    `13.5.${bits}`,
    `${OFFER}; client_no_context_takeover; client_max_window_bits=${bits}`,
    'both',
    (a) =>
      serverNoContext(a) ??
      (a.clientNoContextTakeover && a.clientMaxWindowBits <= bits ? null : 'parameters not as offered'),
  );
}
parameterCases(
  '13.6',
  `${OFFER}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9`,
  'every parameter',
  (a) =>
    serverNoContext(a) ??
    (a.clientNoContextTakeover && a.serverMaxWindowBits === 9 && a.clientMaxWindowBits <= 9
      ? null
      : 'parameters not as offered'),
);
parameterCases(
  '13.7',
  `${OFFER}; server_max_window_bits=7, x-unknown-extension, ${OFFER}; client_no_context_takeover, ${OFFER}`,
  'the first acceptable of several offers is taken',
  (a) => serverNoContext(a) ?? (a.clientNoContextTakeover ? null : 'not the second permessage-deflate offer'),
);

/** Offers that must be declined: the 101 carries no extension, messages stay plain, RSV1 is refused. */
const badOffers: Array<[string, string]> = [
  ['unknown parameter', `${OFFER}; foo`],
  ['server_max_window_bits without a value', `${OFFER}; server_max_window_bits`],
  ['window bits out of range', `${OFFER}; server_max_window_bits=16`],
  ['window bits with a leading zero', `${OFFER}; client_max_window_bits=09`],
  ['a parameter twice', `${OFFER}; client_no_context_takeover; client_no_context_takeover`],
  ['a value on a flag parameter', `${OFFER}; server_no_context_takeover=1`],
  ['another extension only', 'x-webkit-deflate-frame'],
  ['an unterminated quoted value', `${OFFER}; client_max_window_bits="10`],
];
for (const [i, [what, offer]] of badOffers.entries()) {
  add({
    id: `13.8.${i + 1}`,
    section: 13,
    extra: true,
    extensions: offer,
    description: `declined offer (${what}): no extension in the 101, plain echo, then RSV1 fails with 1002`,
    run: async (c) => {
      const header = c.headers['sec-websocket-extensions'];
      const plain = jsonText(1024, i);
      await c.sendFrame({ opcode: Opcode.Text, payload: plain });
      const echo = await c.nextFrame(3000);
      await c.sendFrame({ opcode: Opcode.Text, payload: 'x', rsv: Rsv.Rsv1 });
      const ok = header === undefined && echo !== null && echo.rsv === 0 && echo.payload.equals(plain);
      return {
        ...failsWith(1002),
        ...(ok ? {} : { mismatch: `answer ${header ?? '(none)'}, echo rsv ${echo?.rsv ?? '-'}` }),
        selfChecked: {
          expected: 'no extension; plain echo',
          observed: ok ? 'no extension; plain echo ok' : 'wrong',
        },
      };
    },
  });
}
add({
  id: '13.8.9',
  section: 13,
  extra: true,
  extensions: `${OFFER}; client_max_window_bits="10"`,
  description: 'a quoted window value is read as its token: accepted',
  run: (c) =>
    compressedEcho(c, [{ opcode: Opcode.Text, payload: jsonText(4 * KiB, 1) }], {
      checkAnswer: (a) => (a.clientMaxWindowBits <= 10 ? null : 'client window above the offer'),
    }),
});

export { DEFLATE_CASES };
