// Admission of new connections under slow or abandoned handshakes: an
// absolute deadline from accept (also over the pipeline's asynchronous
// steps), FIN handling, the per-address cap and the total cap whose
// eviction keeps room for prompt clients. Loopback only, a handful of
// sockets, each test a few seconds at most.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { boundedServerOptions } from '../../../src/upgrade/respond.ts';
import { ConfigError } from '../../../src/errors.ts';
import { addressKey } from '../../../src/http/address.ts';
import type { LogEntry } from '../../../src/server/server.ts';
import { createWshub } from '../../../src/server/server.ts';
import { assertNoLeaks, closeServer, openConnections, trackSockets } from '../../helpers/leaks.ts';
import {
  cleanupHubs,
  connectClient,
  parseErrorBody,
  rawHttp,
  startHub,
  upgradeHead,
  waitFor,
} from '../server/harness.ts';

afterEach(cleanupHubs);

/** An open TCP connection that records what the server sends and when it closes. */
interface Probe {
  socket: Socket;
  /** Everything received so far. */
  text(): string;
  /** Resolves with the ms from connect to close. */
  closed: Promise<number>;
}

async function probe(port: number, localAddress = '127.0.0.1'): Promise<Probe> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  let text = '';
  socket.setEncoding('latin1').on('data', (d: string) => (text += d));
  // A reset after the answer is fine: the answer was read first.
  socket.on('error', () => {});
  await once(socket, 'connect');
  const started = performance.now();
  const closed = new Promise<number>((resolve) =>
    socket.on('close', () => resolve(performance.now() - started)),
  );
  return { socket, text: () => text, closed };
}

/** Resolves with `promise`, or rejects once `ms` passed (the attack's bound, not the server's). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits (bounded) until the server holds `count` sockets. */
async function waitForConnections(server: Server, count: number): Promise<void> {
  const deadline = performance.now() + 2_000;
  while ((await openConnections(server)) !== count) {
    if (performance.now() > deadline) throw new Error(`the server never held ${count} sockets`);
    await sleep(5);
  }
}

function statusOf(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? NaN);
}

function bodyOf(text: string): string {
  return text.slice(text.indexOf('\r\n\r\n') + 4);
}

/** Sends a request line and then one header byte every `everyMs` until the socket closes or `max` bytes. */
async function trickle(p: Probe, everyMs: number, max: number): Promise<void> {
  p.socket.write('GET /ws?room=a HTTP/1.1\r\n');
  for (let i = 0; i < max && !p.socket.destroyed && p.socket.writable; i++) {
    await sleep(everyMs);
    if (!p.socket.destroyed && p.socket.writable) p.socket.write(i === 0 ? 'X' : 'a');
  }
}

describe('absolute handshake deadline', () => {
  test('a head trickled one byte every 250 ms gets 408 at the deadline, not later', async () => {
    const hub = await startHub({ handshakeTimeout: 1_000, allowUnauthenticated: true });
    const p = await probe(hub.port);
    const sending = trickle(p, 250, 16);
    // Unbounded on a server with an idle timer: 16 bytes over 4 s, each resetting it.
    const elapsed = await within(p.closed, 3_500, 'close of the trickling socket');
    await sending;
    assert.equal(statusOf(p.text()), 408, p.text());
    assert.equal(parseErrorBody(bodyOf(p.text())).error.code, 'REQUEST_TIMEOUT');
    assert.ok(elapsed >= 900, `closed too early: ${elapsed.toFixed(0)} ms`);
    assert.ok(elapsed <= 1_500, `closed ${elapsed.toFixed(0)} ms after connect, deadline 1000 ms`);
    const m = hub.ws.metrics();
    assert.equal(m.handshake_timeouts, 1);
    assert.equal(m.handshakes_pending, 0);
  });

  test('a FIN after a partial head frees the server socket at once', async () => {
    const hub = await startHub({ allowUnauthenticated: true });
    const p = await probe(hub.port);
    p.socket.write('GET /ws?room=a HTTP/1.1\r\nHost: x\r\n');
    await waitForConnections(hub.server, 1);
    // Lets the partial head reach the server before the FIN.
    await sleep(50);
    const started = performance.now();
    p.socket.end();
    let open = 1;
    while (open > 0 && performance.now() - started < 2_000) {
      open = await openConnections(hub.server);
      if (open > 0) await sleep(5);
    }
    const elapsed = performance.now() - started;
    assert.equal(open, 0, 'the server still holds the socket 2 s after the FIN');
    assert.ok(elapsed < 200, `server socket gone only ${elapsed.toFixed(0)} ms after the FIN`);
    assert.equal(hub.ws.metrics().handshakes_pending, 0);
    await within(p.closed, 1_000, 'close seen by the client');
  });

  test('a room authorizer that never answers: 503 at the deadline, nothing left open', async () => {
    let asked = 0;
    const hub = await startHub({
      handshakeTimeout: 800,
      allowUnauthenticated: true,
      roomAuthorizer: {
        authorize: () => {
          asked++;
          return new Promise<boolean>(() => {});
        },
      },
    });
    const response = await rawHttp(hub.port, upgradeHead(hub.port, { path: '/ws?room=a' }), '', 3_000);
    assert.equal(asked, 1);
    assert.equal(response.status, 503, response.body);
    assert.equal(parseErrorBody(response.body).error.code, 'HANDSHAKE_TIMEOUT');
    assert.ok(response.elapsedMs >= 700, `answered too early: ${response.elapsedMs.toFixed(0)} ms`);
    assert.ok(response.elapsedMs <= 1_300, `answered after ${response.elapsedMs.toFixed(0)} ms`);
    const m = hub.ws.metrics();
    assert.equal(m.handshake_timeouts, 1);
    assert.equal(m.handshakes_pending, 0);
    assert.equal(m.active_connections, 0);
    await assertNoLeaks(hub.server, { processSockets: false });
  });

  for (const verdict of [true, false]) {
    test(`an authorizer that answers ${verdict} after the deadline changes nothing`, async () => {
      const logs: LogEntry[] = [];
      let answered = false;
      const hub = await startHub({
        handshakeTimeout: 500,
        allowUnauthenticated: true,
        roomAuthorizer: {
          authorize: async () => {
            await sleep(900);
            answered = true;
            return verdict;
          },
        },
      });
      hub.ws.log = (entry) => logs.push(entry);
      const response = await rawHttp(hub.port, upgradeHead(hub.port, { path: '/ws?room=a' }), '', 3_000);
      assert.equal(response.status, 503, response.body);
      await waitFor(() => answered, 2_000, 'the late answer');
      await sleep(50);
      const m = hub.ws.metrics();
      assert.equal(m.active_connections, 0, 'no connection joined after the deadline');
      assert.equal(m.room_registrations, 0);
      assert.deepEqual(
        logs.map((e) => e.event).filter((e) => e !== 'handshake_limit'),
        [],
        'no upgrade_rejected or connected line for a socket already answered',
      );
      await assertNoLeaks(hub.server, { processSockets: false });
    });
  }

  test('attach(): the deadline covers an authorizer that never answers, from the upgrade event', async () => {
    const ws = createWshub({
      handshakeTimeout: 600,
      allowUnauthenticated: true,
      pingPeriod: 0,
      roomAuthorizer: { authorize: () => new Promise<boolean>(() => {}) },
    });
    const server = trackSockets(createServer(boundedServerOptions(600)));
    ws.attach(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      const response = await rawHttp(port, upgradeHead(port), '', 3_000);
      assert.equal(response.status, 503, response.body);
      assert.equal(parseErrorBody(response.body).error.code, 'HANDSHAKE_TIMEOUT');
      assert.ok(response.elapsedMs <= 1_200, `answered after ${response.elapsedMs.toFixed(0)} ms`);
      assert.equal(ws.metrics().handshakes_pending, 0);
      await assertNoLeaks(server, { processSockets: false });
    } finally {
      await ws.shutdown({ timeout: 0 });
      await closeServer(server);
    }
  });
});

describe('pending handshake caps', () => {
  test('past the per-address cap a newcomer gets 429; other addresses are unaffected', async () => {
    const logs: LogEntry[] = [];
    const hub = await startHub({ allowUnauthenticated: true, maxPendingHandshakesPerAddress: 4 });
    hub.ws.log = (entry) => logs.push(entry);
    const slow: Probe[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await probe(hub.port, '127.0.0.2');
      p.socket.write('GET /ws?room=a HTTP/1.1\r\n');
      slow.push(p);
    }
    await waitForConnections(hub.server, 4);
    const refused: Probe[] = [];
    for (let i = 0; i < 3; i++) {
      const extra = await probe(hub.port, '127.0.0.2');
      extra.socket.write(upgradeHead(hub.port));
      refused.push(extra);
    }
    for (const extra of refused) {
      await within(extra.closed, 1_000, 'close of the refused socket');
      assert.equal(statusOf(extra.text()), 429, extra.text());
      assert.match(extra.text(), /\r\nRetry-After: 1\r\n/i);
      assert.equal(parseErrorBody(bodyOf(extra.text())).error.code, 'HANDSHAKE_LIMIT');
    }
    // Another address still gets in, and its own slow sockets are admitted.
    const other = await probe(hub.port, '127.0.0.3');
    other.socket.write('GET /ws?room=a HTTP/1.1\r\n');
    const client = await connectClient(hub.url('/ws?room=a'));
    await waitFor(() => hub.ws.metrics().handshakes_pending === 5, 2_000, '5 pending handshakes');
    for (const p of slow) assert.equal(p.socket.destroyed, false, 'the first four stay pending');
    const m = hub.ws.metrics();
    assert.equal(m.handshakes_refused_per_address, 3);
    assert.equal(m.handshakes_evicted, 0);
    const limitLines = logs.filter((e) => e.event === 'handshake_limit');
    assert.equal(limitLines.length, 1, 'one log line, not one per refusal');
    assert.equal(limitLines[0]!.level, 'warn');
    assert.equal(limitLines[0]!.address, '127.0.0.2');
    client.conn.terminate();
    for (const p of [...slow, other]) p.socket.destroy();
  });

  test('past the total cap the oldest pending handshake makes room for a prompt client', async () => {
    const hub = await startHub({
      allowUnauthenticated: true,
      maxPendingHandshakes: 6,
      maxPendingHandshakesPerAddress: 0,
    });
    const slow: Probe[] = [];
    for (let i = 0; i < 6; i++) {
      const p = await probe(hub.port, `127.0.0.${2 + (i % 2)}`);
      p.socket.write('GET /ws?room=a HTTP/1.1\r\n');
      slow.push(p);
      await waitForConnections(hub.server, i + 1);
    }
    // The pool is full of slow sockets: a plain request and an upgrade each take the oldest one's place.
    const health = await rawHttp(hub.port, 'GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(health.status, 404, 'node:http requests are served');
    await within(slow[0]!.closed, 1_000, 'eviction of the oldest slow socket');
    // An evicted client is told why, and when to come back.
    assert.match(slow[0]!.text(), /^HTTP\/1\.1 503 /);
    assert.match(slow[0]!.text(), /\r\nRetry-After: 1\r\n/i);
    assert.match(slow[0]!.text(), /"code":"HANDSHAKE_EVICTED"/);
    const refill = await probe(hub.port, '127.0.0.2');
    refill.socket.write('GET /ws?room=a HTTP/1.1\r\n');
    slow.push(refill);
    await waitForConnections(hub.server, 6);
    const client = await connectClient(hub.url('/ws?room=a'));
    await within(slow[1]!.closed, 1_000, 'eviction of the next oldest slow socket');
    for (const p of slow.slice(2)) assert.equal(p.socket.destroyed, false, 'only the oldest are evicted');
    const m = hub.ws.metrics();
    assert.equal(m.handshakes_evicted, 2);
    assert.equal(m.handshakes_pending, 5);
    client.conn.terminate();
    for (const p of slow) p.socket.destroy();
  });

  test('eviction takes from the address holding the most, not a lone older handshake', async () => {
    const hub = await startHub({
      allowUnauthenticated: true,
      maxPendingHandshakes: 6,
      maxPendingHandshakesPerAddress: 0,
    });
    // A lone slow client (the oldest of all), then a flood from one address.
    const lone = await probe(hub.port, '127.0.0.3');
    lone.socket.write('GET /ws?room=a HTTP/1.1\r\n');
    await waitForConnections(hub.server, 1);
    const flood: Probe[] = [];
    for (let i = 0; i < 5; i++) {
      const p = await probe(hub.port, '127.0.0.2');
      p.socket.write('GET /ws?room=a HTTP/1.1\r\n');
      flood.push(p);
      await waitForConnections(hub.server, i + 2);
    }
    const client = await connectClient(hub.url('/ws?room=a'));
    await within(flood[0]!.closed, 1_000, 'eviction of the oldest flood socket');
    assert.equal(lone.socket.destroyed, false, 'the lone handshake stays');
    assert.equal(hub.ws.metrics().handshakes_evicted, 1);
    client.conn.terminate();
    for (const p of [lone, ...flood]) p.socket.destroy();
  });
});

test('the caps are validated: whole numbers, 0 for unlimited', () => {
  for (const key of ['maxPendingHandshakes', 'maxPendingHandshakesPerAddress'] as const) {
    for (const bad of [-1, 1.5, Number.NaN]) {
      assert.throws(
        () => createWshub({ allowUnauthenticated: true, [key]: bad }),
        ConfigError,
        `${key}=${bad}`,
      );
    }
    assert.equal(createWshub({ allowUnauthenticated: true, [key]: 0 }).config[key], 0);
  }
  const defaults = createWshub({ allowUnauthenticated: true }).config;
  assert.equal(defaults.maxPendingHandshakes, 1024);
  assert.equal(defaults.maxPendingHandshakesPerAddress, 64);
});

test('per-address keys: IPv4 as is (also when mapped), IPv6 per /64', () => {
  assert.equal(addressKey('127.0.0.2'), '127.0.0.2');
  assert.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(addressKey('2001:db8:0:1::5'), '2001:db8:0:1::/64');
  assert.equal(addressKey('2001:db8:0:1:ffff:1:2:3'), '2001:db8:0:1::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
  assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(addressKey(undefined), 'unknown');
});
