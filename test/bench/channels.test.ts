/**
 * The channel benchmark: the push scanner and publication template of the
 * load generator, the server-API publisher, a whole channel fan-out run
 * against a small Centrifuge-protocol server written here (batched frames,
 * pings inside batches, a strict pong check, and a lossy variant), the
 * channels report section, and Centrifugo itself when its binary is built.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  PublicationTemplate,
  PushScanner,
  STAMP_DIGITS,
  replyKind,
} from '../../bench/loadgen/channel-frames.ts';
import { HttpPublisher } from '../../bench/loadgen/http-publisher.ts';
import { runFanout, type Target } from '../../bench/loadgen/index.ts';
import { centrifugoBinDir, startCentrifugo } from '../../bench/peers/centrifugo.ts';
import { startPeer } from '../../bench/peer-process.ts';
import { checkPublishApi } from '../../bench/scenarios/channel-fanout.ts';
import type { BenchResults, ChannelCell } from '../../bench/results.ts';
import { summarize } from '../../bench/summary.ts';
import {
  CHANNEL_END_MARKER,
  CHANNEL_START_MARKER,
  compareChannels,
  renderChannelSection,
} from '../../bench/report/channels.ts';
import { END_MARKER, START_MARKER } from '../../bench/report/document.ts';
import { writeReport } from '../../bench/report.ts';

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

const pushLine = (channel: string, stampUs: number, filler = 'xx'): string =>
  `{"push":{"channel":"${channel}","pub":{"data":{"t":${stampUs},"p":"${filler}"}}}}`;

/** Feeds `message` to a fresh scanner in random pieces (from a larger buffer, as the read buffer does). */
function scanInPieces(message: Buffer, rand: () => number, maxPiece: number): PushScanner {
  const scanner = new PushScanner();
  const padded = Buffer.concat([Buffer.from('zz{}"pub":'), message, Buffer.from('"pub":{}')]);
  let at = 10;
  const end = 10 + message.length;
  while (at < end) {
    const next = Math.min(end, at + 1 + Math.floor(rand() * maxPiece));
    scanner.push(padded, at, next);
    at = next;
  }
  return scanner;
}

describe('push scanner', () => {
  test('counts pushes, finds exact ping lines and the first stamp whatever the piece boundaries', () => {
    const rand = prng(5);
    for (let round = 0; round < 300; round++) {
      const lines: string[] = [];
      let pubs = 0;
      let ping = false;
      let first = NaN;
      const n = 1 + Math.floor(rand() * 12);
      for (let i = 0; i < n; i++) {
        const kind = rand();
        if (kind < 0.15) {
          lines.push('{}');
          ping = true;
        } else if (kind < 0.25) {
          // Replies and pushes holding `{}` inside are not pings.
          lines.push(
            rand() < 0.5 ? '{"id":2,"subscribe":{}}' : '{"push":{"channel":"c","join":{"info":{}}}}',
          );
        } else {
          const stamp = 1_700_000_000_000_000 + Math.floor(rand() * 1e12);
          if (pubs === 0) first = stamp / 1000;
          pubs++;
          lines.push(pushLine('bench', stamp, 'x'.repeat(Math.floor(rand() * 40))));
        }
      }
      const message = Buffer.from(lines.join('\n'));
      for (const maxPiece of [1, 3, 7, 64, Number.POSITIVE_INFINITY]) {
        const scanner = scanInPieces(message, rand, maxPiece);
        const where = `round ${round}, pieces ≤ ${maxPiece}: ${JSON.stringify(lines)}`;
        assert.equal(scanner.pubs, pubs, where);
        assert.equal(scanner.ping, ping, where);
        // The stamp is read when the first push's stamp lies in one piece with its "pub":.
        if (maxPiece === Number.POSITIVE_INFINITY) assert.equal(scanner.firstStampMs, first, where);
        else assert.ok(Number.isNaN(scanner.firstStampMs) || scanner.firstStampMs === first, where);
      }
    }
  });

  test('reset forgets the previous message', () => {
    const scanner = new PushScanner();
    const one = Buffer.from(`${pushLine('a', 1_700_000_000_000_000)}\n{}`);
    scanner.push(one, 0, one.length);
    assert.equal(scanner.pubs, 1);
    assert.equal(scanner.ping, true);
    scanner.reset();
    const two = Buffer.from('{"id":2,"subscribe":{}}');
    scanner.push(two, 0, two.length);
    assert.equal(scanner.pubs, 0);
    assert.equal(scanner.ping, false);
    assert.ok(Number.isNaN(scanner.firstStampMs));
  });

  test('tells a reply to a command id from an error reply and from other messages', () => {
    const kind = (text: string, id: number) => replyKind(Buffer.from(text), Buffer.byteLength(text), id);
    assert.equal(kind('{"id":1,"connect":{"client":"x","version":"1"}}', 1), 'ok');
    assert.equal(kind('{"id":2,"subscribe":{}}', 2), 'ok');
    assert.equal(kind('{"id":2,"error":{"code":103,"message":"permission denied"}}', 2), 'error');
    assert.equal(kind('{"id":12,"subscribe":{}}', 1), 'other');
    assert.equal(kind('{}', 1), 'other');
    assert.equal(kind(pushLine('a', 1_700_000_000_000_000), 2), 'other');
    // A ping batched before the reply in one frame (a server flushing its queue at once).
    assert.equal(kind('{}\n{"id":2,"subscribe":{}}', 2), 'ok');
    assert.equal(kind('{}\n{"id":2,"error":{"code":103,"message":"permission denied"}}', 2), 'error');
    assert.equal(kind('{}\n{"id":12,"subscribe":{}}', 1), 'other');
  });
});

describe('publication template', () => {
  test('the data is exactly the payload size and carries the send time in µs', () => {
    for (const size of [30, 64, 1024]) {
      const template = new PublicationTemplate('bench', size);
      const body = template.stamped(1_796_197_065_847.123);
      const parsed = JSON.parse(body.toString()) as { channel: string; data: { t: number; p: string } };
      assert.equal(parsed.channel, 'bench');
      assert.equal(JSON.stringify(parsed.data).length, size);
      assert.equal(parsed.data.t, 1_796_197_065_847_123);
      assert.equal(String(parsed.data.t).length, STAMP_DIGITS);
    }
    assert.throws(() => new PublicationTemplate('bench', 64).stamped(12), RangeError);
  });
});

/** A tiny HTTP server answering each request with `answer(req, body)`. */
async function apiServer(
  answer: (req: IncomingMessage, body: string, res: ServerResponse) => void,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => answer(req, body, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

async function settled(publisher: HttpPublisher, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (publisher.pending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(publisher.pending, 0, 'requests still pending');
}

describe('server API publisher', () => {
  test('counts accepted publications, error replies, refusals and the pending cap', async () => {
    const seen: Array<{ key: string | undefined; body: string }> = [];
    let mode: 'ok' | 'error' | '401' | 'hold' = 'ok';
    const held: ServerResponse[] = [];
    const { server, port } = await apiServer((req, body, res) => {
      seen.push({ key: req.headers['x-api-key'] as string | undefined, body });
      if (mode === 'hold') {
        held.push(res);
        return;
      }
      if (mode === '401') res.writeHead(401).end();
      else
        res
          .writeHead(200)
          .end(mode === 'ok' ? '{"result":{}}' : '{"error":{"code":107,"message":"bad request"}}');
    });
    const publisher = new HttpPublisher({
      host: '127.0.0.1',
      port,
      apiKey: 'k-123',
      channel: 'news',
      payloadBytes: 64,
      connections: 2,
      maxPending: 3,
    });
    try {
      const now = Date.now();
      for (let i = 0; i < 3; i++) publisher.publish(now + i);
      await settled(publisher);
      assert.equal(publisher.accepted, 3);
      assert.equal(publisher.failed, 0);
      assert.equal(seen[0]!.key, 'k-123');
      const first = JSON.parse(seen[0]!.body) as { channel: string; data: { t: number } };
      assert.equal(first.channel, 'news');
      assert.equal(first.data.t, now * 1000);

      mode = 'error';
      publisher.publish(now);
      await settled(publisher);
      assert.equal(publisher.failed, 1);
      assert.match(publisher.firstError ?? '', /error reply/);

      mode = '401';
      publisher.publish(now);
      await settled(publisher);
      assert.equal(publisher.failed, 2);

      mode = 'hold';
      for (let i = 0; i < 5; i++) publisher.publish(now);
      // Three may wait for an answer; the other two are counted as failed at once.
      assert.equal(publisher.pending, 3);
      assert.equal(publisher.failed, 4);
      const deadline = Date.now() + 5000;
      while (held.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      for (const res of held) res.writeHead(200).end('{"result":{}}');
      // The third waits behind the agent's two sockets and is answered once one is free.
      while (held.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      held[2]?.writeHead(200).end('{"result":{}}');
      await settled(publisher);
      assert.equal(publisher.accepted, 6);
    } finally {
      publisher.close();
      server.closeAllConnections();
      server.close();
    }
  });
});

/**
 * A Centrifuge-protocol server small enough to read: anonymous connect,
 * subscribe to any channel, `POST /api/publish` with a key, pushes batched
 * per event-loop turn into newline-separated frames, pings (`{}`) every
 * `pingMs` inside those batches, and Centrifugo's strictness about pongs (a
 * `{}` nobody asked for closes with 3501). `dropEvery` > 0 skips that
 * subscriber's every n-th push (a lossy server).
 */
class FakeChannelServer {
  readonly http: Server;
  readonly wss: WebSocketServer;
  port = 0;
  pings = 0;
  pongs = 0;
  badPongs = 0;
  private readonly subs = new Map<string, Set<WebSocket>>();
  private readonly outbox = new Map<WebSocket, string[]>();
  private readonly awaitingPong = new Set<WebSocket>();
  private flushQueued = false;
  private pushCount = 0;
  private pingTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly apiKey: string,
    private readonly options: { pingMs: number; dropEvery: number },
  ) {
    this.http = createServer((req, res) => this.api(req, res));
    this.wss = new WebSocketServer({ server: this.http, path: '/connection/websocket' });
    this.wss.on('connection', (ws) => this.client(ws));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.http.listen(0, '127.0.0.1', resolve));
    this.port = (this.http.address() as AddressInfo).port;
    this.pingTimer = setInterval(() => {
      for (const ws of this.wss.clients) {
        this.awaitingPong.add(ws);
        this.pings++;
        this.enqueue(ws, '{}');
      }
    }, this.options.pingMs);
  }

  async close(): Promise<void> {
    clearInterval(this.pingTimer);
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private client(ws: WebSocket): void {
    ws.on('message', (data: Buffer) => {
      for (const line of data.toString('utf8').split('\n')) {
        if (line === '{}') {
          if (this.awaitingPong.delete(ws)) this.pongs++;
          else {
            this.badPongs++;
            ws.close(3501, 'bad request');
          }
          continue;
        }
        const command = JSON.parse(line) as { id: number; connect?: object; subscribe?: { channel: string } };
        if (command.connect)
          this.enqueue(
            ws,
            `{"id":${command.id},"connect":{"client":"c","version":"0","ping":25,"pong":true}}`,
          );
        else if (command.subscribe) {
          const channel = command.subscribe.channel;
          if (!this.subs.has(channel)) this.subs.set(channel, new Set());
          this.subs.get(channel)!.add(ws);
          this.enqueue(ws, `{"id":${command.id},"subscribe":{}}`);
        }
      }
    });
    ws.on('close', () => {
      for (const set of this.subs.values()) set.delete(ws);
      this.outbox.delete(ws);
      this.awaitingPong.delete(ws);
    });
  }

  private api(req: IncomingMessage, res: ServerResponse): void {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      if (req.url !== '/api/publish' || req.headers['x-api-key'] !== this.apiKey) {
        res.writeHead(401).end();
        return;
      }
      const { channel, data } = JSON.parse(body) as { channel: string; data: unknown };
      const push = `{"push":{"channel":${JSON.stringify(channel)},"pub":{"data":${JSON.stringify(data)}}}}`;
      for (const ws of this.subs.get(channel) ?? []) {
        this.pushCount++;
        if (this.options.dropEvery > 0 && this.pushCount % this.options.dropEvery === 0) continue;
        this.enqueue(ws, push);
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"result":{}}');
    });
  }

  private enqueue(ws: WebSocket, line: string): void {
    const lines = this.outbox.get(ws) ?? [];
    lines.push(line);
    this.outbox.set(ws, lines);
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      for (const [client, queued] of this.outbox) if (queued.length > 0) client.send(queued.join('\n'));
      this.outbox.clear();
    });
  }
}

describe('channel fan-out run against a Centrifuge-protocol server', () => {
  const target = (server: FakeChannelServer): Target => ({
    host: '127.0.0.1',
    port: server.port,
    protocol: 'centrifuge',
    path: '/connection/websocket',
    channel: { apiKey: server.apiKey },
  });

  test('delivers every publication to every subscriber, answering exactly the pings sent', async () => {
    const server = new FakeChannelServer('key-1', { pingMs: 150, dropEvery: 0 });
    await server.listen();
    try {
      const result = await runFanout({
        target: target(server),
        rooms: [{ name: 'news', subscribers: 30, publishers: 1 }],
        ratePerPublisher: 100,
        payloadBytes: 64,
        warmupMs: 200,
        durationMs: 1000,
        workers: 1,
      });
      assert.equal(result.connected, 30);
      assert.equal(result.connectFailures, 0);
      assert.equal(result.publish?.failed, 0);
      assert.ok(result.sent >= 95 && result.sent <= 101, `sent ${result.sent}`);
      assert.equal(result.publish?.accepted, result.sentTotal);
      assert.equal(result.lost, 0);
      // In-window deliveries are placed by their frame's first stamp, so a busy machine's bigger
      // batches move a few across the window's edges; loss above is counted exactly.
      assert.ok(
        Math.abs(result.delivered - result.sent * 30) <= result.sent * 3,
        `delivered ${result.delivered}`,
      );
      assert.ok(result.latencyMs.samples === result.delivered && result.latencyMs.p99 < 1000);
      assert.ok(server.pings > 0, 'the server sent pings');
      assert.equal(server.badPongs, 0);
      // The last rounds of pings may still be in flight when the run ends.
      assert.ok(server.pongs >= server.pings - 2 * 30, `${server.pongs} pongs for ${server.pings} pings`);
    } finally {
      await server.close();
    }
  });

  test('a server that drops pushes shows as loss, and a wrong API key as failed publications', async () => {
    const server = new FakeChannelServer('key-2', { pingMs: 10_000, dropEvery: 97 });
    await server.listen();
    try {
      const lossy = await runFanout({
        target: target(server),
        rooms: [{ name: 'lossy', subscribers: 10, publishers: 1 }],
        ratePerPublisher: 50,
        payloadBytes: 64,
        warmupMs: 100,
        durationMs: 600,
        workers: 1,
      });
      const pushes = lossy.sentTotal * 10;
      assert.equal(lossy.lost, Math.floor(pushes / 97));
      const refused = await runFanout({
        target: { ...target(server), channel: { apiKey: 'wrong' } },
        rooms: [{ name: 'refused', subscribers: 5, publishers: 1 }],
        ratePerPublisher: 20,
        payloadBytes: 64,
        warmupMs: 100,
        durationMs: 500,
        workers: 1,
      });
      assert.equal(refused.publish?.accepted, 0);
      assert.equal(refused.publish?.failed, refused.sentTotal);
      assert.match(refused.publish?.firstError ?? '', /HTTP 401/);
      assert.equal(refused.lost, refused.sentTotal * 5);
    } finally {
      await server.close();
    }
  });
});

describe('channels report', () => {
  const s = (...values: number[]) => summarize(values);
  const cell = (
    target: string,
    subscribers: number,
    max: number,
    perCpu: number,
    bound = false,
  ): ChannelCell => ({
    target,
    subscribers,
    payloadBytes: 64,
    ratePerPublisher: 100_000 / subscribers,
    deliveriesPerSec: s(100_000),
    lost: s(0),
    p50Ms: s(1),
    p99Ms: s(4),
    serverCpuSec: s(0.3),
    deliveriesPerCpuSec: s(perCpu),
    generatorLimited: false,
    maxSustainable: s(max * 0.9, max, max * 1.1),
    maxDeliveriesPerCpuSec: s(perCpu),
    maxP50Ms: s(20),
    maxP99Ms: s(80),
    maxGeneratorBound: bound,
    publishFailures: s(0),
    searchSteps: [],
    otherLoad: s(0.05, 0.1),
  });
  const results = (channels: ChannelCell[]): BenchResults => ({
    version: 1,
    command: 'npm run bench -- --scenarios channels',
    startedAt: '2026-12-02T09:00:00.000Z',
    durationSec: 600,
    quick: false,
    runs: 3,
    targets: [],
    scenarios: ['channels'],
    machine: {
      cpuModel: 'Test CPU',
      cores: 2,
      ramBytes: 8e9,
      node: 'v20.0.0',
      kernel: 'Linux 6',
      loadBefore: 0.5,
      loadAfter: 0.7,
      pinned: true,
    },
    notes: [],
    fanout: [],
    manyRooms: [],
    idle: [],
    handshakes: [],
    slow: [],
    channels,
    errors: [],
  });

  test('judges each cell on both ratios, and a generator-bound figure as not determined', () => {
    const [met, notMet] = compareChannels([
      cell('wshub', 1000, 3.2e6, 3.5e6),
      cell('centrifugo', 1000, 1e6, 1e6),
      cell('wshub', 5000, 4e5, 2e6),
      cell('centrifugo', 5000, 1e5, 1e6),
    ]);
    assert.equal(met!.met, true);
    assert.equal(notMet!.met, false, 'per CPU-second is only 2×');
    const [bound] = compareChannels([
      cell('wshub', 1000, 4e6, 4e6),
      cell('centrifugo', 1000, 1e6, 1e6, true),
    ]);
    assert.equal(bound!.met, null);
    const [missing] = compareChannels([cell('centrifugo', 1000, 1e6, 1e6)]);
    assert.equal(missing!.met, null);
    assert.match(missing!.why, /wshub not measured/);
  });

  test('renders the section with the command, machine and verdict; a channels-only report leaves the hub section alone', () => {
    const r = results([cell('wshub', 1000, 3.2e6, 3.5e6), cell('centrifugo', 1000, 1e6, 1e6)]);
    const section = renderChannelSection(r);
    assert.match(section, /^## Channels: wshub vs Centrifugo/);
    assert.match(section, /npm run bench -- --scenarios channels/);
    assert.match(section, /Test CPU, 2 cores/);
    assert.match(section, /3\.2×/);
    assert.match(section, /\*\*met\*\*/);
    assert.equal(renderChannelSection(results([])), '');

    const dir = mkdtempSync(join(tmpdir(), 'wshub-channel-report-'));
    try {
      const doc = join(dir, 'BENCHMARKS.md');
      const svg = join(dir, 'chart.svg');
      const hub = `# Benchmarks\n\n${START_MARKER}\n\nhub figures\n\n${END_MARKER}\n`;
      writeFileSync(doc, hub);
      writeReport(r, doc, svg);
      const first = readFileSync(doc, 'utf8');
      assert.ok(first.startsWith(hub.trimEnd()), 'the hub section is unchanged');
      assert.ok(first.includes(CHANNEL_START_MARKER) && first.includes(CHANNEL_END_MARKER));
      assert.equal(existsSync(svg), false, 'no chart from a channels-only run');
      // A second report replaces the section instead of appending another one.
      writeReport(results([cell('wshub', 1000, 1e6, 1e6), cell('centrifugo', 1000, 1e6, 1e6)]), doc, svg);
      const second = readFileSync(doc, 'utf8');
      assert.equal(second.split(CHANNEL_START_MARKER).length, 2);
      assert.match(second, /\*\*not met\*\*/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('wshub channel peer', () => {
  test('serves the channel protocol and the server API with the key it is given, without loss', async () => {
    const apiKey = 'bench-key-'.repeat(4);
    const peer = await startPeer({
      name: 'wshub-channels',
      cpuList: '0',
      env: { ...process.env, WSHUB_BENCH_API_KEY: apiKey },
    });
    try {
      await checkPublishApi(peer.port, { apiKey });
      await assert.rejects(checkPublishApi(peer.port, { apiKey: 'wrong' }), /HTTP 401/);
      const result = await runFanout({
        target: {
          host: '127.0.0.1',
          port: peer.port,
          protocol: 'centrifuge',
          path: '/connection/websocket',
          channel: { apiKey },
        },
        rooms: [{ name: 'peer-test', subscribers: 20, publishers: 1 }],
        ratePerPublisher: 50,
        payloadBytes: 64,
        warmupMs: 200,
        durationMs: 800,
        workers: 1,
      });
      assert.equal(result.connected, 20);
      assert.equal(result.lost, 0);
      assert.equal(result.publish?.failed, 0);
      assert.ok((result.publish?.accepted ?? 0) > 0);
    } finally {
      await peer.stop();
    }
    assert.equal(peer.alive(), false);
  });
});

// Centrifugo itself, when the benchmark has built it (npm run bench -- --scenarios channels).
const centrifugoBuilt = existsSync(join(centrifugoBinDir(), 'centrifugo'));
describe('Centrifugo peer', () => {
  let stopAll: Array<() => Promise<void>> = [];
  before(() => {
    stopAll = [];
  });
  after(async () => {
    for (const stop of stopAll) await stop();
  });

  test(
    'starts pinned with its API key, serves a channel fan-out without loss, and stops',
    { skip: centrifugoBuilt ? false : `no Centrifugo binary in ${centrifugoBinDir()}` },
    async () => {
      const server = await startCentrifugo('0', () => {});
      stopAll.push(() => server.stop());
      await checkPublishApi(server.peer.port, server.access);
      await assert.rejects(checkPublishApi(server.peer.port, { apiKey: 'wrong' }), /HTTP 401/);
      const result = await runFanout({
        target: {
          host: '127.0.0.1',
          port: server.peer.port,
          protocol: 'centrifuge',
          path: server.wsPath,
          channel: server.access,
        },
        rooms: [{ name: 'peer-test', subscribers: 20, publishers: 1 }],
        ratePerPublisher: 50,
        payloadBytes: 64,
        warmupMs: 200,
        durationMs: 800,
        workers: 1,
      });
      assert.equal(result.connected, 20);
      assert.equal(result.lost, 0);
      assert.equal(result.publish?.failed, 0);
      assert.ok(server.peer.cpuSeconds() > 0);
      await server.stop();
      assert.equal(server.peer.alive(), false);
    },
  );
});
