// MemoryHistory against a plain model, over random sequences of appends,
// reads, recoveries, removals, sweeps and clock steps: one run with
// per-channel size and ttl (no byte budget), one with the byte budget
// trimming the globally oldest (no expiry).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MemoryHistory, PUBLICATION_OVERHEAD } from '../../../src/channels/history.ts';
import { ReplyErrorException } from '../../../src/channels/protocol.ts';

const CHANNELS = {
  a: { size: 3, ttl: 1000 },
  b: { size: 100, ttl: 250 },
  c: { size: 5, ttl: 10_000 },
} as const;
type Channel = keyof typeof CHANNELS;
const channel = fc.constantFrom<Channel>('a', 'b', 'c');

const op = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      ch: channel,
      data: fc.string({ maxLength: 40 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.integer({ min: 0, max: 8 }).map((n) => n * 50),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      ch: channel,
      back: fc.option(fc.integer({ min: -1, max: 8 }), { nil: undefined }), // since = top - back
      limit: fc.integer({ min: -1, max: 6 }),
      reverse: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('recover' as const),
      ch: channel,
      back: fc.integer({ min: -1, max: 8 }), // the position is this far behind the top
      max: fc.integer({ min: -1, max: 8 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), ch: channel }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sweep' as const) }) },
);

interface ModelPub {
  offset: number;
  time: number;
  bytes: number;
  live: boolean;
}

describe('MemoryHistory against a model', () => {
  test('size, ttl, remove, read and recover', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        let now = 0;
        const history = new MemoryHistory({ now: () => now, metaTtl: 1e12 });
        const model = new Map<Channel, { top: number; floor: number; pubs: ModelPub[]; epoch: string }>();
        const state = (ch: Channel) => {
          let s = model.get(ch);
          if (s === undefined) {
            s = { top: 0, floor: 0, pubs: [], epoch: history.top(ch).epoch };
            model.set(ch, s);
          }
          return s;
        };
        /** Offsets the model says are kept now. */
        const kept = (ch: Channel) => {
          const s = state(ch);
          const { size, ttl } = CHANNELS[ch];
          const from = Math.max(s.top - size, s.floor);
          return s.pubs.filter((p) => p.offset > from && p.time + ttl > now).map((p) => p.offset);
        };
        for (const o of ops) {
          if (o.kind === 'advance') now += o.ms;
          else if (o.kind === 'sweep') {
            history.sweep(Infinity);
            const total = (Object.keys(CHANNELS) as Channel[]).reduce((n, ch) => n + kept(ch).length, 0);
            assert.equal(history.stats().publications, total, 'after a sweep nothing expired is kept');
          } else if (o.kind === 'append') {
            const s = state(o.ch);
            const pos = history.append(
              o.ch,
              (offset) => JSON.stringify({ data: o.data, offset }),
              CHANNELS[o.ch].size,
              CHANNELS[o.ch].ttl,
            );
            s.top++;
            s.pubs.push({ offset: s.top, time: now, bytes: 0, live: true });
            assert.deepEqual(pos, { offset: s.top, epoch: s.epoch });
          } else if (o.kind === 'remove') {
            const s = state(o.ch);
            history.remove(o.ch);
            s.floor = s.top;
          } else if (o.kind === 'read') {
            const s = state(o.ch);
            const since = o.back === undefined ? undefined : Math.max(0, s.top - o.back);
            let want = kept(o.ch);
            if (since !== undefined) want = want.filter((off) => (o.reverse ? off < since : off > since));
            if (o.reverse) want.reverse();
            if (o.limit >= 0) want = want.slice(0, o.limit);
            const got = history.read(o.ch, {
              since: since === undefined ? undefined : { offset: since, epoch: s.epoch },
              limit: o.limit,
              reverse: o.reverse,
            });
            assert.deepEqual(
              got.publications.map((p) => p.offset),
              want,
            );
            for (const p of got.publications)
              assert.equal((JSON.parse(p.json) as { offset: number }).offset, p.offset);
            assert.deepEqual(got.top, { offset: s.top, epoch: s.epoch });
            assert.throws(
              () => history.read(o.ch, { since: { offset: 0, epoch: 'x' }, limit: -1, reverse: false }),
              ReplyErrorException,
            );
          } else {
            const s = state(o.ch);
            const k = kept(o.ch);
            const offset = Math.max(0, s.top - o.back);
            const missing = s.top - offset;
            const complete =
              missing >= 0 && (missing === 0 || (k.length > 0 && k[0]! <= offset + 1 && k.at(-1) === s.top));
            const ok = complete && (o.max < 0 || missing <= o.max);
            const got = history.recover(o.ch, { offset, epoch: s.epoch }, o.max);
            assert.equal(got.recovered, ok);
            assert.deepEqual(
              got.publications.map((p) => p.offset),
              ok ? k.filter((off) => off > offset) : [],
            );
            assert.deepEqual(got.top, { offset: s.top, epoch: s.epoch });
            assert.equal(history.recover(o.ch, { offset, epoch: `${s.epoch}!` }, -1).recovered, false);
          }
        }
      }),
      { numRuns: 400 },
    );
  });

  test('the byte budget trims the globally oldest kept publication', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.array(op, { maxLength: 150 }), (budgetPubs, ops) => {
        const maxBytes = budgetPubs * (PUBLICATION_OVERHEAD + 40);
        const history = new MemoryHistory({ maxBytes, metaTtl: 1e12, now: () => 0 });
        const order: (ModelPub & { ch: Channel })[] = [];
        const tops: Record<Channel, number> = { a: 0, b: 0, c: 0 };
        let trimmed = 0;
        for (const o of ops) {
          if (o.kind === 'append') {
            const offset = ++tops[o.ch];
            const json = JSON.stringify({ data: o.data, offset });
            history.append(o.ch, () => json, CHANNELS[o.ch].size, 1e9);
            order.push({
              ch: o.ch,
              offset,
              time: 0,
              bytes: Buffer.byteLength(json) + PUBLICATION_OVERHEAD,
              live: true,
            });
            for (const p of order)
              if (p.ch === o.ch && p.offset <= offset - CHANNELS[o.ch].size) p.live = false;
            const total = () => order.reduce((n, p) => n + (p.live ? p.bytes : 0), 0);
            for (const p of order) {
              if (total() <= maxBytes) break;
              if (p.live) {
                p.live = false;
                trimmed++;
              }
            }
          } else if (o.kind === 'remove') {
            history.remove(o.ch);
            for (const p of order) if (p.ch === o.ch) p.live = false;
          }
        }
        for (const ch of Object.keys(CHANNELS) as Channel[]) {
          assert.deepEqual(
            history.read(ch, { limit: -1, reverse: false }).publications.map((p) => p.offset),
            order.filter((p) => p.ch === ch && p.live).map((p) => p.offset),
            ch,
          );
        }
        const stats = history.stats();
        assert.equal(stats.trimmed, trimmed);
        assert.equal(
          stats.bytes,
          order.reduce((n, p) => n + (p.live ? p.bytes : 0), 0),
        );
        assert.ok(stats.bytes <= maxBytes);
      }),
      { numRuns: 400 },
    );
  });
});
