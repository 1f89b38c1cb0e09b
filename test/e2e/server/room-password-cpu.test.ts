// Room-password hashing under attack: wrong passwords must not starve token
// verification (both use libuv's thread pool), abandoned attempts must not
// be hashed, and an overfull queue answers 503 with Retry-After at once.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RoomPasswords } from '../../../src/auth/room-password.ts';
import { createWshub, type ServerMetrics } from '../../../src/server/server.ts';
import { closeServer, trackSockets } from '../../helpers/leaks.ts';
import {
  SECRET,
  cleanupHubs,
  makeToken,
  parseErrorBody,
  rawHttp,
  startHub,
  upgradeHead,
  waitFor,
  type RawResponse,
} from './harness.ts';

afterEach(cleanupHubs);

const PASSWORD = 'correct horse battery staple';
// 100 joins make the p99 the second-slowest, so one scheduling hiccup of a
// busy 2-core machine does not decide the test; the bound itself is the 50 ms asked for.
const JOINS = 100;
const BOUND_MS = 50;

/** An upgrade to `room` with `token`, and a room password when given. */
function upgrade(port: number, room: string, token: string, password?: string, timeoutMs = 15_000) {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (password !== undefined) headers['X-WebSocket-Room-Password'] = password;
  return rawHttp(port, upgradeHead(port, { path: `/ws?room=${room}`, headers }), '', timeoutMs);
}

/** Sends `head` on a new connection; resolves with the answer's status ('' if none came) once it closes. */
function attempt(port: number, head: string, live: Set<Socket>): Promise<string> {
  return new Promise((resolve) => {
    let status = '';
    const socket = connect(port, '127.0.0.1');
    live.add(socket);
    socket.on('error', () => {});
    socket.once('data', (chunk: Buffer) => {
      status = chunk.toString('latin1', 9, 12);
      socket.destroy();
    });
    socket.once('close', () => {
      live.delete(socket);
      resolve(status);
    });
    socket.write(head);
  });
}

/**
 * Sends 100 wrong-password upgrades whose sockets are destroyed as soon as
 * the request is written, then a correct join; checks that almost none of
 * the abandoned attempts were hashed and the correct join was not delayed.
 */
async function abandonedAttack(port: number, metrics: () => ServerMetrics): Promise<void> {
  const token = await makeToken({ sub: 'attacker' });
  const owner = await makeToken({ sub: 'owner' });
  // What one correct join costs on this machine right now (one hash).
  const baseline = await upgrade(port, 'vault', owner, PASSWORD);
  assert.equal(baseline.status, 101, baseline.body);

  const closed: Promise<void>[] = [];
  for (let i = 0; i < 100; i++) {
    const head = upgradeHead(port, {
      path: '/ws?room=vault',
      headers: { Authorization: `Bearer ${token}`, 'X-WebSocket-Room-Password': `wrong-${i}` },
    });
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    closed.push(new Promise((resolve) => socket.once('close', () => resolve())));
    // Sent, then gone before any answer can come.
    socket.write(head, () => socket.destroy());
  }
  await Promise.all(closed);

  // Hashing all 100 would take at least 50 times the baseline even with both cores free;
  // the few hashes that may start before a FIN is read fit well within 10 times.
  const bound = 10 * baseline.elapsedMs + 500;
  const joined = await upgrade(port, 'vault', owner, PASSWORD, bound + 5_000);
  assert.equal(joined.status, 101, joined.body);
  assert.ok(
    joined.elapsedMs < bound,
    `the correct join took ${joined.elapsedMs.toFixed(0)} ms (one join alone: ${baseline.elapsedMs.toFixed(0)} ms)`,
  );

  const m = metrics();
  // The two correct joins are one hash each; of the abandoned attempts only
  // those whose hashing began before their client's FIN was read may have run.
  assert.ok(
    (m.room_password_hashes ?? Infinity) <= 12,
    `hashes run: ${m.room_password_hashes}, skipped: ${m.room_password_skipped}`,
  );
  await waitFor(() => (metrics().room_auth_abandoned ?? 0) >= 89, 3_000, 'abandoned checks counted');
  assert.equal(m.room_password_queued, 0);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe('room password hashing under attack', () => {
  test('32 concurrent wrong passwords: joins with fresh tokens still complete within 50 ms (p99)', async (t) => {
    // One client address here plays every attacker: lift the per-address share so the queue fills.
    const rooms = new RoomPasswords({ maxPerAddress: 1_000 });
    await rooms.setRoomPassword('vault', PASSWORD);
    const hub = await startHub({ roomAuthorizer: rooms });
    // Signed up front, one per join, all different: no verification cache can help,
    // and the test's own signing does not compete with the server for the thread pool.
    const fresh = await Promise.all(
      Array.from({ length: JOINS }, (_, i) =>
        makeToken({ sub: `honest-${i}`, jti: `${i}-${Math.random()}` }),
      ),
    );
    const attackerToken = await makeToken({ sub: 'attacker' });

    let attacking = true;
    let attempts = 0;
    const live = new Set<Socket>();
    const wrong = upgradeHead(hub.port, {
      path: '/ws?room=vault',
      headers: { Authorization: `Bearer ${attackerToken}`, 'X-WebSocket-Room-Password': 'wrong password' },
    });
    const answers = new Set<string>();
    const attackers = Array.from({ length: 32 }, async () => {
      while (attacking) {
        const answer = await attempt(hub.port, wrong, live);
        if (answer !== '') answers.add(answer);
        attempts++;
      }
    });
    // Let the attack fill the hashing pipeline before measuring.
    await sleep(300);

    const times: number[] = [];
    try {
      for (const token of fresh) {
        // A join that takes seconds counts as one over the bound, not as a test that hangs.
        const r = await upgrade(hub.port, 'lobby', token, undefined, 3_000).catch(() => undefined);
        assert.ok(r === undefined || r.status === 101, r?.body);
        times.push(r?.elapsedMs ?? Infinity);
        // With more than 1 % of the joins over the bound the p99 is decided.
        if (times.filter((ms) => ms > BOUND_MS).length > JOINS / 100) break;
        await sleep(10);
      }
    } finally {
      attacking = false;
      // Attempts still waiting are abandoned: the test need not wait for their hashes.
      for (const socket of live) socket.destroy();
      await Promise.all(attackers);
    }

    const slow = times.filter((ms) => ms > BOUND_MS).length;
    const summary = `p50 ${percentile(times, 50).toFixed(1)} ms, p99 ${percentile(times, 99).toFixed(1)} ms over ${times.length} joins, ${slow} over ${BOUND_MS} ms; ${attempts} wrong attempts`;
    t.diagnostic(summary);
    assert.ok(attempts >= 10 && answers.has('403'), `the attack ran: ${summary}`);
    assert.ok(
      [...answers].every((status) => status === '403' || status === '503'),
      [...answers].join(),
    );
    assert.ok(times.length === JOINS && slow <= JOINS / 100, `joins during the attack: ${summary}`);
  });

  test('100 wrong-password attempts abandoned at once are not hashed; a correct join is prompt', async () => {
    // One client address here plays every attacker: lift the per-address share so the queue fills.
    const rooms = new RoomPasswords({ maxPerAddress: 1_000 });
    await rooms.setRoomPassword('vault', PASSWORD);
    const hub = await startHub({ roomAuthorizer: rooms });
    await abandonedAttack(hub.port, () => hub.ws.metrics());
  });

  test('the same through node:http (attach), where the upgraded socket is not read', async () => {
    // One client address here plays every attacker: lift the per-address share so the queue fills.
    const rooms = new RoomPasswords({ maxPerAddress: 1_000 });
    await rooms.setRoomPassword('vault', PASSWORD);
    const ws = createWshub({ secret: SECRET, pingPeriod: 0, roomAuthorizer: rooms });
    const server = trackSockets(createServer());
    ws.attach(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await abandonedAttack((server.address() as AddressInfo).port, () => ws.metrics());
    } finally {
      await ws.shutdown({ timeout: 500 });
      await closeServer(server);
    }
  });

  test('one address cannot take the queue: 32 wrong guesses from one address, correct joins from another stay prompt', async () => {
    const rooms = new RoomPasswords(); // maxPerAddress 4
    await rooms.setRoomPassword('vault', PASSWORD);
    const hub = await startHub({ roomAuthorizer: rooms });
    const attackerToken = await makeToken({ sub: 'attacker' });
    const owner = await makeToken({ sub: 'owner' });
    const baseline = await upgrade(hub.port, 'vault', owner, PASSWORD);
    assert.equal(baseline.status, 101, baseline.body);

    const wrong = upgradeHead(hub.port, {
      path: '/ws?room=vault',
      headers: { Authorization: `Bearer ${attackerToken}`, 'X-WebSocket-Room-Password': 'wrong password' },
    });
    let attacking = true;
    const statuses = new Map<string, number>();
    const live = new Set<Socket>();
    const attackers = Array.from({ length: 32 }, async () => {
      while (attacking) {
        const status = await new Promise<string>((resolve) => {
          let seen = '';
          const socket = connect({ port: hub.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
          live.add(socket);
          socket.on('error', () => {});
          socket.once('data', (chunk: Buffer) => {
            seen = chunk.toString('latin1', 9, 12);
            socket.destroy();
          });
          socket.once('close', () => {
            live.delete(socket);
            resolve(seen);
          });
          socket.write(wrong);
        });
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        // A refused guesser retries after a pause, as Retry-After asks, so the test measures the queue.
        if (status === '503') await sleep(50);
      }
    });
    try {
      await waitFor(() => rooms.passwordMetrics().room_password_queued >= 3, 5_000, 'the attacker queued');
      // The attacker holds at most 4 checks, so a correct join waits for about five hashes;
      // without the per-address share it would wait behind all 32. The bound leaves room
      // for a loaded machine and still tells the two apart.
      const bound = 12 * baseline.elapsedMs + 1_000;
      for (let i = 0; i < 3; i++) {
        const joined = await upgrade(hub.port, 'vault', owner, PASSWORD, bound + 5_000);
        assert.equal(joined.status, 101, joined.body);
        assert.ok(
          joined.elapsedMs < bound,
          `correct join ${i} took ${joined.elapsedMs.toFixed(0)} ms (bound ${bound.toFixed(0)} ms)`,
        );
      }
    } finally {
      attacking = false;
      for (const socket of live) socket.destroy();
      await Promise.all(attackers);
    }
    assert.ok((statuses.get('503') ?? 0) > 0, `attacker answers: ${JSON.stringify([...statuses])}`);
    assert.ok(rooms.passwordMetrics().room_password_busy > 0);
  });

  test('more checks than maxQueued: 503 WEBSOCKET_AUTH_BUSY with Retry-After, at once', async () => {
    // Slow hashes, so the first is surely still running when the third arrives.
    const rooms = new RoomPasswords({ iterations: 1_000_000, concurrency: 1, maxQueued: 1 });
    await rooms.setRoomPassword('vault', PASSWORD);
    const hub = await startHub({ roomAuthorizer: rooms });
    const token = await makeToken({ sub: 'attacker' });

    const running = upgrade(hub.port, 'vault', token, 'wrong-1');
    await waitFor(() => rooms.passwordMetrics().room_password_hashes === 1, 3_000, 'the first hash');
    const queued = upgrade(hub.port, 'vault', token, 'wrong-2');
    await waitFor(() => rooms.passwordMetrics().room_password_queued === 1, 3_000, 'the queued check');

    const busy: RawResponse = await upgrade(hub.port, 'vault', token, 'wrong-3');
    assert.equal(busy.status, 503, busy.body);
    assert.equal(parseErrorBody(busy.body).error.code, 'WEBSOCKET_AUTH_BUSY');
    assert.equal(busy.headers['retry-after'], '1');
    assert.ok(busy.elapsedMs < 200, `refused after ${busy.elapsedMs.toFixed(0)} ms`);

    assert.equal((await running).status, 403);
    assert.equal((await queued).status, 403);
    const m = hub.ws.metrics();
    assert.equal(m.room_auth_busy, 1);
    assert.equal(m.room_password_busy, 1);
    assert.equal(m.room_password_hashes, 2);
  });
});
