// /metrics on the hub's own port: the bearer key it requires, the strict
// Prometheus text it answers with, and counters, gauges and histograms that
// move with real traffic; registering into a caller's prom-client registry
// leaves the global one alone.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, test } from 'node:test';
import { register as globalRegistry, Registry } from 'prom-client';
import { createWshub, registerWshubMetrics } from '../../../src/index.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import { FANOUT_HISTOGRAM, METRIC_SPECS, QUEUE_DELAY_HISTOGRAM } from '../../../src/metrics/catalog.ts';
import { histogramCount, parsePrometheusText, valueOf } from '../../helpers/prometheus-text.ts';
import {
  authHeaders,
  cleanupHubs,
  connectClient,
  parseErrorBody,
  rawHttp,
  SECRET,
  startHub,
  upgradeHead,
  waitFor,
  type RunningHub,
} from './harness.ts';

afterEach(cleanupHubs);

const METRICS_KEY = randomBytes(32).toString('base64url');

function scrape(hub: RunningHub, auth: string | null = `Bearer ${METRICS_KEY}`, method = 'GET') {
  let head = `${method} /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n`;
  if (auth !== null) head += `Authorization: ${auth}\r\n`;
  return rawHttp(hub.port, `${head}\r\n`);
}

async function families(hub: RunningHub) {
  const response = await scrape(hub);
  assert.equal(response.status, 200, response.body);
  assert.match(response.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(response.body ?? '');
}

describe('metrics endpoint', () => {
  test('metricsEnabled needs a metrics key of at least 32 bytes, not the token secret', () => {
    assert.throws(() => createWshub({ secret: SECRET, metricsEnabled: true }), /metricsKey/);
    assert.throws(
      () => createWshub({ secret: SECRET, metricsEnabled: true, metricsKey: 'short' }),
      /metricsKey: must be at least 32 bytes/,
    );
    assert.throws(
      () => createWshub({ secret: SECRET, metricsEnabled: true, metricsKey: SECRET }),
      /metricsKey: must differ from the token secret/,
    );
  });

  test('off by default: /metrics is not served', async () => {
    const hub = await startHub();
    const response = await scrape(hub);
    assert.equal(response.status, 404);
  });

  test('refuses a scraper without the key (401), a wrong key and other methods (405)', async () => {
    const hub = await startHub({ metricsEnabled: true, metricsKey: METRICS_KEY });
    for (const auth of [null, 'Bearer wrong-key-wrong-key-wrong-key-wrong', `Basic ${METRICS_KEY}`]) {
      const response = await scrape(hub, auth);
      assert.equal(response.status, 401, String(auth));
      assert.equal(parseErrorBody(response.body).error.code, 'METRICS_UNAUTHORIZED');
      assert.doesNotMatch(response.body ?? '', /wshub_/);
    }
    const post = await scrape(hub, `Bearer ${METRICS_KEY}`, 'POST');
    assert.equal(post.status, 405);
  });

  test('counters, gauges and the fan-out histogram follow real traffic', async () => {
    const hub = await startHub({ metricsEnabled: true, metricsKey: METRICS_KEY });
    const before = await families(hub);
    assert.equal(valueOf(before, 'wshub_connections'), 0);
    assert.equal(valueOf(before, 'wshub_joins_accepted_total'), 0);
    assert.equal(histogramCount(before, 'wshub_broadcast_fanout_seconds'), 0);
    // Every exposed family is in the catalog docs/OPERATIONS.md is checked against.
    const known = new Set([
      ...METRIC_SPECS.map((m) => m.name),
      FANOUT_HISTOGRAM.name,
      QUEUE_DELAY_HISTOGRAM.name,
    ]);
    for (const family of before.values()) assert.ok(known.has(family.name), family.name);

    const clients = [];
    for (let i = 0; i < 3; i++)
      clients.push(await connectClient(hub.url('/ws?room=m'), { headers: await authHeaders() }));
    await clients[0]!.conn.sendText('hello');
    for (const c of clients) assert.equal((await c.queue.next()).data.toString(), 'hello');

    const during = await families(hub);
    assert.equal(valueOf(during, 'wshub_connections'), 3);
    assert.equal(valueOf(during, 'wshub_rooms'), 1);
    assert.equal(valueOf(during, 'wshub_joins_accepted_total'), 3);
    assert.equal(valueOf(during, 'wshub_upgrade_auth_successes_total'), 3);
    assert.equal(valueOf(during, 'wshub_broadcast_deliveries_attempted_total'), 3);
    assert.equal(valueOf(during, 'wshub_broadcast_deliveries_enqueued_total'), 3);
    assert.ok(histogramCount(during, 'wshub_broadcast_fanout_seconds') >= 1);

    // A refused upgrade moves the security counter.
    const refused = await rawHttp(hub.port, upgradeHead(hub.port, { path: '/ws?room=m' }));
    assert.equal(refused.status, 401);
    for (const c of clients) c.conn.close();
    await waitFor(() => hub.ws.hub.getActiveConnectionCount() === 0, 3_000, 'clients gone');
    const after = await families(hub);
    assert.equal(valueOf(after, 'wshub_connections'), 0);
    assert.equal(valueOf(after, 'wshub_upgrade_security_rejections_total'), 1);
  });

  test('the send-queue delay histogram counts messages that waited for a slow reader', async () => {
    const hub = await startHub({ metricsEnabled: true, metricsKey: METRICS_KEY, sendQueueSize: 1024 });
    const socket = connect(hub.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(upgradeHead(hub.port, { path: '/ws?room=slow', headers: await authHeaders() }));
    await waitFor(() => hub.ws.hub.getActiveConnectionCount() === 1, 3_000, 'the slow reader joins');
    socket.pause();
    // Far more than the socket buffers hold: the rest waits in the send queue.
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    // One broadcast per turn (a turn's broadcasts to a room go out as one batch).
    for (let i = 0; i < 48; i++) {
      hub.ws.hub.broadcastRoom('slow', Opcode.BINARY, chunk);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    let received = 0;
    socket.on('data', (d: Buffer) => (received += d.length));
    socket.resume();
    await waitFor(() => received >= 48 * chunk.length, 10_000, 'every byte read');
    const seen = await families(hub);
    const queued = histogramCount(seen, 'wshub_send_queue_delay_seconds');
    assert.ok(queued > 0 && queued <= 48, `queued messages observed: ${queued}`);
    const sum = seen.get('wshub_send_queue_delay_seconds')!.samples.find((s) => s.name.endsWith('_sum'))!;
    assert.ok(sum.value > 0, 'they waited a measurable time');
    socket.destroy();
  });
});

describe('registerWshubMetrics', () => {
  test("fills the caller's registry and leaves prom-client's global registry alone", async () => {
    const hub = await startHub();
    const registry = registerWshubMetrics(hub.ws, new Registry());
    const text = await registry.metrics();
    const parsed = parsePrometheusText(text);
    assert.equal(valueOf(parsed, 'wshub_connections'), 0);
    assert.ok(parsed.has('wshub_send_queue_delay_seconds'));
    // Channels are off in this hub: their metrics are not registered.
    assert.ok(!parsed.has('wshub_channel_connections'));
    assert.ok(!(await globalRegistry.metrics()).includes('wshub_'));
    assert.throws(() => registerWshubMetrics(hub.ws, registry), /already been registered/);
  });
});
