// Memory held by the parser is bounded by the payload received, whatever the
// framing: fragments are copied into one buffer per message (no socket chunk
// stays pinned), the frames per message are capped, and buffers of
// incomplete messages come out of a budget shared by many parsers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameParser, type ParserOptions } from '../../../src/protocol/parser.ts';
import { CloseCode, ProtocolError } from '../../../src/protocol/close.ts';
import { Opcode, encodeFrame } from '../../../src/protocol/frame.ts';
import { ResourceGuard } from '../../../src/connection/resource-guard.ts';

const KEY = Buffer.from([0x0a, 0x1b, 0x2c, 0x3d]);

/** A masked client frame. */
function frame(opcode: number, payload: Uint8Array | string, fin = true): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return encodeFrame(opcode, bytes, { fin, mask: KEY });
}

interface Recorded {
  parser: FrameParser;
  messages: Buffer[];
  pings: Buffer[];
  errors: ProtocolError[];
  closes: Array<number | undefined>;
}

function recorder(options: Partial<ParserOptions> = {}): Recorded {
  const r: Omit<Recorded, 'parser'> = { messages: [], pings: [], errors: [], closes: [] };
  const parser = new FrameParser(
    {
      onMessage: (_opcode, data) => r.messages.push(data),
      onPing: (payload) => r.pings.push(payload),
      onPong: () => {},
      onClose: (code) => r.closes.push(code),
      onError: (error) => r.errors.push(error),
    },
    { maxMessageSize: 0, expectMasked: true, ...options },
  );
  return { parser, ...r };
}

/** `count` one-byte frames of one binary message: a first frame, then continuations (the last with FIN). */
function oneByteFragments(count: number): Buffer {
  const frames: Buffer[] = [frame(Opcode.BINARY, Buffer.from([0]), count === 1)];
  for (let i = 1; i < count; i++)
    frames.push(frame(Opcode.CONTINUATION, Buffer.from([i & 0xff]), i === count - 1));
  return Buffer.concat(frames);
}

/** Pushes `data` in chunks of `size` bytes, each a fresh Buffer (as a socket delivers them). */
function pushChunked(parser: FrameParser, data: Buffer, size: number, after?: (chunk: Buffer) => void): void {
  for (let pos = 0; pos < data.length; pos += size) {
    const piece = Buffer.from(data.subarray(pos, pos + size));
    parser.push(piece);
    after?.(piece);
  }
}

describe('FrameParser: fragments', () => {
  test('200,000 one-byte fragments: closed with 1009 at the frame cap, holding a few KiB until then', () => {
    const r = recorder({ maxMessageSize: 16 * 1024 * 1024, maxFragments: 16_384 });
    const data = oneByteFragments(200_000);
    let maxHeld = 0;
    let framesBeforeError = 0;
    for (let pos = 0; pos < data.length && r.errors.length === 0; pos += 7 * 1000) {
      r.parser.push(Buffer.from(data.subarray(pos, pos + 7 * 1000)));
      maxHeld = Math.max(maxHeld, r.parser.heldBytes);
      if (r.errors.length === 0) framesBeforeError = (pos + 7 * 1000) / 7;
    }
    assert.equal(r.messages.length, 0);
    assert.equal(r.errors.length, 1, 'the message is refused');
    assert.equal(r.errors[0]!.closeCode, CloseCode.MESSAGE_TOO_BIG);
    assert.match(r.errors[0]!.message, /more than 16384 frames/);
    assert.ok(framesBeforeError <= 16_384, `refused at frame ${framesBeforeError}`);
    // 16,384 payload bytes at most: the buffer is at most twice that (amortised growth).
    assert.ok(maxHeld <= 2 * 16_384, `held ${maxHeld} bytes`);
    assert.equal(r.parser.heldBytes, 0, 'nothing held after the error');
    assert.ok(r.parser.finished, 'the parser stopped');
  });

  test('without a cap, 200,000 one-byte fragments arrive as one message; held bytes track the payload', () => {
    const r = recorder({ maxFragments: 0 });
    const count = 200_000;
    const data = oneByteFragments(count);
    const step = 7 * 4096;
    for (let pos = 0; pos < data.length; pos += step) {
      r.parser.push(Buffer.from(data.subarray(pos, pos + step)));
      const received = Math.min(count, (pos + step) / 7);
      if (received < count) {
        const held = r.parser.heldBytes;
        assert.ok(held >= received && held <= Math.max(2 * received, 4096), `held ${held} for ${received}`);
      }
    }
    assert.deepEqual(r.errors, []);
    assert.equal(r.messages.length, 1);
    const message = r.messages[0]!;
    assert.equal(message.length, count);
    for (let i = 0; i < count; i += 997) assert.equal(message[i], i & 0xff);
    assert.equal(r.parser.heldBytes, 0);
  });

  test('fragments are copied: the chunks they came in can be reused at once', () => {
    const r = recorder();
    const payload = Buffer.alloc(3000, 0x61);
    const data = Buffer.concat([
      frame(Opcode.TEXT, payload.subarray(0, 1000), false),
      frame(Opcode.CONTINUATION, payload.subarray(1000, 2000), false),
      frame(Opcode.CONTINUATION, payload.subarray(2000), true),
    ]);
    // Overwrite every chunk once the parser has it: a view into it would change.
    pushChunked(r.parser, data, 333, (chunk) => chunk.fill(0xff));
    assert.deepEqual(r.errors, []);
    assert.equal(r.messages.length, 1);
    assert.ok(r.messages[0]!.equals(payload), 'the message is intact');
  });

  test('a single frame split across chunks is copied once into a buffer of exactly its size', () => {
    const r = recorder();
    const payload = Buffer.alloc(100_000, 0x42);
    pushChunked(r.parser, frame(Opcode.BINARY, payload), 8192, (chunk) => chunk.fill(0));
    assert.equal(r.messages.length, 1);
    assert.ok(r.messages[0]!.equals(payload), 'the message is intact');
    assert.equal(r.messages[0]!.buffer.byteLength, payload.length, 'no over-allocation');
  });

  test('a whole single-frame message inside one chunk is still a view of that chunk (no copy)', () => {
    const r = recorder();
    const chunk = Buffer.concat([frame(Opcode.BINARY, 'abc'), frame(Opcode.TEXT, 'hello')]);
    r.parser.push(chunk);
    assert.equal(r.messages.length, 2);
    assert.equal(r.messages[1]!.toString(), 'hello');
    assert.equal(r.messages[1]!.buffer, chunk.buffer, 'shares the chunk memory');
    assert.equal(r.parser.heldBytes, 0);
  });

  test('a control frame split across chunks does not pin them', () => {
    const r = recorder();
    const payload = Buffer.alloc(125, 0x70);
    pushChunked(r.parser, frame(Opcode.PING, payload), 10, (chunk) => chunk.fill(0xee));
    assert.equal(r.pings.length, 1);
    assert.ok(r.pings[0]!.equals(payload), 'the ping payload is intact');
  });
});

describe('FrameParser: partial-message budget', () => {
  /** The first `bytes` of a fragmented binary message (not final). */
  const partial = (bytes: number): Buffer => frame(Opcode.BINARY, Buffer.alloc(bytes, 1), false);
  const last = (bytes: number): Buffer => frame(Opcode.CONTINUATION, Buffer.alloc(bytes, 2), true);

  test('the parser that crosses the budget is failed with 1013; the others keep their messages', () => {
    const guard = new ResourceGuard(250_000);
    const a = recorder({ maxMessageSize: 200_000, accounting: guard });
    const b = recorder({ maxMessageSize: 200_000, accounting: guard });
    const c = recorder({ maxMessageSize: 200_000, accounting: guard });
    a.parser.push(partial(100_000));
    b.parser.push(partial(100_000));
    assert.equal(guard.partialBytes, a.parser.heldBytes + b.parser.heldBytes);
    assert.ok(guard.partialBytes >= 200_000, `reserved ${guard.partialBytes}`);
    c.parser.push(partial(100_000));
    assert.equal(c.errors.length, 1);
    assert.equal(c.errors[0]!.closeCode, CloseCode.TRY_AGAIN_LATER);
    assert.equal(guard.partialBudgetCloses, 1);
    assert.equal(c.parser.heldBytes, 0);
    a.parser.push(last(10));
    b.parser.push(last(10));
    assert.deepEqual([a.messages.length, b.messages.length, a.errors.length, b.errors.length], [1, 1, 0, 0]);
    assert.equal(a.messages[0]!.length, 100_010);
    assert.equal(guard.partialBytes, 0, 'the budget is back to 0');
  });

  test('every way a message can end gives its bytes back', () => {
    const guard = new ResourceGuard(0);
    // A protocol error in the middle of a message.
    const broken = recorder({ accounting: guard });
    broken.parser.push(partial(5000));
    assert.ok(guard.partialBytes >= 5000, `reserved ${guard.partialBytes}`);
    broken.parser.push(frame(Opcode.TEXT, 'new message inside a fragmented one'));
    assert.equal(broken.errors.length, 1);
    assert.equal(guard.partialBytes, 0, 'after a protocol error');
    // A close frame in the middle of a message.
    const closed = recorder({ accounting: guard });
    closed.parser.push(partial(5000));
    closed.parser.push(frame(Opcode.CLOSE, Buffer.from([0x03, 0xe8])));
    assert.deepEqual(closed.closes, [1000]);
    assert.equal(guard.partialBytes, 0, 'after a close frame');
    // The connection vanishing (socket destroyed).
    const gone = recorder({ accounting: guard });
    gone.parser.push(partial(5000));
    gone.parser.dispose();
    assert.equal(guard.partialBytes, 0, 'after dispose');
    gone.parser.push(last(10));
    assert.equal(gone.messages.length, 0, 'nothing is parsed after dispose');
    // The read limit in the middle of a message.
    const big = recorder({ maxMessageSize: 6000, accounting: guard });
    big.parser.push(partial(5000));
    big.parser.push(last(5000));
    assert.equal(big.errors[0]?.closeCode, CloseCode.MESSAGE_TOO_BIG);
    assert.equal(guard.partialBytes, 0, 'after the read limit');
    assert.equal(guard.partialBudgetCloses, 0);
  });

  test('a whole frame in one chunk reserves nothing', () => {
    const guard = new ResourceGuard(1);
    const r = recorder({ accounting: guard });
    r.parser.push(frame(Opcode.BINARY, Buffer.alloc(50_000)));
    assert.equal(r.messages.length, 1);
    assert.deepEqual(r.errors, []);
    assert.equal(guard.partialBytes, 0);
  });
});
