/**
 * The Go receive path of the load generator (bench/loadgen/go/receiver):
 * built by the suite itself, a drop-in fan-out worker that counts the same
 * deliveries, latencies and slow subscribers as the Node worker, answers
 * pings, and turns bad upgrades and closes into counted failures, not hangs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { createWshub, type WshubServer } from '../../src/index.ts';
import {
  GO_RECEIVER_SOURCE,
  ensureGoReceiver,
  goEnv,
  receiverSourceHash,
} from '../../bench/loadgen/go-receiver.ts';
import { runFanout, runHandshakes, type Target } from '../../bench/loadgen/index.ts';
import { runGo } from '../../bench/go-command.ts';
import { signHS256 } from '../../src/auth/token.ts';

const target = (port: number): Target => ({ host: '127.0.0.1', port, protocol: 'ws', path: '/ws' });

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

describe('go receiver build', () => {
  test('builds into the bench bin folder under a name that hashes its source', async () => {
    const binary = await ensureGoReceiver();
    assert.ok(existsSync(binary));
    assert.ok(binary.endsWith(`wshub-receiver-${receiverSourceHash()}`));
    assert.match(receiverSourceHash(), /^[0-9a-f]{16}$/);
    // started without an IPC channel it says why and exits, rather than waiting for nothing
    const alone = spawnSync(binary, [], { encoding: 'utf8', timeout: 5000, env: {} });
    assert.equal(alone.status, 2);
    assert.match(alone.stderr, /NODE_CHANNEL_FD/);
  });
});

describe('go command', () => {
  test('resolves when go succeeds; a failure names the command and carries its output', async () => {
    const options = { label: 'probe', whenMissing: 'install Go', env: process.env, timeoutMs: 30_000 };
    await runGo(['env', 'GOROOT'], options);
    await assert.rejects(runGo(['no-such-go-command'], options), (error: Error) => {
      assert.match(error.message, /^probe: go no-such-go-command failed \(code 2, signal null\) /);
      assert.match(error.message, /unknown command/);
      return true;
    });
  });
});

describe('go receiver unit tests', () => {
  test('go vet and go test pass (frame reading at every split, pongs, window, histogram buckets)', () => {
    for (const args of [
      ['vet', '.'],
      ['test', '-count=1', '.'],
    ]) {
      const run = spawnSync('go', args, {
        cwd: GO_RECEIVER_SOURCE,
        env: goEnv(),
        encoding: 'utf8',
        timeout: 120_000,
      });
      assert.equal(run.status, 0, `go ${args.join(' ')}: ${run.stdout}${run.stderr}`);
    }
  });
});

describe('go receive path against wshub', () => {
  let hub: WshubServer;
  let server: Server;
  let port: number;

  before(async () => {
    hub = createWshub({ allowUnauthenticated: true, messageValidation: false });
    server = hub.createServer();
    port = await listen(server);
  });

  after(async () => {
    await hub.shutdown({ timeout: 1000 });
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('a fan-out to 30 subscribers at 200 msg/s is delivered whole, with latency', async () => {
    const result = await runFanout({
      target: target(port),
      rooms: [{ name: 'go-fan', subscribers: 30, publishers: 1 }],
      ratePerPublisher: 200,
      payloadBytes: 64,
      warmupMs: 200,
      durationMs: 1000,
      workers: 2,
      receivePath: 'go',
    });
    assert.equal(result.receivePath, 'go');
    assert.equal(result.connected, 31);
    assert.equal(result.connectFailures, 0);
    assert.ok(result.sent >= 195 && result.sent <= 205, `sent ${result.sent}`);
    assert.equal(result.expected, result.sent * 31);
    assert.equal(result.delivered, result.expected);
    assert.equal(result.lost, 0);
    assert.equal(result.latencyMs.samples, result.delivered);
    assert.ok(result.latencyMs.p50 > 0 && result.latencyMs.p50 <= result.latencyMs.p99);
    assert.ok(result.latencyMs.max < 1000, JSON.stringify(result.latencyMs));
    assert.ok(result.generatorCpu.seconds > 0 && result.generatorCpu.busyFraction < 0.9);
  });

  test('slow subscribers stop reading at the window and are reported apart', async () => {
    const result = await runFanout({
      target: target(port),
      rooms: [{ name: 'go-slow', subscribers: 8, publishers: 1 }],
      ratePerPublisher: 100,
      payloadBytes: 32,
      warmupMs: 200,
      durationMs: 500,
      slowFraction: 0.25,
      workers: 1,
      receivePath: 'go',
    });
    assert.equal(result.receivePath, 'go');
    assert.equal(result.connected, 9);
    assert.equal(result.expected, result.sent * 7);
    assert.equal(result.delivered, result.expected);
    assert.equal(result.slow?.members, 2);
    assert.equal(result.slow?.closedByServer, 0);
    assert.equal(result.slow?.framesReceived, result.sentTotal * 2);
  });
});

describe('go handshake loops against wshub', () => {
  const secret = 'go-handshake-test-secret-of-at-least-32-bytes';
  let hub: WshubServer;
  let server: Server;
  let port: number;

  before(async () => {
    hub = createWshub({ secret, messageValidation: false });
    server = hub.createServer();
    port = await listen(server);
  });

  after(async () => {
    await hub.shutdown({ timeout: 1000 });
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('connect → upgrade → close loops: every accepted token upgrades, every bad one is a failure', async () => {
    const good = `Bearer ${await signHS256({ sub: 'go-user' }, secret, { expiresInSeconds: 600 })}`;
    const result = await runHandshakes({
      target: target(port),
      concurrency: 4,
      durationMs: 500,
      workers: 1,
      headerPool: { name: 'Authorization', values: [good, 'Bearer not-a-token'] },
      receivePath: 'go',
    });
    assert.equal(result.receivePath, 'go');
    assert.ok(result.upgrades >= 10, `upgrades ${result.upgrades}`);
    // the pool alternates a good and a bad token, so the counts differ by at most the loops in flight
    assert.ok(Math.abs(result.upgrades - result.failures) <= 4, `${result.upgrades} vs ${result.failures}`);
    assert.equal(result.headerReuses, result.upgrades + result.failures - 2);
    assert.ok(result.latencyMs.p99 > 0 && result.latencyMs.p99 < 1000, JSON.stringify(result.latencyMs));
    assert.ok(result.generatorCpu.seconds > 0);
    // every upgraded connection was closed by the close handshake the loop starts
    for (let i = 0; i < 50 && hub.hub.getActiveConnectionCount() > 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(hub.hub.getActiveConnectionCount(), 0);
  });

  test('a target that is not plain WebSocket keeps the Node worker', async () => {
    const result = await runHandshakes({
      target: { ...target(port), protocol: 'socketio' },
      concurrency: 1,
      durationMs: 100,
      workers: 1,
      receivePath: 'go',
    });
    assert.equal(result.receivePath, 'node');
  });
});

describe('go receive path against odd servers', () => {
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  after(async () => {
    for (const s of sockets) s.destroy();
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  test('pings are answered with their payload; a refused upgrade is a failure, not a hang', async () => {
    const server = createServer((_req, res) => res.writeHead(404).end());
    servers.push(server);
    const wss = new WebSocketServer({ noServer: true });
    const pongs: string[] = [];
    const rooms: string[] = [];
    server.on('upgrade', (request, socket, head) => {
      sockets.add(socket as Socket);
      const room = new URL(request.url ?? '/', 'http://x').searchParams.get('room') ?? '';
      if (room === 'refused') {
        socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => {
        rooms.push(room);
        ws.on('pong', (data) => pongs.push(data.toString()));
        ws.ping(Buffer.from(`ping-${rooms.length}`));
      });
    });
    const port = await listen(server);
    const started = Date.now();
    const result = await runFanout({
      target: target(port),
      rooms: [
        { name: 'pinged room', subscribers: 3, publishers: 0 },
        { name: 'refused', subscribers: 2, publishers: 0 },
      ],
      ratePerPublisher: 10,
      payloadBytes: 16,
      warmupMs: 100,
      durationMs: 300,
      workers: 1,
      receivePath: 'go',
    });
    assert.ok(Date.now() - started < 10_000);
    assert.equal(result.connected, 3);
    assert.equal(result.connectFailures, 2);
    assert.deepEqual(rooms, ['pinged room', 'pinged room', 'pinged room']);
    assert.deepEqual(pongs.sort(), ['ping-1', 'ping-2', 'ping-3']);
    for (const client of wss.clients) client.terminate();
  });
});
