// The Redis channel engine against a real redis-server: one script per
// publication (same offsets and epoch for every node, delivered through
// pub/sub), history bounded by size and age in Redis, recovery all or
// nothing, a lost position starting a new epoch, presence with expiry and
// distinct users, and every failure (NOSCRIPT, a paused or dead Redis, too
// big a presence read) an answer within bounds, never a hang.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient } from 'redis';
import { RedisEngine } from '../../../src/channels/engine-redis.ts';
import type { EngineReceiver, PublicationInput, StreamPosition } from '../../../src/channels/engine.ts';
import { ReplyErrorException } from '../../../src/channels/protocol.ts';
import { channelKeys } from '../../../src/channels/redis-keys.ts';
import { redisRequirement, startRedis, type RedisServer } from '../../helpers/redis.ts';

interface Received {
  channel: string;
  position: StreamPosition;
  pub: PublicationInput;
}

function receiver(into: Received[], joinLeave: string[] = []): EngineReceiver {
  return {
    publication: (channel, position, pub) => into.push({ channel, position, pub }),
    joinLeave: (channel, kind, info) => joinLeave.push(`${channel} ${kind} ${info}`),
    resubscribed: () => {},
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await pause(10);
}

function internal(error: unknown): boolean {
  return error instanceof ReplyErrorException && error.error.code === 100 && error.error.temporary === true;
}

describe('redis channel engine', redisRequirement(), () => {
  let redis: RedisServer;
  const engines: RedisEngine[] = [];
  let raw: ReturnType<typeof createClient>;

  async function engine(
    into: Received[] = [],
    options: Partial<ConstructorParameters<typeof RedisEngine>[0]> = {},
  ) {
    const e = new RedisEngine({ url: redis.url, ...options });
    await e.start(receiver(into));
    engines.push(e);
    return e;
  }

  before(async () => {
    redis = await startRedis();
    raw = createClient({ url: redis.url });
    raw.on('error', () => {}); // the restart test kills the server under it; it reconnects
    await raw.connect();
  });
  after(async () => {
    await Promise.all(engines.map((e) => e.close(500)));
    raw.destroy();
    await redis.stop();
  });

  test('two nodes: one script per publication, the same offsets and epoch everywhere, in order', async () => {
    const gotA: Received[] = [];
    const gotB: Received[] = [];
    const a = await engine(gotA);
    const b = await engine(gotB);
    await a.listen('news');
    await b.listen('news');
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? a : b).append('news', { dataJson: `{"n":${i}}`, tail: '' }, 100, 60_000),
      ),
    );
    const epoch = results[0]!.epoch;
    assert.deepEqual(
      results.map((r) => r.epoch),
      Array(20).fill(epoch),
    );
    assert.deepEqual(
      results.map((r) => r.offset).sort((x, y) => x - y),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    await until(() => gotA.length === 20 && gotB.length === 20);
    for (const got of [gotA, gotB]) {
      assert.deepEqual(
        got.map((r) => r.position.offset),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      assert.ok(got.every((r) => r.position.epoch === epoch && r.channel === 'news'));
    }
    assert.deepEqual(
      gotA.map((r) => r.pub.dataJson),
      gotB.map((r) => r.pub.dataJson),
    );
    const read = await b.read('news', { limit: 100, reverse: false, ttl: 60_000 });
    assert.deepEqual(read.top, { offset: 20, epoch });
    assert.deepEqual(
      read.publications.map((p) => JSON.parse(p.json) as { offset: number }).map((p) => p.offset),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.equal(a.metrics().redis_state_history_appends, 10);
  });

  test('raw text and the publication tail travel with the publication', async () => {
    const got: Received[] = [];
    const e = await engine(got);
    await e.listen('raw');
    await e.append(
      'raw',
      { dataJson: '"not json ü"', tail: ',"info":{"user":"u"}', raw: 'not json ü' },
      10,
      60_000,
    );
    await until(() => got.length === 1);
    assert.deepEqual(got[0]!.pub, {
      dataJson: '"not json ü"',
      tail: ',"info":{"user":"u"}',
      raw: 'not json ü',
    });
    const read = await e.read('raw', { limit: 10, reverse: false, ttl: 60_000 });
    assert.deepEqual(JSON.parse(read.publications[0]!.json), {
      data: 'not json ü',
      offset: 1,
      info: { user: 'u' },
    });
  });

  test('history is bounded in Redis by size (exact MAXLEN) and by age (per publication and key expiry)', async () => {
    const e = await engine();
    for (let i = 1; i <= 12; i++) await e.append('sized', { dataJson: String(i), tail: '' }, 5, 60_000);
    const keys = channelKeys('wshub', 'sized');
    assert.equal(await raw.xLen(keys.stream), 5);
    const pttl = await raw.pTTL(keys.stream);
    assert.ok(pttl > 50_000 && pttl <= 60_000, `stream ttl ${pttl}`);
    const read = await e.read('sized', { limit: 100, reverse: false, ttl: 60_000 });
    assert.deepEqual(
      read.publications.map((p) => p.offset),
      [8, 9, 10, 11, 12],
    );
    const reversed = await e.read('sized', {
      limit: 2,
      reverse: true,
      ttl: 60_000,
      since: { offset: 11, epoch: read.top.epoch },
    });
    assert.deepEqual(
      reversed.publications.map((p) => p.offset),
      [10, 9],
    );
    // Recovery from before what is kept: all or nothing.
    assert.equal(
      (await e.recover('sized', { offset: 5, epoch: read.top.epoch }, 100, 60_000)).recovered,
      false,
    );
    const ok = await e.recover('sized', { offset: 9, epoch: read.top.epoch }, 100, 60_000);
    assert.equal(ok.recovered, true);
    assert.deepEqual(
      ok.publications.map((p) => p.offset),
      [10, 11, 12],
    );
    assert.equal(
      (await e.recover('sized', { offset: 9, epoch: read.top.epoch }, 2, 60_000)).recovered,
      false,
    );

    // Age: a publication older than the ttl is gone from reads and recovery, and the stream key expires.
    await e.append('aged', { dataJson: '1', tail: '' }, 10, 300);
    const epoch = (await e.top('aged')).epoch;
    await pause(150);
    await e.append('aged', { dataJson: '2', tail: '' }, 10, 300);
    await pause(200);
    const aged = await e.read('aged', { limit: 10, reverse: false, ttl: 300 });
    assert.deepEqual(
      aged.publications.map((p) => p.offset),
      [2],
    );
    assert.equal((await e.recover('aged', { offset: 0, epoch }, 10, 300)).recovered, false);
    assert.equal((await e.recover('aged', { offset: 1, epoch }, 10, 300)).recovered, true);
    await pause(250);
    assert.equal(await raw.exists(channelKeys('wshub', 'aged').stream), 0);
    // The position outlives the stream (the meta key lives metaTtl): recovery says false, not a new epoch.
    const after = await e.recover('aged', { offset: 1, epoch }, 10, 300);
    assert.deepEqual([after.recovered, after.top], [false, { offset: 2, epoch }]);
  });

  test('a lost position (meta key gone, as after a restart without persistence) starts a new epoch', async () => {
    const e = await engine();
    const first = await e.append('lost', { dataJson: '1', tail: '' }, 10, 60_000);
    await raw.del(channelKeys('wshub', 'lost').meta);
    const next = await e.append('lost', { dataJson: '2', tail: '' }, 10, 60_000);
    assert.notEqual(next.epoch, first.epoch);
    assert.equal(next.offset, 1);
    const r = await e.recover('lost', first, 10, 60_000);
    assert.equal(r.recovered, false);
    await assert.rejects(
      e.read('lost', { since: first, limit: 10, reverse: false, ttl: 60_000 }),
      (error: unknown) => error instanceof ReplyErrorException && error.error.code === 112,
    );
  });

  test('scripts run again after SCRIPT FLUSH (NOSCRIPT answered with EVAL)', async () => {
    const e = await engine();
    await e.append('flush', { dataJson: '1', tail: '' }, 10, 60_000);
    await raw.scriptFlush();
    const r = await e.append('flush', { dataJson: '2', tail: '' }, 10, 60_000);
    assert.equal(r.offset, 2);
    await raw.scriptFlush();
    assert.equal((await e.top('flush')).offset, 2);
  });

  test('presence: entries, distinct users, expiry without refresh, removal; reads bounded', async () => {
    const e = await engine([], { presenceTtl: 400, maxPresenceRead: 3 });
    await e.presenceAdd('room', 'c1', { user: 'alice', client: 'c1' });
    await e.presenceAdd('room', 'c2', { user: 'alice', client: 'c2', conn_info: { x: 1 } });
    await e.presenceAdd('room', 'c3', { user: '', client: 'c3' });
    assert.deepEqual(await e.presenceStats('room'), { numClients: 3, numUsers: 2 });
    assert.deepEqual(await e.presenceGet('room'), {
      c1: { user: 'alice', client: 'c1' },
      c2: { user: 'alice', client: 'c2', conn_info: { x: 1 } },
      c3: { user: '', client: 'c3' },
    });
    await e.presenceRemove('room', 'c3');
    assert.deepEqual(await e.presenceStats('room'), { numClients: 2, numUsers: 1 });
    // c1 is refreshed, c2 is not: c2 vanishes within the ttl.
    await pause(250);
    await e.presenceRefresh('room', [['c1', { user: 'alice', client: 'c1' }]]);
    await pause(250);
    assert.deepEqual(Object.keys(await e.presenceGet('room')), ['c1']);
    assert.equal(
      await raw.hLen(channelKeys('wshub', 'room').presence),
      1,
      'expired entries are removed on read',
    );
    for (let i = 0; i < 5; i++) await e.presenceAdd('big', `b${i}`, { user: `u${i}`, client: `b${i}` });
    await assert.rejects(
      e.presenceGet('big'),
      (error: unknown) => error instanceof ReplyErrorException && error.error.code === 106,
    );
    await assert.rejects(
      e.presenceStats('big'),
      (error: unknown) => error instanceof ReplyErrorException && error.error.code === 106,
    );
    // A client id like "__proto__" stays a plain key.
    await e.presenceAdd('proto', '__proto__', { user: 'p', client: '__proto__' });
    const p = await e.presenceGet('proto');
    assert.deepEqual(Object.keys(p), ['__proto__']);
  });

  test('join and leave reach every node listening', async () => {
    const jl: string[] = [];
    const e = new RedisEngine({ url: redis.url });
    await e.start(receiver([], jl));
    engines.push(e);
    const other = await engine();
    await e.listen('jl');
    await other.publishJoinLeave('jl', 'join', '{"user":"u","client":"c"}');
    await until(() => jl.length === 1);
    assert.deepEqual(jl, ['jl join {"user":"u","client":"c"}']);
  });

  test('a paused Redis: every call answers a temporary 100 within the command timeout, counted', async () => {
    const e = await engine([], { commandTimeout: 300 });
    await e.append('slow', { dataJson: '1', tail: '' }, 10, 60_000);
    redis.pause();
    try {
      const started = Date.now();
      const outcomes = await Promise.allSettled([
        e.append('slow', { dataJson: '2', tail: '' }, 10, 60_000),
        e.top('slow'),
        e.presenceGet('slow'),
      ]);
      const took = Date.now() - started;
      assert.ok(took < 2_000, `answered within bounds (${took} ms)`);
      for (const o of outcomes) assert.ok(o.status === 'rejected' && internal(o.reason), o.status);
      assert.ok(e.metrics().redis_state_errors! >= 3);
      assert.ok(e.metrics().redis_state_timeouts! >= 3);
    } finally {
      redis.resume();
    }
  });

  test('too many commands waiting: refused at once (100), counted', async () => {
    const e = await engine([], { commandTimeout: 2_000, maxPending: 2 });
    redis.pause();
    try {
      const outcomes = Promise.allSettled([e.top('p'), e.top('p'), e.top('p')]);
      const third = (await outcomes)[2];
      assert.ok(third.status === 'rejected' && internal(third.reason));
      assert.equal(e.metrics().redis_state_refused, 1);
    } finally {
      redis.resume();
    }
  });

  test('Redis down: a publish is refused (never a false ok), counted; start against nothing rejects', async () => {
    const e = await engine([], { commandTimeout: 500 });
    await redis.kill();
    try {
      await assert.rejects(e.append('down', { dataJson: '1', tail: '' }, 10, 60_000), internal);
      assert.ok(e.metrics().redis_state_errors! >= 1);
      assert.equal(e.metrics().redis_state_connected, 0);
    } finally {
      await redis.restart();
    }
    const dead = new RedisEngine({ url: 'redis://127.0.0.1:1', connectTimeout: 500 });
    await assert.rejects(dead.start(receiver([])), /redis unreachable at redis:\/\/127\.0\.0\.1:1/);
  });
});
