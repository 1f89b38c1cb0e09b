// Key derivation of the Redis engine: every key and the pub/sub channel of
// a channel hash to one Redis Cluster slot whatever the name holds (braces
// included), two channels never share keys, and the pub/sub message format
// round-trips and refuses what is malformed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  channelKeys,
  channelOfPubsub,
  checkKeyPrefix,
  decodeStateMessage,
  encodeJoinLeave,
  encodeSync,
  hashTag,
} from '../../../src/channels/redis-keys.ts';

/** The part of a key Redis Cluster hashes (the rule of the cluster specification, written out here). */
function hashedPart(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

/** CRC16-CCITT (XModem), as Redis Cluster computes slots. */
function slotOf(key: string): number {
  let crc = 0;
  for (const byte of Buffer.from(hashedPart(key))) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

const NAMES = [
  'chat',
  'chat:general',
  '{}',
  '{',
  '}',
  '}{',
  'a{b}c',
  '{chat}',
  'x{}y',
  '{{}}',
  'ns:{user}:1',
  'ünïcödé',
  'a'.repeat(255),
];

describe('redis engine keys', () => {
  test('the slot check itself matches known Redis slots', () => {
    // Values Redis documents / answers with CLUSTER KEYSLOT.
    assert.equal(slotOf('foo'), 12182);
    assert.equal(slotOf('{user1000}.following'), slotOf('{user1000}.followers'));
    assert.equal(slotOf('foo{}{bar}'), slotOf('foo{}{bar}'));
    assert.equal(hashedPart('foo{}{bar}'), 'foo{}{bar}');
    assert.equal(hashedPart('foo{{bar}}zap'), '{bar');
  });

  test('every key and the pub/sub channel of a channel share one slot, for names with braces too', () => {
    for (const name of NAMES) {
      const keys = channelKeys('wshub', name);
      const all = [
        keys.stream,
        keys.meta,
        keys.presence,
        keys.presenceUsers,
        keys.presenceExpiry,
        keys.pubsub,
      ];
      const tag = hashTag(name);
      assert.match(tag, /^[0-9a-f]{24}$/);
      for (const key of all) {
        assert.equal(hashedPart(key), tag, `${JSON.stringify(name)}: ${key}`);
        assert.equal(slotOf(key), slotOf(keys.stream));
      }
      assert.equal(new Set(all).size, all.length, 'distinct keys');
    }
  });

  test('different channels get different keys, and the pub/sub channel maps back to its channel', () => {
    const seen = new Set<string>();
    for (const name of NAMES) {
      const keys = channelKeys('app', name);
      assert.ok(!seen.has(keys.stream));
      seen.add(keys.stream);
      assert.equal(channelOfPubsub('app', keys.pubsub), name);
      assert.equal(channelOfPubsub('other', keys.pubsub), null);
      assert.equal(channelOfPubsub('app', keys.stream), null);
    }
    // A pub/sub name whose tag does not match its channel is not ours.
    const forged = channelKeys('app', 'a').pubsub.replace(/:a$/, ':b');
    assert.equal(channelOfPubsub('app', forged), null);
  });

  test('a prefix with a brace or whitespace is refused (it would move the hash tag)', () => {
    assert.equal(checkKeyPrefix('wshub-prod'), 'wshub-prod');
    for (const bad of ['', '{x}', 'a}', 'a b', 'x'.repeat(65)])
      assert.throws(() => checkKeyPrefix(bad), RangeError);
  });

  test('pub/sub messages: publications and join/leave decode; malformed ones are null', () => {
    const raw = 'héllo';
    const data = '"h\\u00e9llo"';
    const message = Buffer.from(
      `p 7 abcDEF12 ${Buffer.byteLength(raw)} ${Buffer.byteLength(data)}\n${raw}${data},"info":{"user":"ü"}`,
    );
    assert.deepEqual(decodeStateMessage(message), {
      kind: 'pub',
      offset: 7,
      epoch: 'abcDEF12',
      raw,
      dataJson: data,
      tail: ',"info":{"user":"ü"}',
    });
    assert.deepEqual(decodeStateMessage(Buffer.from('p 1 e 0 2\n{}')), {
      kind: 'pub',
      offset: 1,
      epoch: 'e',
      raw: null,
      dataJson: '{}',
      tail: '',
    });
    assert.deepEqual(decodeStateMessage(Buffer.from(encodeJoinLeave('leave', '{"user":"u"}'))), {
      kind: 'leave',
      infoJson: '{"user":"u"}',
    });
    assert.deepEqual(decodeStateMessage(Buffer.from(encodeSync('a1b2.7'))), {
      kind: 'sync',
      token: 'a1b2.7',
    });
    for (const bad of [
      '',
      'p 1 e 0 2',
      'p 0 e 0 2\n{}',
      'p 1 e 0 9\n{}',
      'p 1 e -1 2\n{}',
      'p x e 0 2\n{}',
      'p 1  0 2\n{}',
      'q\n{}',
      'j x\n{}',
      's\n',
      's \n',
      's a b\n',
      's a\nmore',
      `p ${'9'.repeat(300)}\n{}`,
    ])
      assert.equal(decodeStateMessage(Buffer.from(bad)), null, JSON.stringify(bad));
  });
});
