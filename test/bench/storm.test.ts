/**
 * The reconnection-storm benchmark: its response-head parsing and retry
 * policy, its clients' bounds against servers that misbehave (silent,
 * endless head, always refusing, hanging up), and two tiny storms against
 * wshub — one with its defaults, one with per-address admission that
 * refuses with 429 and Retry-After, which the clients honour until all
 * have joined.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startPeer } from '../../bench/peer-process.ts';
import {
  MAX_HEAD_BYTES,
  StormClient,
  nowMs,
  parseResponseHead,
  retryDelayMs,
  type StormSink,
} from '../../bench/loadgen/storm-client.ts';
import { DEFAULT_RETRY, runStorm, type StormResult, type StormSpec } from '../../bench/loadgen/storm.ts';
import { renderStormTables, stormRow } from '../../bench/scenarios/storm.ts';
import type { RetryPolicy } from '../../bench/loadgen/storm-messages.ts';

describe('storm client: response heads and retry delays', () => {
  test('status and Retry-After are read from a response head', () => {
    assert.deepEqual(parseResponseHead('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket'), {
      status: 101,
      retryAfterSec: undefined,
    });
    assert.deepEqual(parseResponseHead('HTTP/1.1 429 Too Many Requests\r\nretry-after:  3 \r\nX: y'), {
      status: 429,
      retryAfterSec: 3,
    });
    // The HTTP-date form and junk are not taken as seconds.
    assert.equal(
      parseResponseHead('HTTP/1.1 503 x\r\nRetry-After: Wed, 21 Oct 2026 07:28:00 GMT')?.retryAfterSec,
      undefined,
    );
    assert.equal(parseResponseHead('HTTP/1.1 503 x\r\nRetry-After: -1')?.retryAfterSec, undefined);
    assert.equal(parseResponseHead('SSH-2.0-OpenSSH_9.0'), null);
    assert.equal(parseResponseHead(''), null);
  });

  test('Retry-After is honoured and clamped; without it the backoff doubles up to its cap', () => {
    const policy: RetryPolicy = { ...DEFAULT_RETRY, backoffMs: 100, maxBackoffMs: 500, jitterMs: 200 };
    assert.equal(
      retryDelayMs(policy, 1, 2, () => 0),
      2000,
    );
    assert.equal(
      retryDelayMs(policy, 1, 1000, () => 0),
      policy.maxRetryAfterSec * 1000,
    );
    assert.equal(
      retryDelayMs(policy, 1, undefined, () => 0),
      100,
    );
    assert.equal(
      retryDelayMs(policy, 3, undefined, () => 0),
      400,
    );
    assert.equal(
      retryDelayMs(policy, 9, undefined, () => 0),
      500,
    );
    assert.equal(
      retryDelayMs(policy, 1, 1, () => 0.999),
      1000 + 0.999 * 200,
    );
  });
});

/** Runs `count` storm clients against `port` until every one joined or gave up; returns what the sink saw. */
async function clientsAgainst(port: number, count: number, policy: RetryPolicy, deadlineMs: number) {
  const seen = {
    attempts: 0,
    refused: {} as Record<string, number>,
    retryAfter: 0,
    failed: {} as Record<string, number>,
    ready: 0,
    gaveUp: 0,
  };
  const clients: StormClient[] = [];
  const t0 = nowMs();
  await new Promise<void>((resolve) => {
    let done = 0;
    const finish = (): void => {
      if (++done === count) resolve();
    };
    const sink: StormSink = {
      deadlineAt: t0 + deadlineMs,
      attempt: () => seen.attempts++,
      refused: (status, retryAfterSec) => {
        seen.refused[status] = (seen.refused[status] ?? 0) + 1;
        if (retryAfterSec !== undefined) seen.retryAfter++;
      },
      failed: (kind) => {
        seen.failed[kind] = (seen.failed[kind] ?? 0) + 1;
      },
      ready: () => {
        seen.ready++;
        finish();
      },
      gaveUp: () => {
        seen.gaveUp++;
        finish();
      },
      closedAfterJoin: () => {},
      rollCall: () => {},
    };
    for (let i = 0; i < count; i++) {
      const c = new StormClient(
        { host: '127.0.0.1', port, protocol: 'ws', path: '/ws' },
        'r',
        undefined,
        policy,
        sink,
      );
      clients.push(c);
      c.start(nowMs());
    }
  });
  for (const c of clients) c.close();
  return { ...seen, elapsedMs: nowMs() - t0 };
}

describe('storm client: misbehaving servers end in bounded time', () => {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  after(() => {
    for (const s of sockets) s.destroy();
    for (const s of servers) s.close();
  });
  /** A server whose every connection gets `onSocket`; resolves with its port. */
  async function server(onSocket: (socket: net.Socket) => void): Promise<number> {
    const s = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      onSocket(socket);
    });
    servers.push(s);
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    return (s.address() as AddressInfo).port;
  }
  const policy: RetryPolicy = {
    maxAttempts: 3,
    attemptTimeoutMs: 300,
    backoffMs: 50,
    maxBackoffMs: 100,
    jitterMs: 20,
    maxRetryAfterSec: 1,
  };

  test('a server that never answers: every attempt times out, then the clients give up', async () => {
    const port = await server(() => {});
    const r = await clientsAgainst(port, 5, policy, 10_000);
    assert.equal(r.gaveUp, 5);
    assert.equal(r.attempts, 15);
    assert.deepEqual(r.failed, { timeout: 15 });
    assert.ok(r.elapsedMs < 3_000, `took ${r.elapsedMs} ms`);
  });

  test('an endless response head is cut off at the bound', async () => {
    const port = await server((socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\n');
      const filler = Buffer.alloc(1024, 'x');
      const timer = setInterval(() => {
        if (socket.destroyed) clearInterval(timer);
        else socket.write(filler);
      }, 1);
    });
    const r = await clientsAgainst(port, 2, { ...policy, attemptTimeoutMs: 5_000 }, 10_000);
    assert.equal(r.gaveUp, 2);
    assert.deepEqual(r.failed, { 'oversized head': 6 });
    assert.ok(MAX_HEAD_BYTES <= 64 * 1024);
  });

  test('a server that always refuses: Retry-After is honoured, attempts are bounded', async () => {
    const port = await server((socket) =>
      socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n'),
    );
    const r = await clientsAgainst(port, 4, policy, 10_000);
    assert.equal(r.gaveUp, 4);
    assert.deepEqual(r.refused, { 503: 12 });
    assert.equal(r.retryAfter, 12);
    // Two waits of at least Retry-After (1 s) between three attempts.
    assert.ok(r.elapsedMs >= 2_000, `took ${r.elapsedMs} ms`);
    assert.ok(r.elapsedMs < 5_000, `took ${r.elapsedMs} ms`);
  });

  test('a server that hangs up, and the deadline stops retries early', async () => {
    const port = await server((socket) => socket.destroy());
    const r = await clientsAgainst(port, 3, { ...policy, maxAttempts: 1_000, backoffMs: 100 }, 700);
    assert.equal(r.gaveUp, 3);
    assert.equal(r.ready, 0);
    assert.ok(r.attempts < 50, `${r.attempts} attempts`);
    assert.ok(r.elapsedMs < 2_000, `took ${r.elapsedMs} ms`);
  });
});

/** A tiny storm against a fresh wshub peer with `env`. */
async function tinyStorm(env: Record<string, string>, addresses: number): Promise<StormResult> {
  const peer = await startPeer({ name: 'wshub', env: { ...process.env, ...env } });
  try {
    const spec: StormSpec = {
      target: { host: '127.0.0.1', port: peer.port, protocol: 'ws', path: '/ws' },
      steadyRoom: 'steady',
      stormRoom: 'storm',
      steadySubscribers: 20,
      steadyRate: 50,
      payloadBytes: 64,
      stormClients: 300,
      spreadMs: 500,
      addresses,
      workers: 2,
      warmupMs: 200,
      beforeMs: 500,
      afterMs: 300,
      deadlineMs: 10_000,
      probe: { cpuSeconds: () => peer.cpuSeconds(), rssBytes: () => peer.rssBytes() },
    };
    return await runStorm(spec);
  } finally {
    await peer.stop();
  }
}

describe('storm runs against wshub', () => {
  test('defaults: all 300 join at once, the roll call reaches them all, the steady room is measured', async () => {
    const r = await tinyStorm({}, 30);
    assert.equal(r.connected, 300);
    assert.equal(r.gaveUp, 0);
    assert.deepEqual(r.refusals, {});
    assert.equal(r.rollCall.expected, 300);
    assert.equal(r.rollCall.received, 300);
    assert.ok(Number.isFinite(r.allJoinedMs) && r.allJoinedMs > 0, `all joined after ${r.allJoinedMs} ms`);
    assert.ok(r.attemptLatencyMs.p99 > 0);
    assert.equal(r.steady.members, 21);
    for (const w of [r.steady.before, r.steady.during, r.steady.after]) {
      assert.ok(w.sent > 0, 'messages in every window');
      assert.equal(w.lost, 0);
      assert.equal(w.delivered, w.sent * 21);
    }
    assert.ok(r.server !== undefined && r.server.cpuSec > 0 && r.server.peakRssBytes > 0);

    const row = stormRow(
      'wshub',
      '',
      { stormClients: 300, addresses: 30, spreadMs: 500, steadySubscribers: 20, steadyRate: 50 },
      [{ result: r, overflows: 0 }],
    );
    const table = renderStormTables([row]);
    assert.match(table, /\| wshub \| 300 \|/);
    assert.match(table, /refused none; failed none/);
  });

  test('admission: 429 with Retry-After, honoured, until every client has joined', async () => {
    // 300 clients over 20 addresses within 0.5 s = 15 per address; 8 handshakes per address per second pass.
    const r = await tinyStorm({ BENCH_MAX_HANDSHAKES_PER_IP: '8' }, 20);
    assert.equal(r.connected, 300, JSON.stringify({ refusals: r.refusals, failures: r.failures }));
    const refused = r.refusals['429'] ?? 0;
    assert.ok(refused > 0, 'some handshakes were refused');
    assert.equal(r.retryAfterHonoured, refused);
    assert.equal(r.retries, r.attempts - 300);
    assert.ok(r.retries >= refused);
    // A refused client came back only after Retry-After (1 s).
    assert.ok(r.allJoinedMs >= 1_000, `all joined after ${r.allJoinedMs} ms`);
    assert.equal(r.rollCall.received, 300);
  });
});
