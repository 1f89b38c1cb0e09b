// The per-client limits over loopback: each is hit, answers with its status
// and code (or close code), shows in the server's metrics, and lets the
// client in again after its window. Loopback is exempt by default, so every
// server here clears `limitExempt`. A handful of connections per test.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RoomPasswords } from '../../../src/auth/room-password.ts';
import type { WshubConfig } from '../../../src/config.ts';
import { closeRawProtocolClients, connectionToken, RawProtocolClient } from '../channels/sdk.ts';
import {
  authHeaders,
  cleanupHubs,
  connectClient,
  expectRefused,
  makeToken,
  parseErrorBody,
  rawHttp,
  startHub,
  upgradeHead,
  waitFor,
  type RunningHub,
} from '../server/harness.ts';

afterEach(async () => {
  closeRawProtocolClients();
  await cleanupHubs();
});

/** A hub whose per-client limits apply to loopback clients, with everything else as given. */
function limitedHub(config: Partial<WshubConfig>): Promise<RunningHub> {
  return startHub({ limitExempt: [], maxHandshakesPerIp: 0, maxConnsPerIp: 0, ...config });
}

describe('connections per address', () => {
  test('past maxConnsPerIp: 429 WEBSOCKET_IP_CONNECTION_LIMIT with Retry-After, counted; a close frees the slot', async () => {
    const hub = await limitedHub({ maxConnsPerIp: 2, allowUnauthenticated: true, channelsEnabled: true });
    const a = await connectClient(hub.url());
    // The channel endpoint counts against the same address.
    const b = await RawProtocolClient.open(hub);
    const { error } = await expectRefused(hub.url(), {}, 429, 'WEBSOCKET_IP_CONNECTION_LIMIT');
    assert.equal(error.headers?.['retry-after'], '1');
    assert.equal(hub.ws.metrics().ip_connections_refused, 1);
    assert.equal(hub.ws.metrics().ip_addresses_tracked, 1);
    a.conn.close();
    await a.conn.closed();
    await waitFor(() => hub.ws.metrics().active_connections === 0, 3_000, 'the close to be seen');
    const c = await connectClient(hub.url());
    assert.equal(c.conn.readyState, 'open');
    b.close();
    c.conn.close();
    await c.conn.closed();
    await waitFor(() => hub.ws.metrics().ip_addresses_tracked === 0, 3_000, 'every slot to be given back');
  });

  test('refused upgrades give their slot back (a bad token does not use up the address)', async () => {
    const hub = await limitedHub({ maxConnsPerIp: 1 });
    for (let i = 0; i < 3; i++) {
      await expectRefused(
        hub.url(),
        { headers: { Authorization: 'Bearer x.y.z' } },
        403,
        'WEBSOCKET_INVALID_TOKEN',
      );
    }
    const ok = await connectClient(hub.url(), { headers: await authHeaders() });
    assert.equal(ok.conn.readyState, 'open');
    assert.equal(hub.ws.metrics().ip_connections_refused, 0);
  });

  test('loopback is exempt by default', async () => {
    const hub = await startHub({ maxConnsPerIp: 1, allowUnauthenticated: true });
    const a = await connectClient(hub.url());
    const b = await connectClient(hub.url());
    assert.equal(b.conn.readyState, 'open');
    a.conn.terminate();
    b.conn.terminate();
    assert.equal(hub.ws.metrics().ip_connections_refused, 0);
  });
});

describe('handshakes per address per second', () => {
  test('a burst past maxHandshakesPerIp gets 429 WEBSOCKET_IP_HANDSHAKE_RATE, counted; the next second lets it in', async () => {
    const hub = await limitedHub({ maxHandshakesPerIp: 3, allowUnauthenticated: true });
    const burst = await Promise.all(
      Array.from({ length: 12 }, () => rawHttp(hub.port, upgradeHead(hub.port))),
    );
    const refused = burst.filter((r) => r.status === 429);
    const accepted = burst.filter((r) => r.status === 101);
    assert.equal(refused.length + accepted.length, 12, burst.map((r) => r.status).join(','));
    assert.ok(refused.length >= 1, 'some of the burst is refused');
    // Twelve at once span at most a couple of one-second windows even on a busy machine.
    assert.ok(accepted.length <= 6, `${accepted.length} accepted`);
    for (const r of refused) {
      assert.equal(parseErrorBody(r.body).error.code, 'WEBSOCKET_IP_HANDSHAKE_RATE');
      assert.equal(r.headers['retry-after'], '1');
    }
    assert.equal(hub.ws.metrics().ip_handshakes_refused, refused.length);
    await sleep(1_100);
    const later = await connectClient(hub.url());
    assert.equal(later.conn.readyState, 'open');
  });
});

describe('connections per user', () => {
  test('/ws and channels share maxConnsPerUser: 429 WEBSOCKET_USER_CONNECTION_LIMIT, channel disconnect 3504', async () => {
    const hub = await startHub({ maxConnsPerUser: 1, channelsEnabled: true });
    const alice = await connectClient(hub.url(), {
      headers: { Authorization: `Bearer ${await makeToken({ sub: 'alice' })}` },
    });
    const second = { headers: { Authorization: `Bearer ${await makeToken({ sub: 'alice' })}` } };
    const { error } = await expectRefused(hub.url(), second, 429, 'WEBSOCKET_USER_CONNECTION_LIMIT');
    assert.equal(error.headers?.['retry-after'], '1');
    // Another user is not affected.
    const bob = await connectClient(hub.url(), {
      headers: { Authorization: `Bearer ${await makeToken({ sub: 'bob' })}` },
    });
    assert.equal(bob.conn.readyState, 'open');
    // The channel endpoint counts the same user: the connect is answered with 3504 connection limit.
    const raw = await RawProtocolClient.open(hub);
    raw.sendRaw(JSON.stringify({ id: 1, connect: { token: await connectionToken('alice') } }));
    assert.deepEqual(await raw.closed, { code: 3504, reason: 'connection limit' });
    assert.equal(hub.ws.metrics().user_connections_refused, 2);
    // Once alice's /ws connection is gone, her channel connect succeeds (and then holds the slot).
    alice.conn.close();
    await alice.conn.closed();
    await waitFor(() => hub.ws.metrics().active_connections === 1, 3_000, 'the close to be seen');
    const channel = await RawProtocolClient.open(hub);
    const reply = await channel.call('connect', { token: await connectionToken('alice') });
    assert.equal(typeof (reply.connect as { client?: unknown }).client, 'string');
    await expectRefused(hub.url(), second, 429, 'WEBSOCKET_USER_CONNECTION_LIMIT');
    channel.close();
    await waitFor(() => hub.ws.health().active_connections === 1, 3_000, 'the channel close');
    const again = await connectClient(hub.url(), second);
    assert.equal(again.conn.readyState, 'open');
  });
});

describe('inbound rates per connection', () => {
  test('past maxMessagesPerSec: close 1008, counted; a client within the rate stays', async () => {
    const hub = await limitedHub({ maxMessagesPerSec: 5, allowUnauthenticated: true });
    const flooder = await connectClient(hub.url('/ws?room=r'));
    const calm = await connectClient(hub.url('/ws?room=r'));
    for (let i = 0; i < 20; i++) void flooder.conn.sendText(`m${i}`).catch(() => {});
    const closed = await flooder.conn.closed();
    assert.equal(closed.code, 1008);
    assert.equal(hub.ws.metrics().message_rate_closes, 1);
    for (let i = 0; i < 3; i++) {
      await calm.conn.sendText(`ok${i}`);
      await sleep(250);
    }
    assert.equal(calm.conn.readyState, 'open');
    assert.equal(hub.ws.metrics().message_rate_closes, 1);
  });

  test('past maxBytesPerSec: close 1008, counted in byte_rate_closes', async () => {
    const hub = await limitedHub({ maxBytesPerSec: 4096, allowUnauthenticated: true });
    const client = await connectClient(hub.url('/ws?room=r'));
    void client.conn.sendText('x'.repeat(10_000)).catch(() => {});
    const closed = await client.conn.closed();
    assert.equal(closed.code, 1008);
    assert.equal(hub.ws.metrics().byte_rate_closes, 1);
    const next = await connectClient(hub.url('/ws?room=r'));
    await next.conn.sendText('y'.repeat(1000));
    assert.equal(next.conn.readyState, 'open');
  });

  test('a channel connection past the rate gets the protocol disconnect 3013 too many requests', async () => {
    const hub = await limitedHub({ maxMessagesPerSec: 5, channelsEnabled: true });
    const raw = await RawProtocolClient.open(hub);
    await raw.call('connect', { token: await connectionToken('carol') });
    for (let i = 0; i < 20; i++) raw.sendRaw(JSON.stringify({ id: 100 + i, ping: {} }));
    assert.deepEqual(await raw.closed, { code: 3013, reason: 'too many requests' });
    assert.equal(hub.ws.metrics().message_rate_closes, 1);
  });

  test('exempt (loopback) clients are not rate limited', async () => {
    const hub = await startHub({ maxMessagesPerSec: 2, allowUnauthenticated: true });
    const client = await connectClient(hub.url('/ws?room=r'));
    for (let i = 0; i < 20; i++) await client.conn.sendText(`m${i}`);
    await sleep(100);
    assert.equal(client.conn.readyState, 'open');
    assert.equal(hub.ws.metrics().message_rate_closes, 0);
  });
});

describe('room-password lockout', () => {
  test('passwordLockout failures lock the address out of the room: 429 WEBSOCKET_ROOM_LOCKED, then open again', async () => {
    const rooms = new RoomPasswords({ iterations: 1 });
    await rooms.setRoomPassword('vip', 'Right-Passw0rd');
    const hub = await limitedHub({ roomAuthorizer: rooms, passwordLockout: 3, passwordLockoutMs: 1_500 });
    const url = hub.url('/ws?room=vip');
    const wrong = async () => ({
      headers: await authHeaders({ 'X-WebSocket-Room-Password': 'wrong' }),
    });
    const right = async () => ({
      headers: await authHeaders({ 'X-WebSocket-Room-Password': 'Right-Passw0rd' }),
    });
    for (let i = 0; i < 3; i++) await expectRefused(url, await wrong(), 403, 'WEBSOCKET_ROOM_FORBIDDEN');
    // Locked: even the right password is refused, without hashing.
    const hashes = hub.ws.metrics().room_password_hashes;
    const { error } = await expectRefused(url, await right(), 429, 'WEBSOCKET_ROOM_LOCKED');
    const retry = Number(error.headers?.['retry-after']);
    assert.ok(retry >= 1 && retry <= 2, `Retry-After ${retry}`);
    assert.equal(hub.ws.metrics().room_password_hashes, hashes);
    // Another room is not locked.
    const open = await connectClient(hub.url('/ws?room=lobby'), { headers: await authHeaders() });
    assert.equal(open.conn.readyState, 'open');
    const m = hub.ws.metrics();
    assert.deepEqual(
      [m.room_password_failures, m.room_password_lockouts, m.room_password_locked_refusals],
      [3, 1, 1],
    );
    await sleep(1_600);
    const joined = await connectClient(url, await right());
    assert.equal(joined.conn.readyState, 'open');
  });
});

describe('client addresses behind a trusted proxy', () => {
  function viaProxy(forwarded: string): { headers: Record<string, string> } {
    return { headers: { 'X-Forwarded-For': forwarded } };
  }

  test('the forwarded address is the one limited; a prepended fake hop changes nothing', async () => {
    const hub = await limitedHub({
      maxConnsPerIp: 1,
      allowUnauthenticated: true,
      trustedProxies: ['127.0.0.1/32'],
    });
    const first = await connectClient(hub.url(), viaProxy('203.0.113.5'));
    assert.equal(first.conn.readyState, 'open');
    await expectRefused(hub.url(), viaProxy('203.0.113.5'), 429, 'WEBSOCKET_IP_CONNECTION_LIMIT');
    // The client wrote the left hop itself; the proxy appended the real one.
    await expectRefused(
      hub.url(),
      viaProxy('198.51.100.9, 203.0.113.5'),
      429,
      'WEBSOCKET_IP_CONNECTION_LIMIT',
    );
    const other = await connectClient(hub.url(), viaProxy('203.0.113.6'));
    assert.equal(other.conn.readyState, 'open');
    assert.equal(other.conn.readyState, 'open');
    // An unreadable hop stops the walk at the proxy itself, which is then the client.
    const odd = await connectClient(hub.url(), viaProxy('not-an-address'));
    assert.equal(odd.conn.readyState, 'open');
    assert.equal(hub.ws.metrics().forwarded_header_malformed, 1);
  });

  test('from an untrusted peer the header is ignored: every spoofed address counts as the peer', async () => {
    const hub = await limitedHub({
      maxConnsPerIp: 1,
      allowUnauthenticated: true,
      trustedProxies: ['10.0.0.0/8'],
    });
    const first = await connectClient(hub.url(), viaProxy('203.0.113.5'));
    assert.equal(first.conn.readyState, 'open');
    await expectRefused(hub.url(), viaProxy('203.0.113.77'), 429, 'WEBSOCKET_IP_CONNECTION_LIMIT');
    await expectRefused(
      hub.url(),
      { headers: { Forwarded: 'for=192.0.2.1' } },
      429,
      'WEBSOCKET_IP_CONNECTION_LIMIT',
    );
  });

  test('Forwarded (RFC 7239) when configured, IPv6 hops included', async () => {
    const hub = await limitedHub({
      maxConnsPerIp: 1,
      allowUnauthenticated: true,
      trustedProxies: ['127.0.0.1'],
      trustedProxyHeader: 'forwarded',
    });
    const v6 = { headers: { Forwarded: 'for="[2001:db8::1]:4711";proto=https' } };
    await connectClient(hub.url(), v6);
    // Same /64: the same client for the limits.
    await expectRefused(
      hub.url(),
      { headers: { Forwarded: 'for="[2001:db8::2]"' } },
      429,
      'WEBSOCKET_IP_CONNECTION_LIMIT',
    );
    const other = await connectClient(hub.url(), { headers: { Forwarded: 'for=192.0.2.60' } });
    assert.equal(other.conn.readyState, 'open');
    // X-Forwarded-For is not read when Forwarded is the configured header: both count as the proxy.
    await connectClient(hub.url(), viaProxy('192.0.2.61'));
    await expectRefused(hub.url(), viaProxy('192.0.2.62'), 429, 'WEBSOCKET_IP_CONNECTION_LIMIT');
  });
});
