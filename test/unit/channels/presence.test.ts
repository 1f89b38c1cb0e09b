// In-memory presence: entries per channel, user counting (anonymous as one
// user), replacement, the total cap, and client ids that look like
// Object.prototype keys.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryPresence } from '../../../src/channels/presence.ts';
import type { ClientInfo } from '../../../src/channels/protocol.ts';

const info = (user: string, client: string, extra: Partial<ClientInfo> = {}): ClientInfo => ({
  user,
  client,
  ...extra,
});

describe('MemoryPresence', () => {
  test('add, get, remove', () => {
    const p = new MemoryPresence();
    assert.deepEqual(p.get('c'), {});
    assert.equal(p.add('c', 'a1', info('alice', 'a1', { conn_info: { n: 1 } })), true);
    assert.equal(p.add('c', 'b1', info('bob', 'b1')), true);
    assert.equal(p.add('other', 'a1', info('alice', 'a1')), true);
    assert.deepEqual(p.get('c'), {
      a1: { user: 'alice', client: 'a1', conn_info: { n: 1 } },
      b1: { user: 'bob', client: 'b1' },
    });
    assert.equal(p.size(), 3);
    assert.equal(p.channels(), 2);
    p.remove('c', 'a1');
    assert.deepEqual(Object.keys(p.get('c')), ['b1']);
    assert.deepEqual(Object.keys(p.get('other')), ['a1']);
    p.remove('c', 'a1'); // twice: nothing
    p.remove('nope', 'a1');
    p.remove('c', 'b1');
    assert.deepEqual(p.get('c'), {});
    assert.deepEqual(p.stats('c'), { numClients: 0, numUsers: 0 });
    assert.equal(p.size(), 1);
    assert.equal(p.channels(), 1, 'an emptied channel is dropped');
  });

  test('get returns a new object each call', () => {
    const p = new MemoryPresence();
    p.add('c', 'x', info('u', 'x'));
    const first = p.get('c');
    delete first.x;
    assert.deepEqual(Object.keys(p.get('c')), ['x']);
  });

  test('stats count distinct users; anonymous clients count as one user', () => {
    const p = new MemoryPresence();
    p.add('c', '1', info('alice', '1'));
    p.add('c', '2', info('alice', '2'));
    p.add('c', '3', info('bob', '3'));
    p.add('c', '4', info('', '4'));
    p.add('c', '5', info('', '5'));
    assert.deepEqual(p.stats('c'), { numClients: 5, numUsers: 3 });
    p.remove('c', '1');
    assert.deepEqual(p.stats('c'), { numClients: 4, numUsers: 3 });
    p.remove('c', '2');
    assert.deepEqual(p.stats('c'), { numClients: 3, numUsers: 2 });
    p.remove('c', '4');
    p.remove('c', '5');
    assert.deepEqual(p.stats('c'), { numClients: 1, numUsers: 1 });
    assert.deepEqual(p.stats('unknown'), { numClients: 0, numUsers: 0 });
  });

  test('replacing an entry moves its user count', () => {
    const p = new MemoryPresence();
    p.add('c', 'x', info('alice', 'x'));
    p.add('c', 'y', info('bob', 'y'));
    assert.equal(p.add('c', 'x', info('bob', 'x', { chan_info: 'v2' })), true);
    assert.deepEqual(p.stats('c'), { numClients: 2, numUsers: 1 });
    assert.deepEqual(p.get('c').x, { user: 'bob', client: 'x', chan_info: 'v2' });
    assert.equal(p.size(), 2);
    p.remove('c', 'y');
    assert.deepEqual(p.stats('c'), { numClients: 1, numUsers: 1 });
    p.remove('c', 'x');
    assert.deepEqual(p.stats('c'), { numClients: 0, numUsers: 0 });
  });

  test('the total cap refuses new entries but not replacements, and frees up on remove', () => {
    const p = new MemoryPresence({ maxEntries: 3 });
    assert.equal(p.add('a', '1', info('u', '1')), true);
    assert.equal(p.add('b', '2', info('u', '2')), true);
    assert.equal(p.add('b', '3', info('u', '3')), true);
    assert.equal(p.add('c', '4', info('u', '4')), false);
    assert.deepEqual(p.get('c'), {});
    assert.equal(p.channels(), 2, 'a refused add leaves no empty channel behind');
    assert.equal(p.add('a', '1', info('v', '1')), true, 'replacement at the cap');
    assert.equal(p.size(), 3);
    p.remove('b', '2');
    assert.equal(p.add('c', '4', info('u', '4')), true);
    assert.equal(p.size(), 3);
  });

  test('client ids, users and channels that are Object.prototype names stay plain keys', () => {
    const p = new MemoryPresence();
    for (const id of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      p.add('__proto__', id, info(id, id));
    }
    const got = p.get('__proto__');
    assert.deepEqual(Object.keys(got).sort(), ['__proto__', 'constructor', 'hasOwnProperty', 'toString']);
    assert.equal(Object.getPrototypeOf(got), Object.prototype);
    assert.deepEqual(got['__proto__'], { user: '__proto__', client: '__proto__' });
    assert.match(JSON.stringify(got), /"__proto__":\{"user":"__proto__"/);
    assert.deepEqual(p.stats('__proto__'), { numClients: 4, numUsers: 4 });
    assert.deepEqual(p.get('constructor'), {});
  });

  test('stats stay O(1) with many subscribers', () => {
    const p = new MemoryPresence();
    for (let i = 0; i < 100_000; i++) p.add('big', `c${i}`, info(`u${i % 1000}`, `c${i}`));
    const start = performance.now();
    for (let i = 0; i < 100_000; i++) p.stats('big');
    // 100 000 calls over 100 000 entries: anything per-entry would take minutes.
    assert.ok(performance.now() - start < 2000);
    assert.deepEqual(p.stats('big'), { numClients: 100_000, numUsers: 1000 });
  });

  test('bad limits are refused', () => {
    assert.throws(() => new MemoryPresence({ maxEntries: 0 }), RangeError);
    assert.throws(() => new MemoryPresence({ maxEntries: Number.NaN }), RangeError);
  });
});
