// The frame parser at the socket level: generated client frame streams are
// written to a wshub server over loopback, cut at random points (down to
// one byte per write), and what the server does is compared with what the
// protocol says it must do. The oracle is a FrameParser fed the same bytes
// in one piece (its own chunking independence is a unit property); the
// server must deliver exactly the messages it reports, in order, then
// close with its close code, and must never deliver garbage, crash or hang.
//
// Runs: WSHUB_FUZZ_RUNS (default 150 per property); seed: WSHUB_FUZZ_SEED.
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import type { Connection } from '../../../src/connection/connection.ts';
import { CloseCode } from '../../../src/protocol/close.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import { FrameParser, type ParserHandlers } from '../../../src/protocol/parser.ts';
import type { ProtocolError } from '../../../src/protocol/close.ts';
import { cleanupHubs, startHub, type RunningHub } from '../server/harness.ts';
import { RawPeer, closeInfo, waitUntil } from '../../unit/connection/wire.ts';

afterEach(cleanupHubs);

const RUNS = Number(process.env.WSHUB_FUZZ_RUNS ?? 150);
const SEED = Number(process.env.WSHUB_FUZZ_SEED ?? 20_261_202);
const READ_LIMIT = 64 * 1024;

// ---- frames, built byte by byte ---------------------------------------------------

interface RawFrame {
  opcode: number;
  payload?: Uint8Array;
  fin?: boolean;
  /** RSV1..3 as bits 0x4, 0x2, 0x1. */
  rsv?: number;
  /** undefined: masked with a random key; null: unmasked. */
  mask?: Uint8Array | null;
  /** A length other than the payload's (the payload is sent as is). */
  declaredLength?: bigint;
  /** Length encoding, non-minimal when forced. */
  lengthForm?: 7 | 16 | 64;
}

/** A client frame; independent of the encoder under test, so it can be malformed. */
function rawFrame(f: RawFrame, key: Uint8Array): Buffer {
  const payload = Buffer.from(f.payload ?? []);
  const mask = f.mask === undefined ? key : f.mask;
  const length = f.declaredLength ?? BigInt(payload.length);
  const minimal = length < 126n ? 7 : length < 65536n ? 16 : 64;
  // A forced form is taken only where the length fits it.
  const form = f.lengthForm !== undefined && f.lengthForm > minimal ? f.lengthForm : minimal;
  const b0 = ((f.fin ?? true) ? 0x80 : 0) | ((f.rsv ?? 0) << 4) | f.opcode;
  const maskBit = mask === null ? 0 : 0x80;
  let header: Buffer;
  if (form === 7) header = Buffer.from([b0, maskBit | Number(length)]);
  else if (form === 16) {
    header = Buffer.alloc(4);
    header[0] = b0;
    header[1] = maskBit | 126;
    header.writeUInt16BE(Number(length), 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = b0;
    header[1] = maskBit | 127;
    header.writeBigUInt64BE(length, 2);
  }
  if (mask === null) return Buffer.concat([header, payload]);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i] = masked[i]! ^ mask[i & 3]!;
  return Buffer.concat([header, Buffer.from(mask), masked]);
}

function closeBody(code: number, reason: string): Buffer {
  const r = Buffer.from(reason, 'utf8');
  const out = Buffer.alloc(2 + r.length);
  out.writeUInt16BE(code, 0);
  r.copy(out, 2);
  return out;
}

// ---- the oracle --------------------------------------------------------------------

type Message = [binary: boolean, hex: string];

interface Expected {
  messages: Message[];
  pings: string[];
  /** How the stream ends: a protocol error's code, the peer's close (its code), or still open. */
  end: { kind: 'error'; code: number } | { kind: 'close'; code: number | undefined } | { kind: 'open' };
}

/** What the server must do with `bytes`, per a FrameParser with the server's options. */
function expect(bytes: Buffer): Expected {
  const out: Expected = { messages: [], pings: [], end: { kind: 'open' } };
  const handlers: ParserHandlers = {
    onMessage: (opcode, data) => out.messages.push([opcode === Opcode.BINARY, data.toString('hex')]),
    onPing: (payload) => out.pings.push(payload.toString('hex')),
    onPong: () => {},
    onClose: (code) => {
      out.end = { kind: 'close', code };
    },
    onError: (error: ProtocolError) => {
      out.end = { kind: 'error', code: error.closeCode };
    },
  };
  // The parser unmasks in place: it gets a copy, so the bytes sent stay masked.
  new FrameParser(handlers, { maxMessageSize: READ_LIMIT, expectMasked: true }).push(Buffer.from(bytes));
  return out;
}

// ---- the server ----------------------------------------------------------------------

interface Server {
  hub: RunningHub;
  /** What the server delivered, by room (one room per connection). */
  delivered: Map<string, Message[]>;
  next: number;
}

async function startServer(): Promise<Server> {
  const delivered = new Map<string, Message[]>();
  const hub = await startHub({
    allowUnauthenticated: true,
    readLimit: READ_LIMIT,
    // One connection per case, all from 127.0.0.1: the per-address handshake rate has its own tests.
    maxHandshakesPerIp: 0,
    // The oracle is the frame parser alone: no JSON or other text checks on top.
    messageValidation: false,
    onMessage(conn: Connection, data: Buffer, binary: boolean) {
      const room = conn.room ?? '';
      let list = delivered.get(room);
      if (list === undefined) delivered.set(room, (list = []));
      list.push([binary, data.toString('hex')]);
    },
  });
  return { hub, delivered, next: 0 };
}

async function peerFor(server: Server): Promise<{ peer: RawPeer; room: string }> {
  const room = `r${server.next++}`;
  const peer = await RawPeer.connect(server.hub.port, { path: `/ws?room=${room}` });
  peer.socket.setNoDelay(true);
  return { peer, room };
}

/** Writes `chunks` one by one, each on its own turn of the event loop. */
async function writeChunks(peer: RawPeer, chunks: Buffer[]): Promise<void> {
  for (const chunk of chunks) {
    if (peer.socket.destroyed) return;
    peer.socket.write(chunk);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

function cutInto(bytes: Buffer, sizes: readonly number[]): Buffer[] {
  if (sizes.length === 0) return [bytes];
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = Math.max(1, sizes[i % sizes.length]!);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/**
 * Checks what the server did with the bytes against the oracle: the same
 * messages, a pong for the pings, and the close (code) the stream calls for.
 */
async function verify(
  server: Server,
  peer: RawPeer,
  room: string,
  want: Expected,
  what: string,
): Promise<void> {
  const got = () => server.delivered.get(room) ?? [];
  if (want.end.kind === 'open') {
    await waitUntil(() => got().length >= want.messages.length, 5_000, `messages of ${what}`);
    // Time for anything that should not come.
    await sleep(20);
    assert.deepEqual(got(), want.messages, what);
    assert.equal(peer.closedAt, undefined, `the server closed a connection that broke no rule: ${what}`);
    assert.equal(peer.frames.filter((f) => f.opcode === Opcode.CLOSE).length, 0, what);
  } else {
    const close = await peer.waitFor((f) => f.opcode === Opcode.CLOSE, 5_000);
    const code = closeInfo(close).code;
    if (want.end.kind === 'error') assert.equal(code, want.end.code, `close code for ${what}`);
    else assert.equal(code, want.end.code, `echoed close code for ${what}`);
    assert.deepEqual(got(), want.messages, what);
    await peer.waitClosed(5_000);
  }
  if (want.pings.length > 0) {
    // Only the latest ping needs an answer; each pong answers one of them.
    await waitUntil(() => peer.frames.some((f) => f.opcode === Opcode.PONG), 5_000, `a pong for ${what}`);
    for (const pong of peer.frames.filter((f) => f.opcode === Opcode.PONG)) {
      assert.ok(want.pings.includes(pong.payload.toString('hex')), `a pong for no ping: ${what}`);
    }
  }
  // Never anything but control frames from the server: no message was echoed.
  assert.ok(
    peer.frames.every((f) => f.opcode >= 0x8),
    what,
  );
}

// ---- generators ---------------------------------------------------------------------

const keyArb = fc.uint8Array({ minLength: 4, maxLength: 4 });
const textArb = fc
  .string({ unit: 'binary', maxLength: 60 })
  .map((s) => new Uint8Array(Buffer.from(s, 'utf8')));
const controlArb = fc.record({
  opcode: fc.constantFrom(Opcode.PING, Opcode.PONG),
  payload: fc.uint8Array({ maxLength: 125 }),
});

/** A valid message as frames: fragments with control frames interleaved. */
const messageArb = fc
  .record({
    binary: fc.boolean(),
    text: textArb,
    bytes: fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.integer({ min: 0, max: 3_000 }).map((n) => new Uint8Array(n).fill(7)),
    ),
    cuts: fc.array(fc.nat({ max: 3_000 }), { maxLength: 3 }),
    between: fc.array(fc.option(controlArb, { nil: null, freq: 2 }), { maxLength: 3 }),
  })
  .map((m) => {
    const payload = m.binary ? m.bytes : m.text;
    const bounds = [...new Set(m.cuts.filter((c) => c > 0 && c < payload.length))].sort((a, b) => a - b);
    const edges = [0, ...bounds, payload.length];
    const frames: RawFrame[] = [];
    for (let i = 0; i + 1 < edges.length; i++) {
      const last = i + 2 === edges.length;
      frames.push({
        opcode: i === 0 ? (m.binary ? Opcode.BINARY : Opcode.TEXT) : Opcode.CONTINUATION,
        payload: payload.subarray(edges[i], edges[i + 1]),
        fin: last,
      });
      const control = last ? null : m.between[i];
      if (control) frames.push(control);
    }
    return frames;
  });

const streamArb = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: messageArb },
    { weight: 1, arbitrary: controlArb.map((c) => [c as RawFrame]) },
  ),
  {
    minLength: 1,
    maxLength: 5,
  },
);

/** Chunk sizes: one byte at a time, tiny pieces, or larger ones. */
const sizesArb = fc.oneof(
  fc.constant([1]),
  fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 6 }),
  fc.array(fc.integer({ min: 1, max: 4_000 }), { maxLength: 4 }),
);

/** What may follow valid frames: broken frames of every kind, or plain noise. */
const garbageArb: fc.Arbitrary<readonly RawFrame[] | Uint8Array> = fc.oneof(
  // Reserved opcodes (data 3–7, control 0xB–0xF).
  fc
    .record({
      opcode: fc.constantFrom(3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf),
      payload: fc.uint8Array({ maxLength: 20 }),
    })
    .map((f) => [f]),
  // RSV bits without an extension that defines them.
  fc
    .record({
      opcode: fc.constantFrom(Opcode.TEXT, Opcode.BINARY, Opcode.PING),
      rsv: fc.integer({ min: 1, max: 7 }),
      payload: fc.uint8Array({ maxLength: 20 }),
    })
    .map((f) => [f]),
  // An unmasked client frame.
  fc
    .record({
      opcode: fc.constantFrom(Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.CLOSE),
      mask: fc.constant(null),
      payload: fc.uint8Array({ maxLength: 20 }),
    })
    .map((f) => [f]),
  // Huge declared lengths: past the read limit, past 2^53, the top bit set, non-minimal forms.
  fc
    .record({
      opcode: fc.constantFrom(Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION),
      declaredLength: fc.constantFrom(
        BigInt(READ_LIMIT + 1),
        2n ** 32n,
        2n ** 53n + 1n,
        2n ** 63n,
        2n ** 64n - 1n,
        100n,
        125n,
      ),
      lengthForm: fc.constantFrom(16 as const, 64 as const),
      payload: fc.uint8Array({ maxLength: 8 }),
    })
    .map((f) => [f]),
  // Control frames that break the rules: too long, fragmented.
  fc
    .record({
      opcode: fc.constantFrom(Opcode.PING, Opcode.PONG, Opcode.CLOSE),
      payload: fc.uint8Array({ minLength: 126, maxLength: 200 }),
    })
    .map((f) => [f]),
  fc
    .record({ opcode: fc.constantFrom(Opcode.PING, Opcode.PONG, Opcode.CLOSE), fin: fc.constant(false) })
    .map((f) => [f]),
  // Continuation without a start, or a new message inside one.
  fc.constant([{ opcode: Opcode.CONTINUATION, payload: new Uint8Array([1]) }]),
  fc.constant([
    { opcode: Opcode.TEXT, payload: new Uint8Array([0x61]), fin: false },
    { opcode: Opcode.BINARY, payload: new Uint8Array([1]) },
  ]),
  // Invalid UTF-8 in a text message or a close reason; invalid close codes; a 1-byte close.
  fc.constantFrom(
    [{ opcode: Opcode.TEXT, payload: new Uint8Array([0xc3, 0x28]) }],
    [{ opcode: Opcode.TEXT, payload: new Uint8Array([0xed, 0xa0, 0x80]) }],
    [
      { opcode: Opcode.TEXT, payload: new Uint8Array([0xf0, 0x9f]), fin: false },
      { opcode: Opcode.CONTINUATION, payload: new Uint8Array([0x41]) },
    ],
    [{ opcode: Opcode.CLOSE, payload: new Uint8Array([0x03, 0xe8, 0xff]) }],
    [{ opcode: Opcode.CLOSE, payload: new Uint8Array([0x03]) }],
  ),
  fc
    .constantFrom(0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535, 1000, 1001, 3000, 4999)
    .map((code) => [{ opcode: Opcode.CLOSE, payload: closeBody(code, 'bye') }]),
  // Noise.
  fc.uint8Array({ minLength: 1, maxLength: 64 }),
);

// ---- properties ----------------------------------------------------------------------

describe('frame parser over a socket', () => {
  test('valid streams cut anywhere (down to one byte per write) deliver exactly their messages', async () => {
    const server = await startServer();
    await fc.assert(
      fc.asyncProperty(streamArb, keyArb, sizesArb, fc.boolean(), async (stream, key, sizes, closing) => {
        const frames = stream.flat();
        if (closing) frames.push({ opcode: Opcode.CLOSE, payload: closeBody(1000, 'done') });
        const bytes = Buffer.concat(frames.map((f) => rawFrame(f, key)));
        const want = expect(bytes);
        assert.notEqual(want.end.kind, 'error', 'the generator made an invalid stream');
        const { peer, room } = await peerFor(server);
        // One byte per write costs a turn of the event loop each: only for shorter streams.
        await writeChunks(peer, cutInto(bytes, sizes[0] === 1 && bytes.length > 4_000 ? [997] : sizes));
        await verify(server, peer, room, want, `a valid stream of ${bytes.length} bytes`);
        peer.socket.destroy();
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    await waitUntil(
      () => server.hub.ws.metrics().active_connections === 0,
      5_000,
      'every connection to be gone',
    );
  });

  test('garbage after valid frames: the right close code, and no garbage delivered', async () => {
    const server = await startServer();
    const ends = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            messageArb,
            controlArb.map((c) => [c as RawFrame]),
          ),
          { maxLength: 3 },
        ),
        garbageArb,
        keyArb,
        sizesArb,
        async (stream, garbage, key, sizes) => {
          const good = Buffer.concat(stream.flat().map((f) => rawFrame(f, key)));
          const bad =
            garbage instanceof Uint8Array
              ? Buffer.from(garbage)
              : Buffer.concat(garbage.map((f) => rawFrame(f, key)));
          const bytes = Buffer.concat([good, bad]);
          const want = expect(bytes);
          const label = want.end.kind === 'error' ? `error ${want.end.code}` : want.end.kind;
          ends.set(label, (ends.get(label) ?? 0) + 1);
          const { peer, room } = await peerFor(server);
          await writeChunks(peer, cutInto(bytes, sizes[0] === 1 && bytes.length > 4_000 ? [997] : sizes));
          await verify(
            server,
            peer,
            room,
            want,
            `${good.length} valid bytes, then ${bad.toString('hex').slice(0, 200)}`,
          );
          peer.socket.destroy();
        },
      ),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    if (process.env.WSHUB_FUZZ_DEBUG) console.log(JSON.stringify([...ends]));
    // The corpus must reach each kind of refusal.
    for (const code of [CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_PAYLOAD, CloseCode.MESSAGE_TOO_BIG]) {
      assert.ok(
        (ends.get(`error ${code}`) ?? 0) > 0,
        `no stream ended in ${code}: ${JSON.stringify([...ends])}`,
      );
    }
    await waitUntil(
      () => server.hub.ws.metrics().active_connections === 0,
      5_000,
      'every connection to be gone',
    );
  });

  test('every split point of a valid stream, on one connection', async () => {
    const server = await startServer();
    const key = Uint8Array.from([1, 2, 3, 4]);
    const frames: RawFrame[] = [
      { opcode: Opcode.TEXT, payload: Buffer.from('héllo'), fin: false },
      // A pong, not a ping: a ping per split would trip the ping-flood limit.
      { opcode: Opcode.PONG, payload: Buffer.from('p') },
      { opcode: Opcode.CONTINUATION, payload: Buffer.from(' wörld') },
      { opcode: Opcode.BINARY, payload: new Uint8Array(130).fill(9) },
      { opcode: Opcode.PONG },
    ];
    const bytes = Buffer.concat(frames.map((f) => rawFrame(f, key)));
    const { peer, room } = await peerFor(server);
    for (let at = 1; at < bytes.length; at++) {
      peer.socket.write(bytes.subarray(0, at));
      // Long enough for the first part to be read on its own.
      await sleep(1);
      peer.socket.write(bytes.subarray(at));
    }
    const want = expect(Buffer.concat(Array.from({ length: bytes.length - 1 }, () => bytes)));
    await verify(server, peer, room, want, 'every split point');
    assert.equal(server.delivered.get(room)?.length, 2 * (bytes.length - 1));
    peer.socket.destroy();
  });
});
