// In-memory history streams on a hand-driven clock: offsets and epochs,
// reads forward and backward, recovery (all or nothing), and the three
// bounds: count and age per channel, bytes over all channels (oldest first),
// streams (least recently used forgotten, idle ones swept).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  MemoryHistory,
  PUBLICATION_OVERHEAD,
  type HistoryLimits,
  type StoredPublication,
} from '../../../src/channels/history.ts';
import { ReplyErrorException, ReplyErrors } from '../../../src/channels/protocol.ts';

/** A hand-driven clock in milliseconds. */
function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

function setup(limits: Partial<HistoryLimits> = {}) {
  const clock = fakeClock();
  const history = new MemoryHistory({ now: clock.now, ...limits });
  /** Publishes `data` (a string) to `channel` with history size/ttl. */
  const publish = (channel: string, data: string, size = 100, ttl = 60_000) =>
    history.append(channel, (offset) => JSON.stringify({ data, offset }), size, ttl);
  return { clock, history, publish };
}

const datas = (pubs: StoredPublication[]) => pubs.map((p) => (JSON.parse(p.json) as { data: string }).data);
const offsets = (pubs: StoredPublication[]) => pubs.map((p) => p.offset);

function unrecoverable(fn: () => unknown): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ReplyErrorException);
    assert.equal(error.error.code, ReplyErrors.UNRECOVERABLE_POSITION.code);
    return true;
  });
}

describe('MemoryHistory: positions', () => {
  test('offsets count from 1; the epoch is made once and kept', () => {
    const { history, publish } = setup();
    const start = history.top('c');
    assert.equal(start.offset, 0);
    assert.match(start.epoch, /^[A-Za-z0-9_-]{8}$/);
    assert.deepEqual(history.top('c'), start, 'top of an untouched stream keeps its epoch');
    const p1 = publish('c', 'a');
    const p2 = publish('c', 'b');
    assert.deepEqual(p1, { offset: 1, epoch: start.epoch });
    assert.deepEqual(p2, { offset: 2, epoch: start.epoch });
    assert.deepEqual(history.top('c'), p2);
    assert.notEqual(history.top('other').epoch, start.epoch, 'each stream has its own epoch');
  });

  test('encode gets the new offset; its JSON and byte length are stored', () => {
    const { history } = setup();
    const seen: number[] = [];
    history.append('c', (o) => (seen.push(o), `{"data":"é","offset":${o}}`), 10, 1000);
    history.append('c', (o) => (seen.push(o), `{"data":2,"offset":${o}}`), 10, 1000);
    assert.deepEqual(seen, [1, 2]);
    const [first] = history.read('c', { limit: -1, reverse: false }).publications;
    assert.ok(first);
    assert.equal(first.json, '{"data":"é","offset":1}');
    assert.equal(first.bytes, Buffer.byteLength(first.json));
    assert.equal(first.offset, 1);
    assert.equal(typeof first.time, 'number');
  });

  test('an encode that throws leaves the position where it was', () => {
    const { history, publish } = setup();
    publish('c', 'a');
    assert.throws(() =>
      history.append(
        'c',
        () => {
          throw new Error('boom');
        },
        10,
        1000,
      ),
    );
    assert.equal(history.top('c').offset, 1);
    assert.deepEqual(publish('c', 'b').offset, 2);
  });

  test('with size or ttl 0 the offset advances but nothing is kept', () => {
    const { history, publish } = setup();
    publish('c', 'a');
    publish('c', 'b', 0, 0);
    assert.equal(history.top('c').offset, 2);
    assert.deepEqual(history.read('c', { limit: -1, reverse: false }).publications, []);
    assert.equal(history.stats().publications, 0);
  });
});

describe('MemoryHistory: read', () => {
  const filled = () => {
    const s = setup();
    for (const d of ['a', 'b', 'c', 'd', 'e']) s.publish('ch', d);
    return s;
  };

  test('without since: oldest first, limited; -1 = all, 0 = none', () => {
    const { history } = filled();
    const all = history.read('ch', { limit: -1, reverse: false });
    assert.deepEqual(datas(all.publications), ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(all.top, history.top('ch'));
    assert.deepEqual(datas(history.read('ch', { limit: 2, reverse: false }).publications), ['a', 'b']);
    assert.deepEqual(history.read('ch', { limit: 0, reverse: false }).publications, []);
    assert.deepEqual(datas(history.read('ch', { limit: 100, reverse: false }).publications), [
      'a',
      'b',
      'c',
      'd',
      'e',
    ]);
  });

  test('reverse: newest first', () => {
    const { history } = filled();
    assert.deepEqual(datas(history.read('ch', { limit: 2, reverse: true }).publications), ['e', 'd']);
    assert.deepEqual(datas(history.read('ch', { limit: -1, reverse: true }).publications), [
      'e',
      'd',
      'c',
      'b',
      'a',
    ]);
  });

  test('since: after it (forward) or before it (reverse)', () => {
    const { history } = filled();
    const { epoch } = history.top('ch');
    const after2 = history.read('ch', { since: { offset: 2, epoch }, limit: -1, reverse: false });
    assert.deepEqual(offsets(after2.publications), [3, 4, 5]);
    assert.deepEqual(
      offsets(history.read('ch', { since: { offset: 2, epoch }, limit: 2, reverse: false }).publications),
      [3, 4],
    );
    assert.deepEqual(
      offsets(history.read('ch', { since: { offset: 4, epoch }, limit: -1, reverse: true }).publications),
      [3, 2, 1],
    );
    assert.deepEqual(
      offsets(history.read('ch', { since: { offset: 4, epoch }, limit: 1, reverse: true }).publications),
      [3],
    );
    assert.deepEqual(
      history.read('ch', { since: { offset: 5, epoch }, limit: -1, reverse: false }).publications,
      [],
    );
    assert.deepEqual(
      history.read('ch', { since: { offset: 9, epoch }, limit: -1, reverse: false }).publications,
      [],
    );
    assert.deepEqual(
      offsets(history.read('ch', { since: { offset: 0, epoch }, limit: -1, reverse: false }).publications),
      [1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      history.read('ch', { since: { offset: 1, epoch }, limit: -1, reverse: true }).publications,
      [],
    );
  });

  test('since with another epoch is an unrecoverable position; a bad offset a bad request', () => {
    const { history } = filled();
    unrecoverable(() =>
      history.read('ch', { since: { offset: 1, epoch: 'other' }, limit: -1, reverse: false }),
    );
    unrecoverable(() => history.read('new', { since: { offset: 0, epoch: 'x' }, limit: -1, reverse: false }));
    const { epoch } = history.top('ch');
    for (const offset of [-1, 1.5, Number.NaN, Infinity]) {
      assert.throws(
        () => history.read('ch', { since: { offset, epoch }, limit: -1, reverse: false }),
        (e: unknown) => e instanceof ReplyErrorException && e.error.code === ReplyErrors.BAD_REQUEST.code,
      );
    }
  });

  test('an unknown channel reads empty at offset 0', () => {
    const { history } = setup();
    const r = history.read('none', { limit: -1, reverse: false });
    assert.deepEqual(r.publications, []);
    assert.equal(r.top.offset, 0);
  });

  test('historySize keeps the newest', () => {
    const { history, publish } = setup();
    for (let i = 1; i <= 10; i++) publish('c', `m${i}`, 3);
    assert.deepEqual(datas(history.read('c', { limit: -1, reverse: false }).publications), [
      'm8',
      'm9',
      'm10',
    ]);
    assert.equal(history.top('c').offset, 10);
    assert.equal(history.stats().publications, 3);
  });

  test('publications older than the ttl are not returned', () => {
    const { clock, history, publish } = setup();
    publish('c', 'old', 100, 1000);
    clock.advance(600);
    publish('c', 'new', 100, 1000);
    clock.advance(399);
    assert.deepEqual(datas(history.read('c', { limit: -1, reverse: false }).publications), ['old', 'new']);
    clock.advance(1);
    assert.deepEqual(datas(history.read('c', { limit: -1, reverse: false }).publications), ['new']);
    clock.advance(600);
    assert.deepEqual(history.read('c', { limit: -1, reverse: false }).publications, []);
    assert.equal(history.top('c').offset, 2, 'the position outlives the publications');
  });
});

describe('MemoryHistory: recover', () => {
  test('everything after the position, or nothing', () => {
    const { history, publish } = setup();
    const { epoch } = history.top('c');
    for (const d of ['a', 'b', 'c', 'd']) publish('c', d);
    const r = history.recover('c', { offset: 1, epoch }, 100);
    assert.equal(r.recovered, true);
    assert.deepEqual(datas(r.publications), ['b', 'c', 'd']);
    assert.deepEqual(r.top, { offset: 4, epoch });
    assert.deepEqual(history.recover('c', { offset: 4, epoch }, 100), {
      publications: [],
      top: r.top,
      recovered: true,
    });
    assert.deepEqual(offsets(history.recover('c', { offset: 0, epoch }, 100).publications), [1, 2, 3, 4]);
  });

  test('another epoch, a future offset or too many missing: recovered false, no publications', () => {
    const { history, publish } = setup();
    const { epoch } = history.top('c');
    for (let i = 0; i < 10; i++) publish('c', `m${i}`);
    for (const [since, max] of [
      [{ offset: 5, epoch: 'nope' }, 100],
      [{ offset: 11, epoch }, 100],
      [{ offset: 2.5, epoch }, 100],
      [{ offset: 5, epoch }, 4],
    ] as const) {
      const r = history.recover('c', since, max);
      assert.equal(r.recovered, false, JSON.stringify(since));
      assert.deepEqual(r.publications, []);
      assert.deepEqual(r.top, { offset: 10, epoch });
    }
    assert.equal(history.recover('c', { offset: 5, epoch }, 5).recovered, true, 'exactly max missing');
    assert.equal(history.recover('c', { offset: 5, epoch }, -1).publications.length, 5, 'max < 0: no cap');
  });

  test('a gap trimmed by size, expired by ttl, or removed: recovered false', () => {
    const { clock, history, publish } = setup();
    const { epoch } = history.top('c');
    for (let i = 1; i <= 5; i++) publish('c', `m${i}`, 3);
    assert.equal(history.recover('c', { offset: 1, epoch }, 100).recovered, false, 'm2 fell out by size');
    assert.equal(history.recover('c', { offset: 2, epoch }, 100).recovered, true);

    publish('t', 'x', 100, 1000);
    const t = history.top('t');
    clock.advance(1000);
    assert.equal(history.recover('t', { offset: 0, epoch: t.epoch }, 100).recovered, false, 'expired');
    assert.equal(history.recover('t', { offset: 1, epoch: t.epoch }, 100).recovered, true, 'nothing missed');

    history.remove('c');
    assert.equal(history.recover('c', { offset: 4, epoch }, 100).recovered, false, 'removed');
    assert.equal(
      history.recover('c', { offset: 5, epoch }, 100).recovered,
      true,
      'at the top: nothing missed',
    );
    assert.deepEqual(history.top('c'), { offset: 5, epoch }, 'remove keeps position and epoch');
    publish('c', 'm6', 3);
    assert.deepEqual(datas(history.recover('c', { offset: 5, epoch }, 100).publications), ['m6']);
  });
});

describe('MemoryHistory: byte budget', () => {
  test('the globally oldest publications are trimmed first, and recovery across them fails', () => {
    const body = 'x'.repeat(100);
    const one = Buffer.byteLength(JSON.stringify({ data: body, offset: 1 })) + PUBLICATION_OVERHEAD;
    const { history, publish } = setup({ maxBytes: one * 4 + 10 });
    const a = history.top('a');
    const b = history.top('b');
    publish('a', body); // a1
    publish('b', body); // b1
    publish('a', body); // a2
    publish('b', body); // b2
    assert.equal(history.stats().trimmed, 0);
    publish('b', body); // b3: a1 goes
    assert.deepEqual(offsets(history.read('a', { limit: -1, reverse: false }).publications), [2]);
    assert.deepEqual(offsets(history.read('b', { limit: -1, reverse: false }).publications), [1, 2, 3]);
    publish('a', body); // a3: b1 goes
    assert.deepEqual(offsets(history.read('b', { limit: -1, reverse: false }).publications), [2, 3]);
    assert.deepEqual(history.stats(), {
      streams: 2,
      publications: 4,
      bytes: history.stats().bytes,
      trimmed: 2,
    });
    assert.ok(history.stats().bytes <= one * 4 + 10);

    assert.equal(history.recover('a', { offset: 0, epoch: a.epoch }, 100).recovered, false);
    assert.equal(history.recover('a', { offset: 1, epoch: a.epoch }, 100).recovered, true);
    assert.equal(history.recover('b', { offset: 0, epoch: b.epoch }, 100).recovered, false);
    assert.deepEqual(offsets(history.recover('b', { offset: 1, epoch: b.epoch }, 100).publications), [2, 3]);
  });

  test('publications already gone (size, remove) do not count twice', () => {
    const big = 'y'.repeat(1000);
    const { history, publish } = setup({ maxBytes: 5000 });
    for (let i = 0; i < 50; i++) publish('small', big, 1); // one kept at a time
    publish('other', big);
    history.remove('other');
    publish('keep', big);
    publish('keep', big);
    publish('keep', big);
    assert.equal(history.stats().trimmed, 0, 'trimming skipped what size and remove already dropped');
    assert.equal(history.stats().publications, 4);
    assert.equal(history.read('keep', { limit: -1, reverse: false }).publications.length, 3);
  });

  test('trimming skips entries of publications already dropped by size', () => {
    const body = 'w'.repeat(200);
    const one = Buffer.byteLength(JSON.stringify({ data: body, offset: 1 })) + PUBLICATION_OVERHEAD;
    const { history, publish } = setup({ maxBytes: one * 2 + 10 });
    publish('a', body, 1); // a1
    publish('b', body); // b1
    publish('a', body, 1); // a2 (a1 dropped by size)
    publish('b', body); // b2: over budget, b1 is the oldest kept
    assert.deepEqual(offsets(history.read('a', { limit: -1, reverse: false }).publications), [2]);
    assert.deepEqual(offsets(history.read('b', { limit: -1, reverse: false }).publications), [2]);
    assert.equal(history.stats().trimmed, 1);
  });

  test('a publication larger than the budget is not kept, but its offset counts', () => {
    const { history, publish } = setup({ maxBytes: 100 });
    const pos = publish('c', 'z'.repeat(500));
    assert.equal(pos.offset, 1);
    assert.deepEqual(history.stats().publications, 0);
    assert.equal(history.stats().bytes, 0);
    assert.equal(history.recover('c', { offset: 0, epoch: pos.epoch }, 10).recovered, false);
  });

  test('bytes come back to 0 when everything is gone', () => {
    const { clock, history, publish } = setup();
    for (let i = 0; i < 100; i++) publish(`c${i % 7}`, `m${i}`, 5, 1000);
    assert.ok(history.stats().bytes > 0);
    clock.advance(1000);
    history.sweep();
    assert.equal(history.stats().publications, 0);
    assert.equal(history.stats().bytes, 0);
  });
});

describe('MemoryHistory: streams', () => {
  test('past maxStreams the least recently used stream is forgotten; recreated, it has a new epoch', () => {
    const { history, publish } = setup({ maxStreams: 3 });
    const a = publish('a', '1');
    publish('b', '1');
    publish('c', '1');
    history.top('a'); // a is now the most recently used
    publish('d', '1'); // b goes
    assert.equal(history.stats().streams, 3);
    assert.equal(history.stats().trimmed, 1);
    assert.deepEqual(history.top('a'), a);
    const b = history.top('b'); // recreated: c goes (the oldest used now)
    assert.equal(b.offset, 0);
    assert.equal(history.stats().streams, 3);
    assert.equal(history.read('c', { limit: -1, reverse: false }).publications.length, 0);
  });

  test('a forgotten stream recovers false (new epoch)', () => {
    const { history, publish } = setup({ maxStreams: 1 });
    const old = publish('a', '1');
    publish('b', '1'); // a forgotten
    const r = history.recover('a', old, 100);
    assert.equal(r.recovered, false);
    assert.notEqual(r.top.epoch, old.epoch);
    assert.equal(r.top.offset, 0);
  });

  test('sweep drops expired publications, then idle streams after metaTtl', () => {
    const { clock, history, publish } = setup({ metaTtl: 10_000 });
    const pos = publish('c', 'a', 100, 1000); // t = 0
    clock.advance(1000);
    history.sweep();
    assert.equal(history.stats().publications, 0, 'expired without a read');
    assert.equal(history.stats().streams, 1);
    clock.advance(4000);
    const idle = history.top('idle'); // t = 5000
    clock.advance(4999);
    history.sweep();
    assert.equal(history.stats().streams, 2, 'c idle for 9999 ms: kept');
    clock.advance(1);
    history.sweep();
    assert.equal(history.stats().streams, 1, 'c idle for 10 s: forgotten');
    assert.deepEqual(history.top('idle'), idle);
    const again = history.top('c');
    assert.equal(again.offset, 0);
    assert.notEqual(again.epoch, pos.epoch, 'recreated with a new epoch');
    clock.advance(10_000);
    history.sweep();
    assert.equal(history.stats().streams, 0);
  });

  test('use keeps a stream alive past metaTtl', () => {
    const { clock, history, publish } = setup({ metaTtl: 1000 });
    const pos = publish('c', 'a', 10, 500);
    for (let i = 0; i < 10; i++) {
      clock.advance(900);
      history.sweep();
      assert.deepEqual(history.top('c'), pos);
    }
  });

  test('a stream whose publications outlive metaTtl stays until they expire', () => {
    const { clock, history, publish } = setup({ metaTtl: 1000 });
    const pos = publish('c', 'a', 10, 5000);
    clock.advance(4999);
    history.sweep();
    assert.equal(history.stats().streams, 1);
    assert.equal(history.recover('c', { offset: 0, epoch: pos.epoch }, 10).recovered, true);
    clock.advance(1);
    history.sweep();
    assert.equal(history.stats().publications, 0);
  });

  test('one sweep handles at most maxSteps due streams; the rest wait for the next', () => {
    const { clock, history, publish } = setup({ metaTtl: 1000 });
    for (let i = 0; i < 25; i++) publish(`c${i}`, 'x', 10, 100);
    clock.advance(1000);
    assert.equal(history.sweep(10), false);
    assert.equal(history.stats().streams, 15);
    assert.equal(history.sweep(10), false);
    assert.equal(history.sweep(10), true);
    assert.equal(history.stats().streams, 0);
    assert.equal(history.sweep(10), true, 'nothing due');
    const r = history.read('c3', { limit: -1, reverse: false });
    assert.equal(r.top.offset, 0, 'forgotten streams start over');
  });

  test('remove of an unknown channel creates nothing', () => {
    const { history } = setup();
    history.remove('nothing');
    assert.equal(history.stats().streams, 0);
  });

  test('bad limits are refused', () => {
    assert.throws(() => new MemoryHistory({ maxBytes: 0 }), RangeError);
    assert.throws(() => new MemoryHistory({ maxStreams: -1 }), RangeError);
    assert.throws(() => new MemoryHistory({ metaTtl: Number.NaN }), RangeError);
  });
});

describe('MemoryHistory: cost', () => {
  test('sweep with nothing due is cheap with many streams', () => {
    const { history, publish } = setup();
    for (let i = 0; i < 50_000; i++) publish(`c${i}`, 'x', 10, 60_000);
    const start = performance.now();
    for (let i = 0; i < 100_000; i++) history.sweep();
    // 100 000 sweeps over 50 000 streams: a scan per sweep would be 5e9 steps.
    assert.ok(performance.now() - start < 2000, `${performance.now() - start} ms`);
  });

  test('a churn of expiring streams keeps memory bounded (stale entries are purged)', () => {
    const { clock, history, publish } = setup({ maxStreams: 100, metaTtl: 1000 });
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 100; i++) publish(`r${round}-${i}`, 'x', 1, 100);
      clock.advance(50);
      history.sweep();
    }
    const stats = history.stats();
    assert.ok(stats.streams <= 100);
    assert.ok(stats.publications <= 100);
    const held = history.bookkeeping();
    assert.ok(held.schedule <= 2 * 100 + 1024, `schedule ${held.schedule}`);
    assert.ok(held.order <= 2 * 100 + 1024, `order ${held.order}`);
  });

  test('a busy channel with a small history does not grow the global order', () => {
    const { history, publish } = setup();
    publish('long', 'keep', 10, 60_000);
    for (let i = 0; i < 50_000; i++) publish('busy', 'x', 1, 60_000);
    assert.equal(history.stats().publications, 2);
    assert.ok(history.bookkeeping().order <= 2 * 2 + 1024, `order ${history.bookkeeping().order}`);
    assert.ok(history.bookkeeping().schedule <= 2 * 2 + 1024);
    assert.deepEqual(datas(history.read('long', { limit: -1, reverse: false }).publications), ['keep']);
  });

  test('appends, reads and recovery at depth stay fast', () => {
    const { history, publish } = setup({ maxBytes: 1 << 30 });
    const { epoch } = history.top('deep');
    for (let i = 0; i < 100_000; i++) publish('deep', 'x', 100_000);
    const start = performance.now();
    for (let i = 0; i < 10_000; i++) {
      history.read('deep', { since: { offset: 99_990, epoch }, limit: 5, reverse: false });
      history.read('deep', { limit: 5, reverse: true });
      history.recover('deep', { offset: 99_995, epoch }, 100);
    }
    assert.ok(performance.now() - start < 2000, `${performance.now() - start} ms`);
  });
});
