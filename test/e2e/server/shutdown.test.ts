// stop() and shutdown(): refusing joins and broadcasts,
// closing every client with 1001, peers that never answer, AbortSignal,
// concurrent calls, and health.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRejected } from '../../../src/hub/hub.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import {
  authHeaders,
  cleanupHubs,
  connectClient,
  expectRefused,
  startHub,
  upgradeHead,
  waitFor,
  type Client,
  type RunningHub,
} from './harness.ts';

afterEach(cleanupHubs);

/** A peer that completes the handshake and then ignores everything, never answering a close. */
interface DeafPeer {
  socket: Socket;
  /** Resolves with performance.now() when the server dropped the TCP connection. */
  closedAt: Promise<number>;
  bytesReceived: number;
}

async function deafPeer(hub: RunningHub, room = 'r'): Promise<DeafPeer> {
  const socket = connect(hub.port, '127.0.0.1');
  socket.on('error', () => {});
  const peer: DeafPeer = {
    socket,
    bytesReceived: 0,
    closedAt: new Promise((resolve) => socket.once('close', () => resolve(performance.now()))),
  };
  // Never end our side when the server ends its side.
  socket.on('end', () => {});
  const head = upgradeHead(hub.port, { path: `/ws?room=${room}`, headers: await authHeaders() });
  await new Promise<void>((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      if (!text.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      if (!text.startsWith('HTTP/1.1 101')) reject(new Error(text));
      else resolve();
    };
    socket.on('data', onData);
    socket.write(head);
  });
  socket.on('data', (chunk: Buffer) => (peer.bytesReceived += chunk.length));
  return peer;
}

async function clients(hub: RunningHub, rooms: string[]): Promise<Client[]> {
  const headers = await authHeaders();
  const out: Client[] = [];
  for (const room of rooms) out.push(await connectClient(hub.url(`/ws?room=${room}`), { headers }));
  return out;
}

describe('stop()', () => {
  test('is idempotent, refuses joins (503) and broadcasts, keeps connections open', async () => {
    const hub = await startHub();
    const [a] = await clients(hub, ['a']);
    assert.equal(hub.ws.health().status, 'healthy');
    await Promise.all([hub.ws.stop(), hub.ws.stop()]);
    await hub.ws.stop();
    assert.deepEqual(hub.ws.health(), {
      status: 'unhealthy',
      stopped: true,
      active_connections: 0,
      rooms: 0,
    });
    await expectRefused(
      hub.url('/ws?room=a'),
      { headers: await authHeaders() },
      503,
      'WEBSOCKET_JOIN_DENIED',
    );
    const room = hub.ws.hub.tryBroadcastRoom('a', Opcode.TEXT, 'x');
    assert.equal(room.stopped, true);
    assert.equal(isRejected(room), true);
    const all = hub.ws.hub.tryBroadcastAll(Opcode.TEXT, 'x');
    assert.equal(all.stopped, true);
    assert.equal(all.attempted, 0);
    // The connection itself stays open, it just left its room.
    await sleep(50);
    assert.equal(a!.conn.readyState, 'open');
    assert.equal(a!.queue.size, 0);
  });
});

describe('shutdown()', () => {
  test('sends 1001 to every client, which all observe it', async () => {
    const hub = await startHub();
    const list = await clients(hub, ['a', 'a', 'b', 'c']);
    assert.equal(hub.ws.health().active_connections, 4);
    const started = performance.now();
    await hub.ws.shutdown({ timeout: 2_000 });
    assert.ok(performance.now() - started < 1_000, 'clients that answer let shutdown finish early');
    for (const c of list) {
      const closed = await c.conn.closed();
      assert.equal(closed.code, 1001);
    }
    assert.deepEqual(hub.ws.health(), {
      status: 'unhealthy',
      stopped: true,
      active_connections: 0,
      rooms: 0,
    });
    await expectRefused(hub.url(), { headers: await authHeaders() }, 503, 'WEBSOCKET_JOIN_DENIED');
  });

  test('with a full send queue: queued messages go first, then the 1001', async () => {
    const hub = await startHub({ sendBehavior: 'drop', sendQueueSize: 4 });
    let received = 0;
    const [slow] = await clients(hub, ['q']);
    slow!.conn.socket.pause();
    const server = hub.ws.hub.connections()[0]!;
    const payload = Buffer.alloc(64 * 1024, 1);
    for (let i = 0; i < 400 && server.queuedMessages < 4; i++) {
      hub.ws.hub.broadcastRoom('q', Opcode.BINARY, payload);
      if (i % 4 === 3) await sleep(5);
    }
    assert.equal(server.queuedMessages, 4, 'the queue is full');
    const done = hub.ws.shutdown({ timeout: 3_000 });
    await sleep(100);
    slow!.conn.socket.resume();
    const started = performance.now();
    await done;
    assert.ok(performance.now() - started < 2_500);
    const closed = await slow!.conn.closed();
    assert.equal(closed.code, 1001);
    for (;;) {
      const m = await slow!.queue.next(100).catch(() => null);
      if (m === null) break;
      received++;
    }
    const metrics = hub.ws.metrics();
    assert.equal(received + server.dropped, metrics.broadcast_attempted, 'queued messages were not lost');
  });

  test('a peer that never answers the close is destroyed after the timeout', async () => {
    const hub = await startHub({ closeTimeout: 10_000 });
    const deaf = await deafPeer(hub);
    const [polite] = await clients(hub, ['r']);
    const started = performance.now();
    await hub.ws.shutdown({ timeout: 400 });
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 350, `shutdown waited ${elapsed} ms`);
    assert.ok(elapsed < 1_200, `shutdown took ${elapsed} ms`);
    const closedAt = await deaf.closedAt;
    assert.ok(closedAt - started < 1_500, 'the deaf peer was dropped');
    assert.ok(deaf.bytesReceived >= 4, 'the deaf peer was sent a close frame');
    assert.equal((await polite!.conn.closed()).code, 1001);
    assert.equal(hub.ws.health().active_connections, 0);
  });

  test('shutdown({signal}) ends the wait when the signal aborts', async () => {
    const hub = await startHub({ closeTimeout: 10_000 });
    const deaf = await deafPeer(hub);
    const controller = new AbortController();
    const started = performance.now();
    setTimeout(() => controller.abort(), 200);
    await hub.ws.shutdown({ timeout: 20_000, signal: controller.signal });
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 150 && elapsed < 1_000, `shutdown took ${elapsed} ms`);
    await deaf.closedAt;
  });

  test('an already aborted signal returns at once and still drops the connections', async () => {
    const hub = await startHub({ closeTimeout: 10_000 });
    const deaf = await deafPeer(hub);
    const started = performance.now();
    await hub.ws.shutdown({ timeout: 20_000, signal: AbortSignal.abort() });
    assert.ok(performance.now() - started < 300);
    const closedAt = await deaf.closedAt;
    assert.ok(closedAt - started < 1_000);
  });

  test('called twice concurrently: same outcome, no throw', async () => {
    const hub = await startHub({ closeTimeout: 10_000 });
    const deaf = await deafPeer(hub);
    const [c] = await clients(hub, ['x']);
    const started = performance.now();
    const results = await Promise.allSettled([
      hub.ws.shutdown({ timeout: 300 }),
      hub.ws.shutdown({ timeout: 300 }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled'],
    );
    assert.ok(performance.now() - started < 1_200);
    await hub.ws.shutdown();
    assert.equal((await c!.conn.closed()).code, 1001);
    await deaf.closedAt;
    assert.equal(hub.ws.health().status, 'unhealthy');
  });

  test('shutdown after stop() still closes the connections with 1001', async () => {
    const hub = await startHub();
    const [c] = await clients(hub, ['y']);
    await hub.ws.stop();
    await hub.ws.shutdown({ timeout: 1_000 });
    const closed = await Promise.race([
      c!.conn.closed(),
      sleep(1_500).then(() => ({ code: -1, reason: 'still open after shutdown' })),
    ]);
    assert.equal(closed.code, 1001, closed.reason);
  });

  test('health() reports healthy before and unhealthy after', async () => {
    const hub = await startHub();
    await clients(hub, ['h1', 'h2']);
    assert.deepEqual(hub.ws.health(), { status: 'healthy', stopped: false, active_connections: 2, rooms: 2 });
    await hub.ws.shutdown({ timeout: 1_000 });
    assert.equal(hub.ws.health().status, 'unhealthy');
    assert.equal(hub.ws.health().stopped, true);
    await waitFor(() => hub.ws.health().active_connections === 0);
  });
});
