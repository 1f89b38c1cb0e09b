// The send queue alone decides what a full queue means (block, drop, close).
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { ConnectionClosedError, QueueFullError, SendTimeoutError } from '../../../src/errors.ts';
import { FullAction, SendQueue, type SendBehavior } from '../../../src/connection/send-queue.ts';

function queue(sendBehavior: SendBehavior, sendQueueSize = 2, sendQueueBytes = 100): SendQueue {
  return new SendQueue({ sendBehavior, sendQueueSize, sendQueueBytes });
}

const frame = (n: number): Buffer => Buffer.alloc(n);

describe('SendQueue', () => {
  test('an empty queue takes one message of any size; then both bounds apply', () => {
    const q = queue('drop');
    assert.equal(q.accepts(1_000, 1), true);
    q.push(frame(1_000), 1);
    assert.equal(q.accepts(1, 1), false, 'over the byte bound');
    const r = queue('drop');
    r.push(frame(10), 1);
    assert.equal(r.accepts(10, 1), true);
    assert.equal(r.accepts(10, 2), false, 'over the message bound');
    r.push(frame(10), 1);
    assert.deepEqual([r.count, r.bytes], [2, 20]);
  });

  test('the policy: drop and close count the message, block lets the sender wait', () => {
    const drop = queue('drop');
    assert.equal(drop.refuse(3), FullAction.DROP);
    assert.equal(drop.dropped, 3);
    const close = queue('close');
    assert.equal(close.refuse(1), FullAction.CLOSE);
    assert.equal(close.dropped, 1);
    const block = queue('block');
    assert.equal(block.refuse(1), FullAction.WAIT);
    assert.equal(block.dropped, 0);
  });

  test('waiting sends are admitted in order when room appears; later sends do not jump them', async () => {
    const q = queue('block', 1);
    q.push(frame(1), 1);
    const first = q.wait(frame(2), 1_000, 1);
    assert.equal(q.accepts(1, 1), false, 'a waiting send is ahead');
    assert.equal(q.admitOne(), false, 'no room yet');
    const written: number[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        written.push(chunk.length);
        callback();
      },
    });
    assert.equal(q.writeTo(sink), false);
    assert.equal(q.admitOne(), true);
    await first;
    assert.deepEqual([q.count, q.bytes], [1, 2]);
    q.writeTo(sink);
    assert.deepEqual(written, [1, 2]);
  });

  test('a wait times out (counted as dropped), too many waits are refused, discard rejects the rest', async () => {
    const q = queue('block', 1);
    q.push(frame(1), 1);
    await assert.rejects(q.wait(frame(1), 10, 1), SendTimeoutError);
    assert.equal(q.dropped, 1);
    const waiting = q.wait(frame(1), 1_000, 1);
    await assert.rejects(q.wait(frame(1), 1_000, 1), QueueFullError);
    assert.equal(q.dropped, 2);
    q.discard();
    await assert.rejects(waiting, ConnectionClosedError);
    assert.equal(q.dropped, 3, 'the queued message is counted too');
    assert.deepEqual([q.count, q.bytes], [0, 0]);
  });
});
