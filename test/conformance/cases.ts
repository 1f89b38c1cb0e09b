// The case table of the RFC 6455 conformance suite. Numbering follows the
// public Autobahn|Testsuite case list wherever a case corresponds; cases with
// no counterpart there are marked `extra`. Section 9 uses reduced sizes so the
// whole table runs in well under a minute on a laptop.
import { Opcode, Rsv, buildFrame, closePayload, type FrameSpec, type RawClient } from './raw-client.ts';
import type { ConformanceCase, EndExpectation, ExpectedMessage, Expectation } from './evaluate.ts';
import { DEFLATE_CASES, DEFLATE_SECTIONS } from './deflate-cases.ts';

/** Human-readable section titles, keyed by section number. */
export const SECTIONS: Readonly<Record<number, string>> = {
  1: 'Framing: text and binary echo',
  2: 'Pings and pongs',
  3: 'Reserved header bits',
  4: 'Reserved opcodes',
  5: 'Fragmentation',
  6: 'UTF-8 handling',
  7: 'Close handling',
  9: 'Large messages (reduced sizes)',
  10: 'Framing strictness and limits',
  ...DEFLATE_SECTIONS,
};

const KiB = 1024;
const MiB = 1024 * 1024;
/** The echo server's read limit; messages above it must be refused with 1009. */
const READ_LIMIT = 16 * MiB;

// ---------------------------------------------------------------- helpers

/** Deterministic printable ASCII so a corrupted or shifted echo never compares equal by accident. */
function asciiPayload(length: number, seed = 0): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = 33 + ((i * 7 + seed) % 94);
  return out;
}

/** Deterministic bytes covering the full 0..255 range. */
function binaryPayload(length: number, seed = 0): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 17 + (i >> 8)) & 0xff;
  return out;
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

const text = (payload: Buffer | string): ExpectedMessage => ({ kind: 'text', payload: Buffer.from(payload) });
const binary = (payload: Buffer): ExpectedMessage => ({ kind: 'binary', payload });
const pong = (payload: Buffer | string = ''): ExpectedMessage => ({
  kind: 'pong',
  payload: Buffer.from(payload),
});

const T = (payload: Buffer | string, more: Partial<FrameSpec> = {}): FrameSpec => ({
  opcode: Opcode.Text,
  payload,
  ...more,
});
const B = (payload: Buffer, more: Partial<FrameSpec> = {}): FrameSpec => ({
  opcode: Opcode.Binary,
  payload,
  ...more,
});
const C = (payload: Buffer | string, fin = true): FrameSpec => ({
  opcode: Opcode.Continuation,
  payload,
  fin,
});
const PING = (payload: Buffer | string = '', more: Partial<FrameSpec> = {}): FrameSpec => ({
  opcode: Opcode.Ping,
  payload,
  ...more,
});
const PONG = (payload: Buffer | string = ''): FrameSpec => ({ opcode: Opcode.Pong, payload });
const CLOSE = (code?: number, reason: string | Buffer = ''): FrameSpec => ({
  opcode: Opcode.Close,
  payload: closePayload(code, reason),
});

const normalEnd: EndExpectation = { clientCloses: true, codes: [1000], failure: false };

/** The server must send `messages` and then complete a normal closing handshake started by the client. */
function echoed(...messages: ExpectedMessage[]): Expectation {
  return { receive: messages, end: normalEnd };
}

/** The server must send `before` (possibly nothing) and then fail the connection with `code`. */
function failsWith(code: number, ...before: ExpectedMessage[]): Expectation {
  return { receive: before, end: { clientCloses: false, codes: [code], failure: true } };
}

/** The case itself sent a close; the server must send `before` and answer with one of `codes`. */
function closeAnswered(
  codes: Array<number | null>,
  before: ExpectedMessage[] = [],
  lenient?: number[],
): Expectation {
  return {
    receive: before,
    end: { clientCloses: false, codes, failure: false, ...(lenient ? { lenientCodes: lenient } : {}) },
  };
}

/** How the bytes of a case leave the client. */
type Delivery = 'whole' | 'frames' | 'octets';

/** Writes frames in one write, one write per frame (with a pause), or one byte per write. */
async function deliver(client: RawClient, frames: FrameSpec[], how: Delivery, pauseMs = 20): Promise<void> {
  if (how === 'whole') return client.sendFrames(frames);
  if (how === 'octets') return client.writeChopped(Buffer.concat(frames.map(buildFrame)), 1, 0);
  for (const [i, frame] of frames.entries()) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    await client.sendFrame(frame);
  }
}

/** Splits `bytes` into consecutive pieces of `size` bytes (the last may be shorter). */
function pieces(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  if (out.length === 0) out.push(Buffer.alloc(0));
  return out;
}

/** Frames one message as fragments of `size` bytes (first fragment keeps the opcode). */
function fragmented(opcode: number, payload: Buffer, size: number): FrameSpec[] {
  const parts = pieces(payload, size);
  return parts.map((part, i) => ({
    opcode: i === 0 ? opcode : Opcode.Continuation,
    payload: part,
    fin: i === parts.length - 1,
  }));
}

/**
 * Fail-fast probe: writes `first`, gives the server `waitMs` to fail the
 * connection, and only then writes the remaining pieces. A failure that only
 * comes after the remaining bytes is correct but late (NON-STRICT).
 */
async function failFast(
  client: RawClient,
  first: Buffer,
  rest: Buffer[],
  waitMs = 800,
): Promise<Expectation> {
  await client.write(first);
  const early = await client.waitFor(() => client.closeFrame !== undefined || client.closed, waitMs);
  if (!early) for (const piece of rest) await client.write(piece);
  return {
    ...failsWith(1007),
    ...(early
      ? {}
      : { nonStrict: `no failure within ${waitMs} ms of the invalid bytes; failed only after the rest` }),
  };
}

const CASES: ConformanceCase[] = [];
const add = (c: ConformanceCase): void => {
  CASES.push(c);
};

// ---------------------------------------------------------------- 1: framing

const ECHO_LENGTHS = [0, 125, 126, 127, 128, 65535, 65536];
for (const [kind, sub, opcode] of [
  ['text', 1, Opcode.Text],
  ['binary', 2, Opcode.Binary],
] as const) {
  const payloadOf = (n: number): Buffer => (kind === 'text' ? asciiPayload(n, sub) : binaryPayload(n, sub));
  const expect = (p: Buffer): ExpectedMessage => (kind === 'text' ? text(p) : binary(p));
  ECHO_LENGTHS.forEach((n, i) => {
    add({
      id: `1.${sub}.${i + 1}`,
      section: 1,
      description: `${kind} message, ${n}-byte payload, one frame`,
      run: async (c) => {
        const p = payloadOf(n);
        await c.sendFrame({ opcode, payload: p });
        return echoed(expect(p));
      },
    });
  });
  add({
    id: `1.${sub}.8`,
    section: 1,
    description: `${kind} message, 65536-byte payload, frame written in 997-byte chops`,
    run: async (c) => {
      const p = payloadOf(65536);
      await c.writeChopped(buildFrame({ opcode, payload: p }), 997);
      return echoed(expect(p));
    },
  });
  add({
    id: `1.${sub}.9`,
    section: 1,
    extra: true,
    description: `${kind} message, 125-byte payload, frame written one byte per TCP write with 1 ms pauses`,
    run: async (c) => {
      const p = payloadOf(125);
      await c.writeChopped(buildFrame({ opcode, payload: p }), 1, 1);
      return echoed(expect(p));
    },
  });
}

// ---------------------------------------------------------------- 2: pings and pongs

const pingText = utf8('are you there? – ping');
const pingBinary = hex('00 ff 10 80 fe 7f c3 28');
add({
  id: '2.1',
  section: 2,
  description: 'ping without payload is answered by an empty pong',
  run: async (c) => {
    await c.sendFrame(PING());
    return echoed(pong());
  },
});
add({
  id: '2.2',
  section: 2,
  description: 'ping with a short text payload is answered by a pong with the same payload',
  run: async (c) => {
    await c.sendFrame(PING(pingText));
    return echoed(pong(pingText));
  },
});
add({
  id: '2.3',
  section: 2,
  description: 'ping with a binary (non-UTF-8) payload is answered by a pong with the same bytes',
  run: async (c) => {
    await c.sendFrame(PING(pingBinary));
    return echoed(pong(pingBinary));
  },
});
add({
  id: '2.4',
  section: 2,
  description: 'ping with the largest allowed control payload (125 bytes)',
  run: async (c) => {
    const p = binaryPayload(125, 4);
    await c.sendFrame(PING(p));
    return echoed(pong(p));
  },
});
add({
  id: '2.5',
  section: 2,
  description: 'ping with a 126-byte payload (control frames are limited to 125) fails the connection',
  run: async (c) => {
    await c.sendFrame(PING(binaryPayload(126, 5)));
    return failsWith(1002);
  },
});
add({
  id: '2.6',
  section: 2,
  description: 'ping with 125-byte payload written one byte per TCP write',
  run: async (c) => {
    const p = asciiPayload(125, 6);
    await c.writeChopped(buildFrame(PING(p)), 1, 1);
    return echoed(pong(p));
  },
});
add({
  id: '2.7',
  section: 2,
  description: 'unsolicited empty pong is ignored',
  run: async (c) => {
    await c.sendFrame(PONG());
    return echoed();
  },
});
add({
  id: '2.8',
  section: 2,
  description: 'unsolicited pong with payload is ignored',
  run: async (c) => {
    await c.sendFrame(PONG('nobody asked for this pong'));
    return echoed();
  },
});
add({
  id: '2.9',
  section: 2,
  description: 'unsolicited pong followed by a ping: only the ping is answered',
  run: async (c) => {
    await c.sendFrames([PONG('stray pong'), PING('real ping')]);
    return echoed(pong('real ping'));
  },
});
const tenPings = Array.from({ length: 10 }, (_, i) => `ping number ${i + 1}`);
const coalesceReason = 'RFC 6455 5.5.3 lets an endpoint answer only the most recent of several pending pings';
add({
  id: '2.10',
  section: 2,
  description: '10 pings with distinct payloads in one write are answered by 10 matching pongs',
  acceptNonStrict: coalesceReason,
  run: async (c) => {
    await c.sendFrames(tenPings.map((p) => PING(p)));
    return { ...echoed(...tenPings.map((p) => pong(p))), pongsMayCoalesce: true };
  },
});
add({
  id: '2.11',
  section: 2,
  description: '10 pings written one byte per TCP write are answered by 10 matching pongs',
  acceptNonStrict: coalesceReason,
  run: async (c) => {
    await c.writeChopped(Buffer.concat(tenPings.map((p) => buildFrame(PING(p)))), 1, 0);
    return { ...echoed(...tenPings.map((p) => pong(p))), pongsMayCoalesce: true };
  },
});

// ---------------------------------------------------------------- 3: reserved bits

const hello = 'hello before the bad frame';
add({
  id: '3.1',
  section: 3,
  description: 'text frame with RSV3 set fails the connection',
  run: async (c) => {
    await c.sendFrame(T('reserved bits', { rsv: Rsv.Rsv3 }));
    return failsWith(1002);
  },
});
for (const [id, rsv, bits, how] of [
  ['3.2', Rsv.Rsv2, 'RSV2', 'whole'],
  ['3.3', Rsv.Rsv2 | Rsv.Rsv3, 'RSV2+RSV3', 'frames'],
  ['3.4', Rsv.Rsv1, 'RSV1', 'octets'],
] as const) {
  const delivery =
    how === 'whole' ? 'one write' : how === 'frames' ? 'one write per frame' : 'one byte per write';
  add({
    id,
    section: 3,
    description: `valid text, then text with ${bits} set, then ping (${delivery}): echo, then failure, no pong`,
    run: async (c) => {
      await deliver(c, [T(hello), T('reserved bits', { rsv }), PING('too late')], how);
      return failsWith(1002, text(hello));
    },
  });
}
add({
  id: '3.5',
  section: 3,
  description: 'binary frame with RSV1+RSV3 set fails the connection',
  run: async (c) => {
    await c.sendFrame(B(binaryPayload(8), { rsv: Rsv.Rsv1 | Rsv.Rsv3 }));
    return failsWith(1002);
  },
});
add({
  id: '3.6',
  section: 3,
  description: 'ping with RSV1+RSV2 set fails the connection without a pong',
  run: async (c) => {
    await c.sendFrame(PING('reserved', { rsv: Rsv.Rsv1 | Rsv.Rsv2 }));
    return failsWith(1002);
  },
});
add({
  id: '3.7',
  section: 3,
  description: 'close frame with all three RSV bits set fails the connection',
  run: async (c) => {
    await c.sendFrame({ ...CLOSE(1000), rsv: 7 });
    return failsWith(1002);
  },
});
let rsvExtra = 8;
for (const [kind, opcode] of [
  ['binary', Opcode.Binary],
  ['ping', Opcode.Ping],
] as const) {
  for (const [bits, rsv] of [
    ['RSV1', Rsv.Rsv1],
    ['RSV2', Rsv.Rsv2],
    ['RSV3', Rsv.Rsv3],
  ] as const) {
    add({
      id: `3.${rsvExtra++}`,
      section: 3,
      extra: true,
      description: `${kind} frame with only ${bits} set (no extension negotiated) fails the connection`,
      run: async (c) => {
        await c.sendFrame({ opcode, payload: binaryPayload(6, rsv), rsv });
        return failsWith(1002);
      },
    });
  }
}

// ---------------------------------------------------------------- 4: reserved opcodes

for (const [group, opcodes] of [
  [1, [3, 4, 5, 6, 7]],
  [2, [11, 12, 13, 14, 15]],
] as const) {
  const kind = group === 1 ? 'non-control' : 'control';
  opcodes.forEach((opcode, i) => {
    const withPayload = i % 2 === 1 || i === 4;
    const afterMessage = i >= 2;
    const payload = withPayload ? utf8('payload of a reserved opcode') : Buffer.alloc(0);
    add({
      id: `4.${group}.${i + 1}`,
      section: 4,
      description: afterMessage
        ? `valid text, then reserved ${kind} opcode ${opcode}${withPayload ? ' with payload' : ''}, then ping: echo, then failure, no pong`
        : `reserved ${kind} opcode ${opcode}${withPayload ? ' with payload' : ''} fails the connection`,
      run: async (c) => {
        if (!afterMessage) {
          await c.sendFrame({ opcode, payload });
          return failsWith(1002);
        }
        await c.sendFrames([T(hello), { opcode, payload }, PING('too late')]);
        return failsWith(1002, text(hello));
      },
    });
  });
}

// ---------------------------------------------------------------- 5: fragmentation

const fragA = 'first fragment, ';
const fragB = 'second fragment';
add({
  id: '5.1',
  section: 5,
  description: 'ping split into two fragments (control frames must not be fragmented) fails the connection',
  run: async (c) => {
    await c.sendFrames([PING('frag', { fin: false }), C('mented')]);
    return failsWith(1002);
  },
});
add({
  id: '5.2',
  section: 5,
  description: 'pong split into two fragments fails the connection',
  run: async (c) => {
    await c.sendFrames([{ ...PONG('frag'), fin: false }, C('mented')]);
    return failsWith(1002);
  },
});
for (const [id, how] of [
  ['5.3', 'whole'],
  ['5.4', 'octets'],
  ['5.5', 'frames'],
] as const) {
  add({
    id,
    section: 5,
    description: `text message in two fragments (${how === 'whole' ? 'one write' : how === 'octets' ? 'one byte per write' : 'one write per frame, paused'}) is echoed as one message`,
    run: async (c) => {
      await deliver(c, [T(fragA, { fin: false }), C(fragB)], how);
      return echoed(text(fragA + fragB));
    },
  });
}
for (const [id, how] of [
  ['5.6', 'whole'],
  ['5.7', 'octets'],
  ['5.8', 'frames'],
] as const) {
  add({
    id,
    section: 5,
    description: `text in two fragments with a ping between them (${how === 'whole' ? 'one write' : how === 'octets' ? 'one byte per write' : 'one write per frame, paused'}): pong, then the whole message`,
    run: async (c) => {
      await deliver(c, [T(fragA, { fin: false }), PING('between fragments'), C(fragB)], how);
      return echoed(pong('between fragments'), text(fragA + fragB));
    },
  });
}
for (const [first, fin] of [
  [9, true],
  [12, false],
] as const) {
  (['whole', 'frames', 'octets'] as const).forEach((how, i) => {
    add({
      id: `5.${first + i}`,
      section: 5,
      description: `continuation (FIN=${fin ? 1 : 0}) with nothing to continue, then a text message (${how === 'whole' ? 'one write' : how === 'frames' ? 'one write per frame' : 'one byte per write'}) fails the connection`,
      run: async (c) => {
        await deliver(c, [C('orphan continuation', fin), T('never echoed')], how);
        return failsWith(1002);
      },
    });
  });
}
add({
  id: '5.15',
  section: 5,
  description:
    'text in two fragments, then an orphan continuation (FIN=0), then a text: first echoed, then failure',
  run: async (c) => {
    await c.sendFrames([T(fragA, { fin: false }), C(fragB), C('orphan', false), T('never echoed')]);
    return failsWith(1002, text(fragA + fragB));
  },
});
for (const [id, fin] of [
  ['5.16', false],
  ['5.17', true],
] as const) {
  add({
    id,
    section: 5,
    description: `twice: orphan continuation (FIN=${fin ? 1 : 0}), then a text in two fragments: failure at the first frame`,
    run: async (c) => {
      const round = [C('orphan', fin), T(fragA, { fin: false }), C(fragB)];
      await c.sendFrames([...round, ...round]);
      return failsWith(1002);
    },
  });
}
add({
  id: '5.18',
  section: 5,
  description: 'new text frame while a fragmented text is in progress fails the connection',
  run: async (c) => {
    await c.sendFrames([T(fragA, { fin: false }), T(fragB)]);
    return failsWith(1002);
  },
});
const fiveFragments = ['one ', 'two ', 'three ', 'four ', 'five'];
const withPings = (): FrameSpec[] => [
  T(fiveFragments[0]!, { fin: false }),
  PING('ping after fragment 1'),
  C(fiveFragments[1]!, false),
  C(fiveFragments[2]!, false),
  C(fiveFragments[3]!, false),
  PING('ping after fragment 4'),
  C(fiveFragments[4]!),
];
add({
  id: '5.19',
  section: 5,
  description: 'text in five fragments with pings after the 1st and 4th, one write per frame with pauses',
  run: async (c) => {
    await deliver(c, withPings(), 'frames', 30);
    return echoed(pong('ping after fragment 1'), pong('ping after fragment 4'), text(fiveFragments.join('')));
  },
});
add({
  id: '5.20',
  section: 5,
  description: 'text in five fragments with pings after the 1st and 4th, one byte per write',
  run: async (c) => {
    await deliver(c, withPings(), 'octets');
    return echoed(pong('ping after fragment 1'), pong('ping after fragment 4'), text(fiveFragments.join('')));
  },
});
add({
  id: '5.21',
  section: 5,
  extra: true,
  description: 'binary message in three fragments is echoed as one binary message',
  run: async (c) => {
    const p = binaryPayload(300, 21);
    await c.sendFrames(fragmented(Opcode.Binary, p, 100));
    return echoed(binary(p));
  },
});
add({
  id: '5.22',
  section: 5,
  extra: true,
  description: 'text message of 200 one-byte fragments is echoed as one message',
  run: async (c) => {
    const p = asciiPayload(200, 22);
    await c.sendFrames(fragmented(Opcode.Text, p, 1));
    return echoed(text(p));
  },
});
add({
  id: '5.23',
  section: 5,
  extra: true,
  description: 'binary message of 200 one-byte fragments is echoed as one message',
  run: async (c) => {
    const p = binaryPayload(200, 23);
    await c.sendFrames(fragmented(Opcode.Binary, p, 1));
    return echoed(binary(p));
  },
});
add({
  id: '5.24',
  section: 5,
  extra: true,
  description: 'binary frame while a fragmented text is in progress fails the connection',
  run: async (c) => {
    await c.sendFrames([T(fragA, { fin: false }), B(binaryPayload(4))]);
    return failsWith(1002);
  },
});
add({
  id: '5.25',
  section: 5,
  extra: true,
  description: 'close frame with FIN=0 (fragmented control frame) fails the connection',
  run: async (c) => {
    await c.sendFrames([{ ...CLOSE(1000), fin: false }, C('')]);
    return failsWith(1002);
  },
});
add({
  id: '5.26',
  section: 5,
  extra: true,
  description: 'unsolicited pong between fragments is ignored; the message is echoed',
  run: async (c) => {
    await c.sendFrames([T(fragA, { fin: false }), PONG('stray'), C(fragB)]);
    return echoed(text(fragA + fragB));
  },
});

// ---------------------------------------------------------------- 6: UTF-8

add({
  id: '6.1.1',
  section: 6,
  description: 'empty text message in one frame',
  run: async (c) => {
    await c.sendFrame(T(''));
    return echoed(text(''));
  },
});
add({
  id: '6.1.2',
  section: 6,
  description: 'empty text message as three empty fragments',
  run: async (c) => {
    await c.sendFrames([T('', { fin: false }), C('', false), C('')]);
    return echoed(text(''));
  },
});
add({
  id: '6.1.3',
  section: 6,
  description: 'text as empty, non-empty, empty fragments',
  run: async (c) => {
    await c.sendFrames([T('', { fin: false }), C('middle part', false), C('')]);
    return echoed(text('middle part'));
  },
});

const multilingual = 'Grüße aus Zürich · Καλημέρα κόσμε · Здравствуй · こんにちは世界 · 안녕 · 😀🚀';
const astral = '𝄞𐍈😀🚀🦄𠜎';
const codePointFragments = (s: string): FrameSpec[] => {
  const points = [...s];
  return points.map((p, i) => ({
    opcode: i === 0 ? Opcode.Text : Opcode.Continuation,
    payload: p,
    fin: i === points.length - 1,
  }));
};
add({
  id: '6.2.1',
  section: 6,
  description: 'multilingual text (2-, 3- and 4-byte sequences) in one frame',
  run: async (c) => {
    await c.sendFrame(T(multilingual));
    return echoed(text(multilingual));
  },
});
add({
  id: '6.2.2',
  section: 6,
  description: 'multilingual text with one code point per fragment',
  run: async (c) => {
    await c.sendFrames(codePointFragments(multilingual));
    return echoed(text(multilingual));
  },
});
add({
  id: '6.2.3',
  section: 6,
  description: 'multilingual text in one-byte fragments (code points split across fragments)',
  run: async (c) => {
    await c.sendFrames(fragmented(Opcode.Text, utf8(multilingual), 1));
    return echoed(text(multilingual));
  },
});
add({
  id: '6.2.4',
  section: 6,
  description: 'text of 4-byte code points only, in one-byte fragments',
  run: async (c) => {
    await c.sendFrames(fragmented(Opcode.Text, utf8(astral), 1));
    return echoed(text(astral));
  },
});
const invalidText = Buffer.concat([utf8('κόσμε'), hex('ed a0 80'), utf8('after the surrogate')]);
add({
  id: '6.3.1',
  section: 6,
  description: 'text containing an encoded surrogate (ED A0 80) in one frame fails with 1007',
  run: async (c) => {
    await c.sendFrame(T(invalidText));
    return failsWith(1007);
  },
});
add({
  id: '6.3.2',
  section: 6,
  description: 'text containing an encoded surrogate, in one-byte fragments, fails with 1007',
  run: async (c) => {
    await c.sendFrames(fragmented(Opcode.Text, invalidText, 1));
    return failsWith(1007);
  },
});

// 6.4: fail-fast — the invalid bytes arrive while the rest is still unsent.
const validLead = utf8('κόσμε, this part is fine; ');
const validTail = utf8(' and this part would be fine too');
add({
  id: '6.4.1',
  section: 6,
  description:
    'fail-fast: fragment 2 of 3 carries U+110000 (F4 90 80 80); failure expected before fragment 3 is sent',
  run: async (c) => {
    const first = Buffer.concat([
      buildFrame(T(validLead, { fin: false })),
      buildFrame(C(Buffer.concat([hex('f4 90 80 80'), utf8('x')]), false)),
    ]);
    return failFast(c, first, [buildFrame(C(validTail))]);
  },
});
add({
  id: '6.4.2',
  section: 6,
  description:
    'fail-fast: F4 ends fragment 2, 90 starts fragment 3 of 4; failure expected before fragment 4 is sent',
  run: async (c) => {
    const first = Buffer.concat([
      buildFrame(T(validLead, { fin: false })),
      buildFrame(C(hex('f4'), false)),
      buildFrame(C(Buffer.concat([hex('90 80 80'), utf8('x')]), false)),
    ]);
    return failFast(c, first, [buildFrame(C(validTail))]);
  },
});
/** A 64 KiB text frame whose payload is valid except for `bad` at offset `at`. */
function longFrameWithInvalid(bad: Buffer, at: number): { frame: Buffer; badEnd: number } {
  const payload = asciiPayload(64 * KiB, 64);
  bad.copy(payload, at);
  const frame = buildFrame(T(payload));
  const headerLength = frame.length - payload.length;
  return { frame, badEnd: headerLength + at + bad.length };
}
add({
  id: '6.4.3',
  section: 6,
  description:
    'fail-fast: 64 KiB text frame, invalid F4 90 80 80 at byte 1000, rest unsent; failure expected before the frame completes',
  run: async (c) => {
    const { frame, badEnd } = longFrameWithInvalid(hex('f4 90 80 80'), 1000);
    return failFast(c, frame.subarray(0, badEnd + 8), [frame.subarray(badEnd + 8)]);
  },
});
add({
  id: '6.4.4',
  section: 6,
  description:
    'fail-fast: 64 KiB text frame, F4 and 90 in separate TCP writes, rest unsent; failure expected after the 90',
  run: async (c) => {
    const { frame, badEnd } = longFrameWithInvalid(hex('f4 90 80 80'), 1000);
    await c.write(frame.subarray(0, badEnd - 3));
    await new Promise((resolve) => setTimeout(resolve, 50));
    return failFast(c, frame.subarray(badEnd - 3, badEnd - 2), [frame.subarray(badEnd - 2)]);
  },
});
add({
  id: '6.4.5',
  section: 6,
  extra: true,
  description: 'fail-fast: 64 KiB text frame with a lone continuation byte at byte 10, rest unsent',
  run: async (c) => {
    const { frame, badEnd } = longFrameWithInvalid(hex('80'), 10);
    return failFast(c, frame.subarray(0, badEnd), [frame.subarray(badEnd)]);
  },
});

/** Adds one single-frame UTF-8 case: valid payloads must be echoed, invalid ones fail with 1007. */
function utf8Case(id: string, label: string, bytes: Buffer, valid: boolean): void {
  const shown =
    bytes.length <= 12 ? bytes.toString('hex').replace(/(..)(?!$)/g, '$1 ') : `${bytes.length} bytes`;
  add({
    id,
    section: 6,
    description: `${valid ? 'valid' : 'invalid'} UTF-8, ${label}: ${shown}`,
    run: async (c) => {
      await c.sendFrame(T(bytes));
      return valid ? echoed(text(bytes)) : failsWith(1007);
    },
  });
}
function utf8Group(sub: number, label: string, vectors: Array<[string, boolean]>): void {
  vectors.forEach(([h, valid], i) => utf8Case(`6.${sub}.${i + 1}`, label, hex(h), valid));
}

utf8Group(5, 'assorted code points', [
  ['61 24 62', true], // U+0024
  ['70 c2 a2 71', true], // U+00A2
  ['e2 82 ac 31 30', true], // U+20AC
  ['f0 a4 ad a2', true], // U+24B62
  [utf8('κόσμε').toString('hex'), true],
]);
const kosme = utf8('κόσμε');
// Byte offsets at which a prefix of the word ends on a code point boundary.
const kosmeBoundaries = new Set([...'κόσμε'].map((_, i, all) => utf8(all.slice(0, i + 1).join('')).length));
for (let n = 1; n <= kosme.length; n++) {
  utf8Case(`6.6.${n}`, `first ${n} byte(s) of "κόσμε"`, kosme.subarray(0, n), kosmeBoundaries.has(n));
}
utf8Group(7, 'first code point of each sequence length', [
  ['00', true],
  ['c2 80', true],
  ['e0 a0 80', true],
  ['f0 90 80 80', true],
]);
utf8Group(8, '5/6-byte form (beyond U+10FFFF)', [
  ['f8 88 80 80 80', false],
  ['fc 84 80 80 80 80', false],
]);
utf8Group(9, 'last code point of each sequence length', [
  ['7f', true],
  ['df bf', true],
  ['ef bf bf', true],
  ['f4 8f bf bf', true],
]);
utf8Group(10, 'last 4/5/6-byte form (beyond U+10FFFF)', [
  ['f7 bf bf bf', false],
  ['fb bf bf bf bf', false],
  ['fd bf bf bf bf bf', false],
]);
utf8Group(11, 'boundary code point', [
  ['ed 9f bf', true], // U+D7FF
  ['ee 80 80', true], // U+E000
  ['ef bf bd', true], // U+FFFD
  ['f4 8f bf bf', true], // U+10FFFF
  ['f4 90 80 80', false], // U+110000
]);
const allContinuations = Buffer.from(Array.from({ length: 0xbf - 0x80 }, (_, i) => 0x80 + i)).toString('hex');
utf8Group(12, 'unexpected continuation bytes', [
  ['80', false],
  ['bf', false],
  ['80 bf', false],
  ['80 bf 80', false],
  ['80 bf 80 bf', false],
  ['80 bf 80 bf 80', false],
  ['80 bf 80 bf 80 bf', false],
  [allContinuations, false],
]);
const lonelyStarts = (from: number, to: number): string =>
  Array.from({ length: to - from }, (_, i) => `${(from + i).toString(16)} 20`).join(' ');
utf8Group(13, 'lone start bytes each followed by a space', [
  [lonelyStarts(0xc0, 0xdf), false],
  [lonelyStarts(0xe0, 0xef), false],
  [lonelyStarts(0xf0, 0xf7), false],
  [lonelyStarts(0xf8, 0xfb), false],
  [lonelyStarts(0xfc, 0xfd), false],
]);
const truncated = [
  'c0',
  'e0 80',
  'f0 80 80',
  'f8 80 80 80',
  'fc 80 80 80 80',
  'df',
  'ef bf',
  'f7 bf bf',
  'fb bf bf bf',
  'fd bf bf bf bf',
];
utf8Group(
  14,
  'sequence missing its last continuation byte',
  truncated.map((h) => [h, false]),
);
utf8Group(15, 'concatenated truncated sequences', [[truncated.join(' '), false]]);
utf8Group(16, 'bytes that never occur in UTF-8', [
  ['fe', false],
  ['ff', false],
  ['fe fe ff ff', false],
]);
utf8Group(17, 'overlong encoding of "/"', [
  ['c0 af', false],
  ['e0 80 af', false],
  ['f0 80 80 af', false],
  ['f8 80 80 80 af', false],
  ['fc 80 80 80 80 af', false],
]);
utf8Group(18, 'largest overlong sequence of each length', [
  ['c1 bf', false],
  ['e0 9f bf', false],
  ['f0 8f bf bf', false],
  ['f8 87 bf bf bf', false],
  ['fc 83 bf bf bf bf', false],
]);
utf8Group(19, 'overlong encoding of U+0000', [
  ['c0 80', false],
  ['e0 80 80', false],
  ['f0 80 80 80', false],
  ['f8 80 80 80 80', false],
  ['fc 80 80 80 80 80', false],
]);
const surrogates = ['ed a0 80', 'ed ad bf', 'ed ae 80', 'ed af bf', 'ed b0 80', 'ed be 80', 'ed bf bf'];
utf8Group(
  20,
  'lone UTF-16 surrogate',
  surrogates.map((h) => [h, false]),
);
const highs = ['ed a0 80', 'ed ad bf', 'ed ae 80', 'ed af bf'];
const lows = ['ed b0 80', 'ed bf bf'];
utf8Group(
  21,
  'UTF-16 surrogate pair encoded as two 3-byte sequences',
  highs.flatMap((hi) => lows.map((lo): [string, boolean] => [`${hi} ${lo}`, false])),
);
const nonCharacters = [0xfffe, 0xffff];
for (let plane = 1; plane <= 16; plane++)
  nonCharacters.push(plane * 0x10000 + 0xfffe, plane * 0x10000 + 0xffff);
utf8Group(
  22,
  'noncharacter code point (valid in UTF-8)',
  nonCharacters.map((cp) => [utf8(String.fromCodePoint(cp)).toString('hex'), true]),
);
utf8Group(
  23,
  'Specials block code point',
  [0xfff9, 0xfffa, 0xfffb, 0xfffc, 0xfffd, 0xfffe, 0xffff].map((cp) => [
    utf8(String.fromCodePoint(cp)).toString('hex'),
    true,
  ]),
);

// 6.24: UTF-8 sequences split by fragment boundaries and by TCP writes.
add({
  id: '6.24.1',
  section: 6,
  extra: true,
  description: 'valid multi-byte text in one frame, written one byte per TCP write',
  run: async (c) => {
    await c.writeChopped(buildFrame(T(astral + multilingual.slice(0, 20))), 1, 0);
    return echoed(text(astral + multilingual.slice(0, 20)));
  },
});
add({
  id: '6.24.2',
  section: 6,
  extra: true,
  description: 'one 4-byte code point split 1+3, 2+2 and 3+1 across fragment pairs: all echoed',
  run: async (c) => {
    const emoji = utf8('😀');
    const frames = [1, 2, 3].flatMap((cut) => [
      T(emoji.subarray(0, cut), { fin: false }),
      C(emoji.subarray(cut)),
    ]);
    await c.sendFrames(frames);
    return echoed(text(emoji), text(emoji), text(emoji));
  },
});
add({
  id: '6.24.3',
  section: 6,
  extra: true,
  description: 'surrogate split across fragments (ED | A0 80) fails with 1007',
  run: async (c) => {
    await c.sendFrames([
      T(Buffer.concat([utf8('abc'), hex('ed')]), { fin: false }),
      C(Buffer.concat([hex('a0 80'), utf8('xyz')])),
    ]);
    return failsWith(1007);
  },
});
add({
  id: '6.24.4',
  section: 6,
  extra: true,
  description: 'surrogate split across TCP writes inside one frame fails with 1007',
  run: async (c) => {
    const frame = buildFrame(T(Buffer.concat([utf8('abc'), hex('ed a0 80'), utf8('xyz')])));
    const cut = frame.length - 5;
    await c.write(frame.subarray(0, cut));
    await new Promise((resolve) => setTimeout(resolve, 20));
    await c.write(frame.subarray(cut));
    return failsWith(1007);
  },
});
add({
  id: '6.24.5',
  section: 6,
  extra: true,
  description: 'message whose final fragment ends inside a code point (E2 82) fails with 1007',
  run: async (c) => {
    await c.sendFrames([
      T('all good so far ', { fin: false }),
      C(Buffer.concat([utf8('then '), hex('e2 82')])),
    ]);
    return failsWith(1007);
  },
});
add({
  id: '6.24.6',
  section: 6,
  extra: true,
  description: 'overlong "/" split across fragments (C0 | AF) fails with 1007',
  run: async (c) => {
    await c.sendFrames([T(hex('61 c0'), { fin: false }), C(hex('af 62'))]);
    return failsWith(1007);
  },
});

// ---------------------------------------------------------------- 7: close handling

add({
  id: '7.1.1',
  section: 7,
  description: 'text message followed by a close: echo, then the close is answered',
  run: async (c) => {
    await c.sendFrames([T('last words'), CLOSE(1000)]);
    return closeAnswered([1000], [text('last words')]);
  },
});
add({
  id: '7.1.2',
  section: 7,
  description: 'two close frames: exactly one close frame comes back',
  run: async (c) => {
    await c.sendFrames([CLOSE(1000), CLOSE(1000)]);
    return closeAnswered([1000]);
  },
});
add({
  id: '7.1.3',
  section: 7,
  description: 'ping after a close is not answered',
  run: async (c) => {
    await c.sendFrames([CLOSE(1000), PING('after close')]);
    return closeAnswered([1000]);
  },
});
add({
  id: '7.1.4',
  section: 7,
  description: 'text after a close is not echoed',
  run: async (c) => {
    await c.sendFrames([CLOSE(1000), T('after close')]);
    return closeAnswered([1000]);
  },
});
add({
  id: '7.1.5',
  section: 7,
  description: 'first fragment, close, last fragment: the message is not echoed',
  run: async (c) => {
    await c.sendFrames([T(fragA, { fin: false }), CLOSE(1000), C(fragB)]);
    return closeAnswered([1000]);
  },
});
add({
  id: '7.1.6',
  section: 7,
  extra: true,
  description: 'binary message after a close (written later) is not echoed',
  run: async (c) => {
    await c.sendFrame(CLOSE(1000));
    await new Promise((resolve) => setTimeout(resolve, 20));
    await c.sendFrame(B(binaryPayload(10)));
    return closeAnswered([1000]);
  },
});
add({
  id: '7.3.1',
  section: 7,
  description: 'close with an empty payload is answered by a close frame',
  run: async (c) => {
    await c.sendFrame(CLOSE());
    return closeAnswered([null, 1000]);
  },
});
add({
  id: '7.3.2',
  section: 7,
  description: 'close with a 1-byte payload (no room for a code) fails the connection',
  run: async (c) => {
    await c.sendFrame({ opcode: Opcode.Close, payload: hex('03') });
    return failsWith(1002);
  },
});
add({
  id: '7.3.3',
  section: 7,
  description: 'close 1000 without reason is echoed',
  run: async (c) => {
    await c.sendFrame(CLOSE(1000));
    return closeAnswered([1000]);
  },
});
add({
  id: '7.3.4',
  section: 7,
  description: 'close 1000 with a short reason is echoed',
  run: async (c) => {
    await c.sendFrame(CLOSE(1000, 'bye for now'));
    return closeAnswered([1000]);
  },
});
add({
  id: '7.3.5',
  section: 7,
  description: 'close 1000 with a 123-byte reason (largest that fits) is echoed',
  run: async (c) => {
    await c.sendFrame(CLOSE(1000, asciiPayload(123, 73)));
    return closeAnswered([1000]);
  },
});
add({
  id: '7.3.6',
  section: 7,
  description: 'close with a 126-byte payload (124-byte reason) fails the connection',
  run: async (c) => {
    await c.sendFrame(CLOSE(1000, asciiPayload(124, 76)));
    return failsWith(1002);
  },
});
add({
  id: '7.5.1',
  section: 7,
  description: 'close 1000 whose reason is invalid UTF-8 fails with 1007',
  run: async (c) => {
    await c.sendFrame(CLOSE(1000, Buffer.concat([utf8('reason '), hex('ed a0 80')])));
    return failsWith(1007);
  },
});
const validCodes = [
  1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999, 1012, 1013, 1014,
];
validCodes.forEach((code, i) => {
  add({
    id: `7.7.${i + 1}`,
    section: 7,
    ...(i >= 13 ? { extra: true } : {}),
    description: `close with valid code ${code} is answered with the same code`,
    run: async (c) => {
      await c.sendFrame(CLOSE(code));
      return closeAnswered([code], [], code === 1000 ? undefined : [1000]);
    },
  });
});
const invalidCodes = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 1015];
invalidCodes.forEach((code, i) => {
  add({
    id: `7.9.${i + 1}`,
    section: 7,
    ...(i >= 9 ? { extra: true } : {}),
    description: `close with invalid code ${code} fails the connection`,
    run: async (c) => {
      await c.sendFrame(CLOSE(code));
      return failsWith(1002);
    },
  });
});
[5000, 65535].forEach((code, i) => {
  add({
    id: `7.13.${i + 1}`,
    section: 7,
    description: `close with out-of-range code ${code} fails the connection`,
    run: async (c) => {
      await c.sendFrame(CLOSE(code));
      return failsWith(1002);
    },
  });
});

// ---------------------------------------------------------------- 9: large messages

const timingReason =
  'the echo was intact; only the soft time target (which depends on the machine) was missed';
/** Soft target: generous for a loopback echo, so only a pathological slowdown shows up. */
const targetFor = (bytes: number): number => 1000 + Math.ceil((bytes / MiB) * 500);
const LARGE_TIMEOUT_MS = 15_000;

function largeCase(
  id: string,
  kind: 'text' | 'binary',
  size: number,
  how: string,
  send: (c: RawClient, opcode: number, p: Buffer) => Promise<void>,
): void {
  add({
    id,
    section: 9,
    description: `${kind} message of ${size >= MiB ? `${size / MiB} MiB` : `${size / KiB} KiB`}, ${how}`,
    timeoutMs: LARGE_TIMEOUT_MS,
    acceptNonStrict: timingReason,
    run: async (c) => {
      const p = kind === 'text' ? asciiPayload(size, size & 0xff) : binaryPayload(size, 9);
      await send(c, kind === 'text' ? Opcode.Text : Opcode.Binary, p);
      return { ...echoed(kind === 'text' ? text(p) : binary(p)), targetMs: targetFor(size) };
    },
  });
}
for (const [sub, kind] of [
  [1, 'text'],
  [2, 'binary'],
] as const) {
  [64 * KiB, 256 * KiB, MiB, 4 * MiB].forEach((size, i) =>
    largeCase(`9.${sub}.${i + 1}`, kind, size, 'one frame', (c, opcode, p) =>
      c.sendFrame({ opcode, payload: p }),
    ),
  );
}
const fragmentSizes: Array<[number, number]> = [
  [1, 64],
  [3, KiB],
  [6, 64 * KiB],
  [8, MiB],
];
for (const [sub, kind] of [
  [3, 'text'],
  [4, 'binary'],
] as const) {
  for (const [n, size] of fragmentSizes) {
    largeCase(
      `9.${sub}.${n}`,
      kind,
      MiB,
      `fragments of ${size >= KiB ? `${size / KiB} KiB` : `${size} B`}`,
      (c, opcode, p) => c.sendFrames(fragmented(opcode, p, size)),
    );
  }
}
const chopSizes: Array<[number, number]> = [
  [1, 64],
  [3, 256],
  [6, 2048],
];
for (const [sub, kind] of [
  [5, 'text'],
  [6, 'binary'],
] as const) {
  for (const [n, size] of chopSizes) {
    largeCase(`9.${sub}.${n}`, kind, MiB, `one frame written in ${size}-byte TCP writes`, (c, opcode, p) =>
      c.writeChopped(buildFrame({ opcode, payload: p }), size, 0),
    );
  }
}
for (const [sub, kind] of [
  [7, 'text'],
  [8, 'binary'],
] as const) {
  [0, 16, 64, 256, 1024, 4096].forEach((size, i) => {
    add({
      id: `9.${sub}.${i + 1}`,
      section: 9,
      description: `1000 ${kind} messages of ${size} bytes, each sent after the previous echo arrived`,
      timeoutMs: LARGE_TIMEOUT_MS,
      acceptNonStrict: timingReason,
      run: async (c) => {
        const opcode = kind === 'text' ? Opcode.Text : Opcode.Binary;
        const expected = `1000 × ${kind} echoed one by one`;
        const started = performance.now();
        for (let m = 0; m < 1000; m++) {
          const p = kind === 'text' ? asciiPayload(size, m) : binaryPayload(size, m);
          await c.sendFrame({ opcode, payload: p });
          const frame = await c.nextFrame(LARGE_TIMEOUT_MS - (performance.now() - started));
          if (!frame || frame.opcode !== opcode || !frame.fin || !frame.payload.equals(p)) {
            return {
              ...echoed(),
              selfChecked: { expected, observed: `${m} round trips ok` },
              mismatch: `echo ${m + 1} of 1000 missing or different`,
            };
          }
        }
        const elapsed = performance.now() - started;
        const target = 2000 + size;
        return {
          ...echoed(),
          selfChecked: { expected, observed: `1000 round trips ok in ${Math.round(elapsed)} ms` },
          ...(elapsed > target
            ? { nonStrict: `1000 round trips took ${Math.round(elapsed)} ms (target ${target} ms)` }
            : {}),
        };
      },
    });
  });
}
// Pipelined: the client does not wait, so the server has to push back through
// TCP flow control rather than lose messages.
for (const [n, kind, size] of [
  [1, 'text', 64],
  [2, 'binary', 64],
  [3, 'text', 4096],
] as const) {
  add({
    id: `9.9.${n}`,
    section: 9,
    extra: true,
    description: `1000 ${kind} messages of ${size} bytes written back to back in one write are all echoed in order`,
    timeoutMs: LARGE_TIMEOUT_MS,
    acceptNonStrict: timingReason,
    run: async (c) => {
      const messages = Array.from({ length: 1000 }, (_, m) =>
        kind === 'text' ? asciiPayload(size, m) : binaryPayload(size, m),
      );
      const opcode = kind === 'text' ? Opcode.Text : Opcode.Binary;
      await c.sendFrames(messages.map((p) => ({ opcode, payload: p })));
      return {
        ...echoed(...messages.map((p) => (kind === 'text' ? text(p) : binary(p)))),
        targetMs: targetFor(1000 * size) + 1000,
      };
    },
  });
}

// ---------------------------------------------------------------- 10: strictness and limits

add({
  id: '10.1.1',
  section: 10,
  description: '64 KiB text message in 1300-byte fragments is echoed intact',
  run: async (c) => {
    const p = asciiPayload(64 * KiB, 101);
    await c.sendFrames(fragmented(Opcode.Text, p, 1300));
    return echoed(text(p));
  },
});
for (const [id, label, spec] of [
  ['10.2.1', 'text', T('not masked', { masked: false })],
  ['10.2.2', 'ping', PING('not masked', { masked: false })],
  ['10.2.3', 'close', { ...CLOSE(1000), masked: false }],
] as const) {
  add({
    id,
    section: 10,
    extra: true,
    description: `unmasked ${label} frame from the client fails the connection`,
    run: async (c) => {
      await c.sendFrame(spec);
      return failsWith(1002);
    },
  });
}
for (const [id, what, spec] of [
  ['10.3.1', '5-byte text using the 16-bit length form', T('short', { lengthForm: 16 })],
  ['10.3.2', '5-byte text using the 64-bit length form', T('short', { lengthForm: 64 })],
  ['10.3.3', '1000-byte binary using the 64-bit length form', B(binaryPayload(1000), { lengthForm: 64 })],
  ['10.3.4', '5-byte ping using the 16-bit length form', PING('short', { lengthForm: 16 })],
] as const) {
  add({
    id,
    section: 10,
    extra: true,
    description: `non-minimal length encoding (${what}) fails the connection`,
    run: async (c) => {
      await c.sendFrame(spec);
      return failsWith(1002);
    },
  });
}
add({
  id: '10.3.5',
  section: 10,
  extra: true,
  description: '64-bit payload length with the most significant bit set fails the connection',
  run: async (c) => {
    await c.sendFrame(T('short', { lengthForm: 64, declaredLength: (1n << 63n) + 5n }));
    return failsWith(1002);
  },
});
for (const [id, kind, opcode] of [
  ['10.4.1', 'text', Opcode.Text],
  ['10.4.2', 'binary', Opcode.Binary],
] as const) {
  add({
    id,
    section: 10,
    extra: true,
    description: `${kind} frame header announcing 100 MiB (above the 16 MiB read limit), body never sent: 1009 from the header`,
    run: async (c) => {
      await c.sendFrame({ opcode, payload: Buffer.alloc(0), declaredLength: BigInt(100 * MiB) });
      return failsWith(1009);
    },
  });
}
add({
  id: '10.4.3',
  section: 10,
  extra: true,
  timeoutMs: 8000,
  description:
    'fragmented binary: 12 MiB first fragment, then a header announcing 8 MiB more (over the limit in total): 1009',
  run: async (c) => {
    const first = binaryPayload(12 * MiB, 3);
    await c.sendFrame(B(first, { fin: false }));
    await c.sendFrame({
      opcode: Opcode.Continuation,
      payload: Buffer.alloc(0),
      declaredLength: BigInt(READ_LIMIT - first.length + 4 * MiB),
    });
    return failsWith(1009);
  },
});

// ---------------------------------------------------------------- 12, 13: permessage-deflate
CASES.push(...DEFLATE_CASES);

export { CASES };
