import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, deflateRawSync } from 'node:zlib';
import { InflateGate, MessageInflater } from '../../../src/protocol/inflate.ts';
import { MessageCompressor } from '../../../src/protocol/deflate.ts';
import { CloseCode, type ProtocolError } from '../../../src/protocol/close.ts';

const flushed = (data: Buffer): Buffer =>
  deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);

function inflate(
  inflater: MessageInflater,
  payload: Buffer,
  limit: number,
): Promise<{ error: ProtocolError | null; data: Buffer | null }> {
  return new Promise((resolve) =>
    inflater.inflate(payload, limit, (error, data) => resolve({ error, data })),
  );
}

test('the compressor output inflates to the input; below the threshold nothing is compressed', async () => {
  const compressor = new MessageCompressor(128, 3, 8, 15);
  assert.equal(compressor.wants(127), false);
  assert.equal(compressor.wants(128), true);
  const input = Buffer.from(JSON.stringify({ items: Array.from({ length: 100 }, (_, i) => ({ i })) }));
  const out = compressor.compress(input);
  assert.ok(out.length < input.length / 3);
  const result = await inflate(new MessageInflater(15, true), out, 0);
  assert.deepEqual(result.data, input);
});

test('the read limit applies to the inflated size: 1009, and no context is kept', async () => {
  const inflater = new MessageInflater(15, false);
  const bomb = flushed(Buffer.alloc(64 * 1024 * 1024));
  assert.ok(bomb.length < 128 * 1024);
  const started = performance.now();
  const result = await inflate(inflater, bomb, 1024 * 1024);
  assert.equal(result.error?.closeCode, CloseCode.MESSAGE_TOO_BIG);
  assert.ok(performance.now() - started < 2000, 'stopped early');
  assert.equal(inflater.holdsContext, false);
});

test('invalid data is 1007', async () => {
  const result = await inflate(new MessageInflater(15, true), Buffer.from([0xff, 0xff, 0xff]), 0);
  assert.equal(result.error?.closeCode, CloseCode.INVALID_PAYLOAD);
});

test('context takeover keeps one context between messages; no_context_takeover releases it', async () => {
  const stream = new (await import('node:zlib')).DeflateRaw();
  const compressWithContext = (data: Buffer) =>
    new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      const onData = (c: Buffer) => chunks.push(c);
      stream.on('data', onData);
      stream.write(data);
      stream.flush(constants.Z_SYNC_FLUSH, () => {
        stream.off('data', onData);
        resolve(Buffer.concat(chunks).subarray(0, -4));
      });
    });
  const message = Buffer.from('the same sentence, again and again. '.repeat(20));
  const first = await compressWithContext(message);
  const second = await compressWithContext(message);
  assert.ok(second.length < first.length / 2, 'the second refers back to the first');
  const keeping = new MessageInflater(15, false);
  assert.deepEqual((await inflate(keeping, first, 0)).data, message);
  assert.equal(keeping.holdsContext, true);
  assert.deepEqual((await inflate(keeping, second, 0)).data, message);
  keeping.dispose();
  assert.equal(keeping.holdsContext, false);
  stream.close();

  const resetting = new MessageInflater(15, true);
  assert.deepEqual((await inflate(resetting, flushed(message), 0)).data, message);
  assert.equal(resetting.holdsContext, false);
});

test('the gate runs at most its slots at once; the others wait and cancelled waiters never start', async () => {
  const gate = new InflateGate(2);
  const payload = flushed(Buffer.alloc(4 * 1024 * 1024, 7));

  let most = 0;
  const results: Array<Promise<unknown>> = [];
  for (let i = 0; i < 8; i++) {
    const inflater = new MessageInflater(15, true, gate);
    results.push(
      new Promise((resolve) => {
        inflater.inflate(payload, 0, (error, data) => {
          resolve([error, data?.length]);
        });

        most = Math.max(most, gate.active);
      }),
    );
  }
  assert.equal(gate.active, 2);
  assert.equal(gate.queued, 6);
  const cancelled = new MessageInflater(15, true, gate);
  let started = false;
  cancelled.inflate(payload, 0, () => (started = true));
  cancelled.dispose();
  for (const r of await Promise.all(results)) assert.deepEqual(r, [null, 4 * 1024 * 1024]);
  assert.equal(most, 2);
  assert.equal(gate.active, 0);
  assert.equal(started, false);
});

test('compressed bytes waiting for zlib are reserved from the budget and given back', async () => {
  let reserved = 0;
  const accounting = {
    reserve: (n: number) => {
      if (reserved + n > 1000) return false;
      reserved += n;
      return true;
    },
    release: (n: number) => void (reserved -= n),
    fragmentLimitHit: () => {},
  };
  const inflater = new MessageInflater(15, true);
  const small = flushed(Buffer.from('x'.repeat(5000)));
  const done = new Promise((resolve) => assert.ok(inflater.inflate(small, 0, resolve, accounting)));
  assert.equal(reserved, small.length);
  await done;
  assert.equal(reserved, 0);
  assert.equal(
    inflater.inflate(Buffer.alloc(2000), 0, () => {}, accounting),
    false,
    'over budget: refused',
  );
});
