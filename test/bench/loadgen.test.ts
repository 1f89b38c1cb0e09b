import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { createWshub, type WshubServer } from '../../src/index.ts';
import { Histogram } from '../../bench/loadgen/histogram.ts';
import { FrameParser } from '../../bench/loadgen/frame-parser.ts';
import {
  MessageTemplate,
  SIO_PREFIX,
  maskedFrame,
  newMask,
  readDigits,
} from '../../bench/loadgen/client-frames.ts';
import { holdIdle, runFanout, runHandshakes, type Target } from '../../bench/loadgen/index.ts';

/** Deterministic PRNG so a failure can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An unmasked server frame. */
function serverFrame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : Buffer.alloc(n < 65536 ? 4 : 10);
  if (n >= 126 && n < 65536) {
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else if (n >= 65536) {
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

class Recorder extends FrameParser {
  frames: Array<{ opcode: number; prefix: string; length: number }> = [];
  protected override onFrame(opcode: number, _fin: boolean, prefixLen: number, length: number): void {
    this.frames.push({ opcode, prefix: this.prefix.toString('hex', 0, prefixLen), length });
  }
}

describe('histogram', () => {
  test('quantiles stay within 1% of a sorted-array reference', () => {
    const rand = prng(7);
    const h = new Histogram();
    const values: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      // log-uniform from 1 µs to ~10 s
      const v = Math.round(Math.exp(rand() * Math.log(10_000_000)));
      values.push(v);
      h.record(v);
    }
    values.sort((a, b) => a - b);
    assert.equal(h.total, values.length);
    for (const q of [0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1]) {
      const exact = values[Math.max(0, Math.ceil(q * values.length) - 1)]!;
      const got = h.quantile(q);
      assert.ok(Math.abs(got - exact) <= Math.max(1, exact * 0.01), `q=${q}: ${got} vs ${exact}`);
    }
    assert.equal(h.maxUs, values.at(-1));
  });

  test('merging bucket counts equals recording everything in one histogram', () => {
    const rand = prng(3);
    const a = new Histogram();
    const b = new Histogram();
    const all = new Histogram();
    for (let i = 0; i < 5000; i++) {
      const v = rand() * 1_000_000;
      (i % 2 === 0 ? a : b).record(v);
      all.record(v);
    }
    a.merge(Array.from(b.counts), b.maxUs);
    assert.equal(a.total, all.total);
    assert.equal(a.quantile(0.99), all.quantile(0.99));
    assert.equal(a.maxUs, all.maxUs);
  });
});

describe('frame parser', () => {
  test('reports every frame whatever the chunk boundaries', () => {
    const rand = prng(11);
    const frames: Array<{ opcode: number; payload: Buffer }> = [];
    for (const n of [0, 1, 12, 64, 125, 126, 1024, 65535, 65536, 70_000]) {
      const payload = Buffer.alloc(n);
      for (let i = 0; i < n; i++) payload[i] = Math.floor(rand() * 256);
      frames.push({ opcode: n % 2 === 0 ? 2 : 1, payload });
    }
    frames.push(
      { opcode: 9, payload: Buffer.from('ping-data') },
      { opcode: 8, payload: Buffer.from([3, 232]) },
    );
    const stream = Buffer.concat(frames.map((f) => serverFrame(f.opcode, f.payload)));
    const expected = frames.map((f) => ({
      opcode: f.opcode,
      prefix: f.payload.toString('hex', 0, Math.min(f.payload.length, f.opcode >= 8 ? 125 : 20)),
      length: f.payload.length,
    }));
    for (let round = 0; round < 50; round++) {
      const parser = new Recorder(20);
      let at = 0;
      while (at < stream.length) {
        const size = 1 + Math.floor(rand() * (round % 2 === 0 ? 7 : 5000));
        const end = Math.min(stream.length, at + size);
        // feed a window of a larger buffer, as the shared read buffer does
        const chunk = Buffer.concat([Buffer.alloc(3), stream.subarray(at, end)]);
        parser.feed(chunk, 3, chunk.length);
        at = end;
      }
      assert.deepEqual(parser.frames, expected);
    }
  });

  test('masked publisher frames carry the stamped time and sequence', () => {
    for (const protocol of ['ws', 'socketio'] as const) {
      const mask = newMask();
      const template = new MessageTemplate(protocol, 64, mask);
      const out = Buffer.alloc(template.frame.length * 2);
      template.writeTo(out, 0, 1_700_000_000_123.456, 41);
      template.writeTo(out, template.frame.length, 1_700_000_000_999.5, 42);
      for (const [i, time, seq] of [
        [0, 1_700_000_000_123.456, 41],
        [1, 1_700_000_000_999.5, 42],
      ] as const) {
        const frame = out.subarray(i * template.frame.length, (i + 1) * template.frame.length);
        const headLen =
          frame.length - (frame[1]! & 0x7f) - 4 === 2 ? 2 : frame.length - (frame[1]! & 0x7f) - 4;
        const payload = Buffer.from(frame.subarray(headLen + 4));
        for (let k = 0; k < payload.length; k++) payload[k]! ^= mask[k & 3]!;
        if (protocol === 'ws') {
          assert.equal(frame[0], 0x82);
          assert.equal(payload.length, 64);
          assert.equal(payload.readDoubleLE(0), time);
          assert.equal(payload.readUInt32LE(8), seq);
        } else {
          assert.equal(frame[0], 0x81);
          const text = payload.toString();
          assert.ok(text.startsWith(SIO_PREFIX) && text.endsWith('"]'), text);
          assert.equal((JSON.parse(text.slice(2)) as string[])[1]!.length, 64);
          assert.equal(readDigits(payload, SIO_PREFIX.length, 16), Math.round(time * 1000));
          assert.equal(readDigits(payload, SIO_PREFIX.length + 16, 10), seq);
        }
      }
    }
    // a frame with a 16-bit length is laid out as RFC 6455 says
    const big = maskedFrame(2, Buffer.alloc(300), Buffer.from([1, 2, 3, 4]));
    assert.equal(big[1], 0x80 | 126);
    assert.equal(big.readUInt16BE(2), 300);
    assert.equal(big.length, 4 + 4 + 300);
  });
});

/** A `ws` server with the benchmark semantics: every message goes to every member of its room. */
function startWsRooms(): Promise<{ server: Server; wss: WebSocketServer; port: number }> {
  const server = createServer();
  const wss = new WebSocketServer({ server, path: '/ws' });
  const rooms = new Map<string, Set<WebSocket>>();
  wss.on('connection', (socket, request) => {
    const room = new URL(request.url ?? '/', 'http://x').searchParams.get('room') ?? 'default';
    let members = rooms.get(room);
    if (members === undefined) rooms.set(room, (members = new Set()));
    members.add(socket);
    socket.on('message', (data, binary) => {
      for (const member of members) member.send(data, { binary });
    });
    socket.on('close', () => members.delete(socket));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, wss, port: (server.address() as AddressInfo).port }),
    ),
  );
}

describe('load generator against servers', () => {
  let hub: WshubServer;
  let hubServer: Server;
  let hubTarget: Target;
  let ws: Awaited<ReturnType<typeof startWsRooms>>;
  let wsTarget: Target;

  before(async () => {
    hub = createWshub({ allowUnauthenticated: true, messageValidation: false });
    hubServer = hub.createServer();
    await new Promise<void>((resolve) => hubServer.listen(0, '127.0.0.1', resolve));
    hubTarget = {
      host: '127.0.0.1',
      port: (hubServer.address() as AddressInfo).port,
      protocol: 'ws',
      path: '/ws',
    };
    ws = await startWsRooms();
    wsTarget = { host: '127.0.0.1', port: ws.port, protocol: 'ws', path: '/ws' };
  });

  after(async () => {
    await hub.shutdown({ timeout: 1000 });
    hubServer.closeAllConnections();
    await new Promise<void>((resolve) => hubServer.close(() => resolve()));
    for (const client of ws.wss.clients) client.terminate();
    await new Promise<void>((resolve) => ws.wss.close(() => resolve()));
    await new Promise<void>((resolve) => ws.server.close(() => resolve()));
  });

  for (const name of ['wshub', 'ws'] as const) {
    test(`fan-out to 20 subscribers at 200 msg/s delivers everything (${name})`, async () => {
      const result = await runFanout({
        target: name === 'wshub' ? hubTarget : wsTarget,
        rooms: [{ name: 'fan', subscribers: 20, publishers: 1 }],
        ratePerPublisher: 200,
        payloadBytes: 64,
        warmupMs: 200,
        durationMs: 1000,
      });
      assert.equal(result.connected, 21);
      assert.equal(result.connectFailures, 0);
      assert.ok(result.sent >= 195 && result.sent <= 205, `sent ${result.sent}`);
      assert.equal(result.expected, result.sent * 21);
      assert.equal(result.delivered, result.expected);
      assert.equal(result.lost, 0);
      assert.equal(result.latencyMs.samples, result.delivered);
      assert.ok(result.latencyMs.p50 > 0 && result.latencyMs.p50 <= result.latencyMs.p99);
      assert.ok(
        result.latencyMs.p99 <= result.latencyMs.max && result.latencyMs.max < 1000,
        JSON.stringify(result),
      );
      assert.ok(result.generatorCpu.seconds > 0 && result.generatorCpu.busyFraction < 0.9);
    });
  }

  test('slow subscribers are excluded from the expected deliveries and reported apart', async () => {
    const result = await runFanout({
      target: hubTarget,
      rooms: [{ name: 'slow', subscribers: 8, publishers: 1 }],
      ratePerPublisher: 100,
      payloadBytes: 32,
      warmupMs: 200,
      durationMs: 500,
      slowFraction: 0.25,
      workers: 1,
    });
    assert.equal(result.connected, 9);
    assert.equal(result.expected, result.sent * 7);
    assert.equal(result.delivered, result.expected);
    assert.equal(result.slow?.members, 2);
    assert.equal(result.slow?.closedByServer, 0);
    // light load: after draining, the paused members got every message too
    assert.equal(result.slow?.framesReceived, result.sentTotal * 2);
  });

  test('holdIdle keeps 200 connections open until release()', async () => {
    const before = hub.hub.getActiveConnectionCount();
    const hold = await holdIdle({ target: hubTarget, connections: 200 });
    assert.equal(hold.connected, 200);
    assert.equal(hold.failures, 0);
    assert.equal(hub.hub.getActiveConnectionCount(), before + 200);
    await hold.release();
    const deadline = Date.now() + 5000;
    while (hub.hub.getActiveConnectionCount() > before && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(hub.hub.getActiveConnectionCount(), before);
  });

  for (const name of ['wshub', 'ws'] as const) {
    test(`handshakes loop for 1 s with 8 connectors (${name})`, async () => {
      const result = await runHandshakes({
        target: name === 'wshub' ? hubTarget : wsTarget,
        concurrency: 8,
        durationMs: 1000,
      });
      assert.ok(result.upgrades > 0, JSON.stringify(result));
      assert.equal(result.failures, 0);
      assert.ok(result.perSec > 0);
      assert.ok(result.latencyMs.p50 > 0 && result.latencyMs.p50 <= result.latencyMs.p99);
    });
  }
});
