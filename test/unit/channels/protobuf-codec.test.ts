// The Protocol Buffers codec of the channel protocol against the SDK's own
// protobuf build: commands the SDK encodes decode to the shapes the JSON
// encoding gives; replies and pushes we encode decode in the SDK to what
// was meant; the fan-out's publication encoder writes the same bytes as
// the general encoder; malformed input is a bad request, never a crash.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Centrifuge as CentrifugeProtobuf } from 'centrifuge/build/protobuf';
import {
  MAX_MAP_ENTRIES,
  PROTOBUF_PING,
  clientInfoBytes,
  decodeProtobufCommands,
  delimited,
  encodeErrorReply,
  encodeMessage,
  encodePubPush,
  encodePush,
  encodeReply,
  tagsBytes,
} from '../../../src/channels/protobuf-codec.ts';
import { CommandMessage, ReplyMessage } from '../../../src/channels/protobuf-schema.ts';
import { ProtoReader, WireError, varintSize, writeVarint } from '../../../src/channels/protobuf-wire.ts';
import { DisconnectException, Disconnects } from '../../../src/channels/protocol.ts';

/** The SDK's protobuf codec (internal, reached through a client that never connects). */
interface SdkCodec {
  encodeCommands(commands: unknown[]): Uint8Array;
  decodeReplies(data: Uint8Array): Array<Record<string, unknown>>;
  encodeReplies(replies: unknown[]): Uint8Array;
  decodeCommands(data: Uint8Array): Array<Record<string, unknown>>;
}
const sdk = (new CentrifugeProtobuf('ws://127.0.0.1:1/never') as unknown as { _codec: SdkCodec })._codec;

const LIMITS = { maxCommandsPerFrame: 100 };

function decode(bytes: Uint8Array): Array<Record<string, unknown>> {
  return decodeProtobufCommands(Buffer.from(bytes), LIMITS) as Array<Record<string, unknown>>;
}

/** Plain data for deepEqual: Buffers as arrays, null-prototype maps as plain objects. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value];
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out;
  }
  return value;
}

/** A protobufjs message as plain data: only own, set fields (prototype defaults dropped), Longs as numbers. */
function sdkPlain(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value];
  if (Array.isArray(value)) return value.map(sdkPlain);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value)) {
      const v = (value as Record<string, unknown>)[k];
      // Unset fields: null messages, and the empty arrays protobufjs gives repeated fields.
      if (v === null || v === undefined || (Array.isArray(v) && v.length === 0)) continue;
      out[k] = typeof v === 'object' && v !== null && 'low' in v ? Number(v) : sdkPlain(v);
    }
    return out;
  }
  return value;
}

function expectBadRequest(bytes: Uint8Array): void {
  assert.throws(
    () => decodeProtobufCommands(Buffer.from(bytes), LIMITS),
    (error: unknown) =>
      error instanceof DisconnectException && error.disconnect.code === Disconnects.BAD_REQUEST.code,
  );
}

const channel = fc.string({ minLength: 1, maxLength: 40 });
const bytes = fc.uint8Array({ minLength: 1, maxLength: 64 });
const offset = fc.maxSafeNat();

describe('protobuf codec: commands from the SDK', () => {
  it('decodes every command kind the SDK sends, in order, several per frame', () => {
    const commands = [
      {
        id: 1,
        connect: {
          token: 't',
          data: new Uint8Array([1]),
          name: 'js',
          version: '5',
          subs: { a: { recover: true, offset: 7, epoch: 'e' } },
        },
      },
      {
        id: 2,
        subscribe: {
          channel: 'c',
          token: 'st',
          recover: true,
          epoch: 'ep',
          offset: 9,
          positioned: true,
          recoverable: true,
          join_leave: true,
        },
      },
      { id: 3, unsubscribe: { channel: 'c' } },
      { id: 4, publish: { channel: 'c', data: new Uint8Array([0, 255]) } },
      { id: 5, presence: { channel: 'c' } },
      { id: 6, presence_stats: { channel: 'c' } },
      { id: 7, history: { channel: 'c', limit: -1, since: { offset: 3, epoch: 'x' }, reverse: true } },
      { id: 8, ping: {} },
      { send: { data: new Uint8Array([9]) } },
      { id: 10, rpc: { method: 'm', data: new Uint8Array([7]) } },
      { id: 11, refresh: { token: 'r' } },
      { id: 12, sub_refresh: { channel: 'c', token: 's' } },
      {},
    ];
    const got = decode(sdk.encodeCommands(commands));
    assert.deepEqual(plain(got), plain(commands));
  });

  it('round-trips publish, subscribe and history commands (property)', () => {
    const command = fc.oneof(
      fc.record({
        id: fc.integer({ min: 1, max: 0xffffffff }),
        publish: fc.record({ channel, data: bytes }),
      }),
      fc.record({
        id: fc.integer({ min: 1, max: 0xffffffff }),
        subscribe: fc.record(
          {
            channel,
            token: fc.string(),
            recover: fc.boolean(),
            epoch: fc.string(),
            offset,
            positioned: fc.boolean(),
          },
          { requiredKeys: ['channel'] },
        ),
      }),
      fc.record({
        id: fc.integer({ min: 1, max: 0xffffffff }),
        history: fc.record(
          {
            channel,
            limit: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
            reverse: fc.boolean(),
            since: fc.record({ offset, epoch: fc.string() }),
          },
          { requiredKeys: ['channel'] },
        ),
      }),
    );
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 5 }), (commands) => {
        const got = decode(sdk.encodeCommands(commands));
        // Proto3 leaves scalars at their default out: compare with the SDK's own decoding.
        const expected = sdk.decodeCommands(sdk.encodeCommands(commands)).map(sdkPlain);
        assert.deepEqual(plain(got), expected);
      }),
      { numRuns: 300 },
    );
  });

  it('the general encoder writes commands the SDK decodes alike (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          id: fc.integer({ min: 1, max: 0xffffffff }),
          publish: fc.record({ channel, data: bytes }),
        }),
        (command) => {
          const mine = delimited(encodeMessage(CommandMessage, command));
          const theirs = sdk.encodeCommands([command]);
          assert.deepEqual(sdk.decodeCommands(mine).map(sdkPlain), sdk.decodeCommands(theirs).map(sdkPlain));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('protobuf codec: replies and pushes to the SDK', () => {
  it('replies from their JSON results decode in the SDK', () => {
    const frame = Buffer.concat([
      encodeReply(
        1,
        'connect',
        '{"client":"c1","version":"v","expires":true,"ttl":30,"ping":25,"pong":true,"subs":{"a":{"recoverable":true,"epoch":"e","offset":4,"publications":[{"data":{"x":1},"offset":4}]}}}',
      ),
      encodeReply(
        2,
        'subscribe',
        '{"recoverable":true,"positioned":true,"epoch":"ep","offset":9007199254740991,"was_recovering":true,"recovered":true,"publications":[{"b64data":"AP8=","offset":2,"info":{"user":"u","client":"c","conn_info":{"n":1}}}]}',
      ),
      encodeReply(3, 'presence', '{"presence":{"c1":{"user":"u","client":"c1","chan_info":[1]}}}'),
      encodeReply(4, 'presence_stats', '{"num_clients":3,"num_users":2}'),
      encodeReply(
        5,
        'history',
        '{"publications":[{"data":"s","offset":1,"tags":{"k":"v"}}],"epoch":"e","offset":1}',
      ),
      encodeReply(6, 'publish', '{}'),
      encodeReply(7, 'rpc', '{"data":{"ok":true}}'),
      encodeReply(8, 'sub_refresh', '{"expires":true,"ttl":5}'),
      encodeErrorReply(9, { code: 103, message: 'permission denied' }),
      encodeErrorReply(10, { code: 111, message: 'too many requests', temporary: true }),
    ]);
    const replies = sdk.decodeReplies(frame).map(sdkPlain) as Array<Record<string, Record<string, unknown>>>;
    assert.deepEqual(replies[0], {
      id: 1,
      connect: {
        client: 'c1',
        version: 'v',
        expires: true,
        ttl: 30,
        ping: 25,
        pong: true,
        subs: {
          a: {
            recoverable: true,
            epoch: 'e',
            offset: 4,
            publications: [{ data: [...Buffer.from('{"x":1}')], offset: 4, tags: {} }],
          },
        },
      },
    });
    assert.deepEqual(replies[1]!.subscribe!.publications, [
      {
        data: [0, 255],
        offset: 2,
        info: { user: 'u', client: 'c', conn_info: [...Buffer.from('{"n":1}')] },
        tags: {},
      },
    ]);
    assert.equal(replies[1]!.subscribe!.offset, Number.MAX_SAFE_INTEGER);
    assert.deepEqual(replies[2], {
      id: 3,
      presence: { presence: { c1: { user: 'u', client: 'c1', chan_info: [...Buffer.from('[1]')] } } },
    });
    assert.deepEqual(replies[3], { id: 4, presence_stats: { num_clients: 3, num_users: 2 } });
    assert.deepEqual(replies[4]!.history, {
      publications: [{ data: [...Buffer.from('"s"')], offset: 1, tags: { k: 'v' } }],
      epoch: 'e',
      offset: 1,
    });
    assert.deepEqual(replies[5], { id: 6, publish: {} });
    assert.deepEqual(replies[6], { id: 7, rpc: { data: [...Buffer.from('{"ok":true}')] } });
    assert.deepEqual(replies[7], { id: 8, sub_refresh: { expires: true, ttl: 5 } });
    assert.deepEqual(replies[8], { id: 9, error: { code: 103, message: 'permission denied' } });
    assert.deepEqual(replies[9], {
      id: 10,
      error: { code: 111, message: 'too many requests', temporary: true },
    });
  });

  it('every push kind decodes in the SDK', () => {
    const pushes: Array<[string, string, unknown]> = [
      ['join', '{"info":{"user":"u","client":"c"}}', { info: { user: 'u', client: 'c' } }],
      ['leave', '{"info":{"user":"u","client":"c"}}', { info: { user: 'u', client: 'c' } }],
      [
        'unsubscribe',
        '{"code":2000,"reason":"server unsubscribe"}',
        { code: 2000, reason: 'server unsubscribe' },
      ],
      ['message', '{"data":[1,2]}', { data: [...Buffer.from('[1,2]')] }],
      [
        'subscribe',
        '{"recoverable":true,"epoch":"e","offset":3,"positioned":true}',
        { recoverable: true, epoch: 'e', offset: 3, positioned: true },
      ],
      [
        'disconnect',
        '{"code":3501,"reason":"bad request","reconnect":false}',
        { code: 3501, reason: 'bad request' },
      ],
      ['connect', '{"client":"c","version":"v"}', { client: 'c', version: 'v', subs: {} }],
      ['refresh', '{"expires":true,"ttl":9}', { expires: true, ttl: 9 }],
      ['pub', '{"data":"x","offset":1}', { data: [...Buffer.from('"x"')], offset: 1, tags: {} }],
    ];
    for (const [kind, body, expected] of pushes) {
      const [reply] = sdk.decodeReplies(encodePush('ch', kind, body)).map(sdkPlain) as Array<
        Record<string, unknown>
      >;
      assert.deepEqual(reply, { push: { channel: 'ch', [kind]: expected } }, kind);
    }
  });

  it('the ping is an empty reply the SDK sees as a ping', () => {
    assert.deepEqual(sdk.decodeReplies(PROTOBUF_PING).map(sdkPlain), [{}]);
  });

  it('the fan-out publication encoder writes what the general encoder writes (property)', () => {
    const info = fc.option(
      fc.record(
        { user: fc.string(), client: fc.string(), conn_info: fc.option(fc.jsonValue(), { nil: undefined }) },
        { requiredKeys: ['user', 'client'] },
      ),
      { nil: undefined },
    );
    const tags = fc.option(fc.dictionary(fc.string(), fc.string(), { minKeys: 1, maxKeys: 4 }), {
      nil: undefined,
    });
    fc.assert(
      fc.property(
        fc.string(),
        fc.uint8Array({ maxLength: 300 }),
        info,
        offset,
        tags,
        (ch, data, who, off, tg) => {
          const infoJson = who === undefined ? undefined : JSON.stringify(who);
          const tagsJson = tg === undefined ? undefined : JSON.stringify(tg);
          const fast = encodePubPush(
            ch,
            data,
            infoJson === undefined ? undefined : clientInfoBytes(infoJson),
            off,
            tagsJson === undefined ? undefined : tagsBytes(tagsJson),
          );
          const pub: Record<string, unknown> = { data: Buffer.from(data), offset: off };
          if (who !== undefined) pub.info = JSON.parse(infoJson!);
          if (tg !== undefined) pub.tags = tg;
          const general = delimited(encodeMessage(ReplyMessage, { push: { channel: ch, pub } }));
          assert.deepEqual(fast, general);
          const [reply] = sdk.decodeReplies(fast).map(sdkPlain) as Array<{
            push: { channel?: string; pub: Record<string, unknown> };
          }>;
          assert.deepEqual(reply!.push.pub.data ?? [], [...data]);
          assert.equal(reply!.push.channel ?? '', ch);
          assert.equal(reply!.push.pub.offset ?? 0, off);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('protobuf codec: bounded, hostile input', () => {
  it('unknown fields of every wire type are skipped, groups included', () => {
    // Command{99: varint, 98: fixed64, 97: bytes, 96: fixed32, 95: group{1: varint}, id: 5, ping: {}}
    const body = Buffer.from([
      0x98,
      0x06,
      0x01, // 99 varint 1
      0x91,
      0x06,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8, // 98 fixed64
      0x8a,
      0x06,
      0x02,
      0xaa,
      0xbb, // 97 bytes
      0x85,
      0x06,
      1,
      2,
      3,
      4, // 96 fixed32
      0xfb,
      0x05,
      0x08,
      0x01,
      0xfc,
      0x05, // 95 start group, 1: 1, 95 end group
      0x08,
      0x05, // id 5
      0x5a,
      0x00, // ping {}
    ]);
    assert.deepEqual(plain(decode(delimited(body))), [{ id: 5, ping: {} }]);
  });

  it('malformed input is a bad request (3501)', () => {
    const cases: Array<[string, number[]]> = [
      ['length past the end', [0x05, 0x08, 0x01]],
      ['truncated varint in a length', [0x80]],
      [
        'varint longer than 10 bytes',
        [0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
      ],
      ['tenth varint byte above 1', [0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]],
      ['wrong wire type for id', [0x02, 0x0a, 0x00]],
      ['wrong wire type for a message field', [0x02, 0x38, 0x01]],
      ['field number 0', [0x02, 0x00, 0x01]],
      ['wire type 6', [0x02, 0x0e, 0x01]],
      ['wire type 7', [0x02, 0x0f, 0x01]],
      ['unterminated group', [0x02, 0x9b, 0x01]],
      ['mismatched end group', [0x04, 0x9b, 0x01, 0xa4, 0x01]],
      ['invalid UTF-8 in a channel', [0x06, 0x3a, 0x04, 0x0a, 0x02, 0xc3, 0x28]],
      ['nested length past its message', [0x04, 0x3a, 0x02, 0x0a, 0x05]],
      ['fixed64 past the end', [0x03, 0x91, 0x06, 0x01]],
    ];
    for (const [what, frame] of cases) {
      try {
        expectBadRequest(Buffer.from(frame));
      } catch (error) {
        assert.fail(`${what}: ${String(error)}`);
      }
    }
  });

  it('groups nested too deep are refused', () => {
    const open = Array.from({ length: 40 }, () => [0xfb, 0x05]).flat();
    const close = Array.from({ length: 40 }, () => [0xfc, 0x05]).flat();
    expectBadRequest(delimited(Buffer.from([...open, ...close])));
  });

  it('a frame with more than maxCommandsPerFrame commands is a bad request', () => {
    expectBadRequest(Buffer.alloc(LIMITS.maxCommandsPerFrame + 1, 0));
    assert.equal(decode(Buffer.alloc(LIMITS.maxCommandsPerFrame, 0)).length, LIMITS.maxCommandsPerFrame);
  });

  it('a map with more than MAX_MAP_ENTRIES entries is a bad request', () => {
    const subs: Record<string, unknown> = {};
    for (let i = 0; i <= MAX_MAP_ENTRIES; i++) subs[`c${i}`] = {};
    expectBadRequest(sdk.encodeCommands([{ id: 1, connect: { subs } }]));
    delete subs.c0;
    assert.equal(
      Object.keys(decode(sdk.encodeCommands([{ id: 1, connect: { subs } }]))[0]!.connect as object).length,
      1,
    );
  });

  it('a map key like __proto__ stays a key', () => {
    const [command] = decode(
      sdk.encodeCommands([
        { id: 1, connect: { subs: { __proto__x: {}, ['__proto__']: { recover: true } } } },
      ]),
    );
    const subs = (command!.connect as { subs: Record<string, unknown> }).subs;
    assert.equal(Object.getPrototypeOf(subs), null);
    assert.deepEqual(plain(Object.getOwnPropertyDescriptor(subs, '__proto__')?.value), { recover: true });
  });

  it('offsets above 2^53 are not read as wrong numbers', () => {
    const reader = new ProtoReader(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]));
    assert.ok(Number.isNaN(reader.varint()));
    const exact = Buffer.alloc(10);
    const end = writeVarint(exact, 0, Number.MAX_SAFE_INTEGER);
    assert.equal(end, varintSize(Number.MAX_SAFE_INTEGER));
    assert.equal(new ProtoReader(exact, 0, end).varint(), Number.MAX_SAFE_INTEGER);
  });

  it('random bytes decode or are a bad request; nothing else is thrown (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (frame) => {
        try {
          decodeProtobufCommands(Buffer.from(frame), LIMITS);
        } catch (error) {
          assert.ok(error instanceof DisconnectException, String(error));
          assert.equal(error.disconnect.code, Disconnects.BAD_REQUEST.code);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('mutated valid frames decode or are a bad request (property)', () => {
    const valid = Buffer.from(
      sdk.encodeCommands([
        { id: 1, connect: { token: 'x', subs: { a: { recover: true, offset: 5 } } } },
        { id: 2, history: { channel: 'c', limit: 10, since: { offset: 1, epoch: 'e' } } },
        { id: 3, publish: { channel: 'c', data: new Uint8Array([1, 2, 3]) } },
      ]),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(valid.length),
        (flips, cut) => {
          const frame = Buffer.from(valid.subarray(0, cut));
          for (const [at, value] of flips) if (at < frame.length) frame[at] = value;
          try {
            decodeProtobufCommands(frame, LIMITS);
          } catch (error) {
            assert.ok(error instanceof DisconnectException, String(error));
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('WireError is what the reader throws on its own', () => {
    assert.throws(() => new ProtoReader(Buffer.from([0x80])).varint(), WireError);
  });
});
