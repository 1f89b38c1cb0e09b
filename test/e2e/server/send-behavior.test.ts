// The three send behaviours (docs/CONFIG.md) with a real client that stops reading:
// its socket is paused, so the kernel buffers fill, then the server's send
// queue, and the behaviour decides what happens to further broadcasts.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BroadcastResult } from '../../../src/hub/hub.ts';
import { dial } from '../../../src/client/dial.ts';
import type { WshubConfig } from '../../../src/config.ts';
import { SLOW_CONSUMER_CLOSE_CODE, type Connection } from '../../../src/connection/connection.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import { authHeaders, cleanupHubs, startHub, waitFor, type RunningHub } from './harness.ts';

afterEach(cleanupHubs);

const PAYLOAD = Buffer.alloc(64 * 1024, 7);
/** Header of a 64 KiB server frame: 2 bytes + 8-byte length. */
const FRAME_BYTES = PAYLOAD.length + 10;
const QUEUE_SIZE = 8;
const MARKER = 'end-of-test';

/** A paused client and what it has received. */
interface SlowClient {
  conn: Connection;
  /** Binary messages received. */
  received: number;
  markerSeen: boolean;
  closed: Promise<{ code: number; reason: string }>;
}

interface Setup {
  hub: RunningHub;
  client: SlowClient;
  /** The server side of the client's connection. */
  server: Connection;
  totals: { attempted: number; enqueued: number; dropped: number; skipped: number };
  /** Largest bufferedBytes of the server connection seen so far. */
  peakBuffered: number;
  broadcast(count: number): void;
}

async function setup(config: Partial<WshubConfig>): Promise<Setup> {
  const hub = await startHub({ sendQueueSize: QUEUE_SIZE, closeTimeout: 3_000, ...config });
  const client: SlowClient = {
    received: 0,
    markerSeen: false,
    conn: undefined as unknown as Connection,
    closed: Promise.resolve({ code: 0, reason: '' }),
  };
  client.conn = await dial(hub.url('/ws?room=slow'), {
    headers: await authHeaders(),
    handlers: {
      message: (_conn, data, binary) => {
        if (binary) {
          assert.equal(data.length, PAYLOAD.length);
          client.received++;
        } else if (data.toString() === MARKER) {
          client.markerSeen = true;
        }
      },
    },
  });
  client.closed = client.conn.closed();
  client.conn.socket.pause();
  const server = hub.ws.hub.connections()[0]!;
  const s: Setup = {
    hub,
    client,
    server,
    totals: { attempted: 0, enqueued: 0, dropped: 0, skipped: 0 },
    peakBuffered: 0,
    broadcast(count) {
      for (let i = 0; i < count; i++) {
        const r: BroadcastResult = hub.ws.hub.tryBroadcastRoom('slow', Opcode.BINARY, PAYLOAD);
        s.totals.attempted += r.attempted;
        s.totals.enqueued += r.enqueued;
        s.totals.dropped += r.dropped;
        s.totals.skipped += r.skipped;
        s.peakBuffered = Math.max(s.peakBuffered, server.bufferedBytes);
      }
    },
  };
  return s;
}

/**
 * Broadcasts in small batches, giving the kernel time to take what it can,
 * until the server's send queue stays full: the client's TCP window and the
 * kernel buffers are then exhausted.
 */
async function fillUntilStalled(s: Setup): Promise<void> {
  for (let batch = 0; batch < 400; batch++) {
    s.broadcast(4);
    await sleep(batch < 20 ? 2 : 10);
    if (s.server.queuedMessages >= QUEUE_SIZE || !s.server.isOpen) {
      await sleep(30);
      if (s.server.queuedMessages >= QUEUE_SIZE || !s.server.isOpen) return;
    }
  }
  assert.fail('the server queue never filled: the client is not applying back-pressure');
}

/** The memory bound: the queue plus what the socket holds beyond its high-water mark. */
function assertBounded(s: Setup): void {
  const bound = (QUEUE_SIZE + 2) * FRAME_BYTES + 64 * 1024;
  assert.ok(s.peakBuffered <= bound, `peak bufferedBytes ${s.peakBuffered} > ${bound}`);
}

/** Resumes the client and waits until everything queued for it has arrived (marked by a final text). */
async function resumeAndDrain(s: Setup): Promise<void> {
  s.client.conn.socket.resume();
  await waitFor(() => s.server.bufferedBytes === 0, 10_000, 'the server queue to drain');
  await s.server.sendText(MARKER);
  await waitFor(() => s.client.markerSeen, 5_000, 'the marker');
}

describe('send behaviours with a client that stops reading', () => {
  test('drop: broadcast_dropped and conn.dropped both equal sent − received', async () => {
    const s = await setup({ sendBehavior: 'drop' });
    await fillUntilStalled(s);
    s.broadcast(50);
    assertBounded(s);
    assert.ok(s.totals.dropped >= 50, `dropped ${s.totals.dropped}`);
    await resumeAndDrain(s);
    const sent = s.totals.attempted;
    const lost = sent - s.client.received;
    const m = s.hub.ws.metrics();
    assert.ok(lost > 0);
    assert.equal(s.server.dropped, lost, 'conn.dropped');
    assert.equal(m.broadcast_dropped, lost, 'broadcast_dropped');
    assert.equal(m.broadcast_enqueued, s.client.received, 'every enqueued message arrived');
    assert.equal(m.broadcast_attempted, sent);
    assert.equal(s.client.conn.readyState, 'open', 'a slow client is not disconnected under drop');
    s.client.conn.close();
    await s.client.closed;
  });

  test('close: the slow client is closed with 1008 and the counts match', async () => {
    const s = await setup({ sendBehavior: 'close' });
    await fillUntilStalled(s);
    assert.equal(s.server.isOpen, false, 'the server gave up on the slow client');
    // Later broadcasts skip the closing connection.
    s.broadcast(5);
    assertBounded(s);
    s.client.conn.socket.resume();
    const { code } = await s.client.closed;
    assert.equal(code, SLOW_CONSUMER_CLOSE_CODE);
    assert.equal(code, 1008);
    const m = s.hub.ws.metrics();
    assert.ok(m.broadcast_skipped >= 5, `skipped ${m.broadcast_skipped}`);
    assert.equal(m.broadcast_skipped, s.totals.skipped);
    // Everything handed to the connection either arrived or was counted as dropped by it.
    assert.equal(
      s.client.received + s.server.dropped,
      m.broadcast_enqueued + m.broadcast_dropped,
      `received ${s.client.received}, conn.dropped ${s.server.dropped}`,
    );
    assert.equal(s.client.received + s.server.dropped + s.totals.skipped, s.totals.attempted);
    await waitFor(() => s.hub.ws.hub.getActiveConnectionCount() === 0, 3_000, 'removal from the hub');
  });

  test('block: a broadcast waits up to sendTimeout, then counts as dropped', async () => {
    const sendTimeout = 300;
    const s = await setup({ sendBehavior: 'block', sendTimeout });
    await fillUntilStalled(s);
    await sleep(sendTimeout + 100); // let the fill's own waiting sends settle
    const before = s.hub.ws.metrics();
    assert.equal(before.broadcast_jobs_waiting, 0);
    s.broadcast(2);
    assert.equal(s.totals.dropped, 0, 'nothing is dropped while a send may still wait');
    await sleep(sendTimeout / 2);
    const waiting = s.hub.ws.metrics();
    assert.equal(waiting.broadcast_jobs_waiting, 2, 'both broadcasts are waiting');
    assert.equal(waiting.broadcast_dropped, before.broadcast_dropped, 'not dropped before sendTimeout');
    await waitFor(() => s.hub.ws.metrics().broadcast_jobs_waiting === 0, 2 * sendTimeout, 'the waits to end');
    const after = s.hub.ws.metrics();
    assert.equal(after.broadcast_dropped, before.broadcast_dropped + 2, 'both timed out and were dropped');
    assertBounded(s);
    await resumeAndDrain(s);
    const m = s.hub.ws.metrics();
    assert.equal(s.server.dropped, m.broadcast_dropped, 'conn.dropped = broadcast_dropped');
    assert.equal(s.client.received + m.broadcast_dropped, s.totals.attempted, 'sent = received + dropped');
    assert.equal(m.broadcast_enqueued, s.client.received);
    s.client.conn.close();
    await s.client.closed;
  });

  test('block: a client that resumes in time gets the waiting broadcasts', async () => {
    const s = await setup({ sendBehavior: 'block', sendTimeout: 800 });
    await fillUntilStalled(s);
    await waitFor(() => s.hub.ws.metrics().broadcast_jobs_waiting === 0, 3_000, 'the fill to settle');
    const droppedBefore = s.hub.ws.metrics().broadcast_dropped;
    s.broadcast(3);
    await sleep(50);
    assert.equal(s.hub.ws.metrics().broadcast_jobs_waiting, 3);
    await resumeAndDrain(s);
    assert.equal(
      s.hub.ws.metrics().broadcast_dropped,
      droppedBefore,
      'the waiting broadcasts were delivered',
    );
    assert.equal(s.client.received + s.hub.ws.metrics().broadcast_dropped, s.totals.attempted);
    s.client.conn.close();
    await s.client.closed;
  });
});
