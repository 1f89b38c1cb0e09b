/**
 * The cross-node channel benchmark: two wshub nodes joined through a real
 * redis-server, subscribers on one and the API publisher on the other, in
 * a short run (and the same with Centrifugo's Redis engine when its binary
 * is built); and the report section it renders.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { centrifugoBinDir, centrifugoConfig } from '../../bench/peers/centrifugo.ts';
import { measureCluster, startChannelCluster } from '../../bench/scenarios/channel-cluster.ts';
import type { BenchResults, ChannelClusterCell } from '../../bench/results.ts';
import { summarize } from '../../bench/summary.ts';
import {
  CLUSTER_END_MARKER,
  CLUSTER_START_MARKER,
  compareClusters,
  renderClusterSection,
} from '../../bench/report/channel-cluster.ts';
import { CHANNEL_END_MARKER, CHANNEL_START_MARKER } from '../../bench/report/channels.ts';
import { END_MARKER, START_MARKER } from '../../bench/report/document.ts';
import { writeReport } from '../../bench/report.ts';
import { requireBinary } from '../helpers/binaries.ts';

const redisGate = requireBinary('redis-server', 'redis-server');

/** Whether a process with this pid still exists. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One short cross-node run on a fresh cluster of `target`, then everything stopped. */
async function crossNodeRun(target: string): Promise<void> {
  const cluster = await startChannelCluster(target, '0', () => {});
  const pids = [cluster.a.peer.pid, cluster.b.peer.pid, cluster.redis.pid];
  try {
    assert.notEqual(cluster.a.peer.port, cluster.b.peer.port);
    const m = await measureCluster(cluster, {
      subscribers: 40,
      payloadBytes: 64,
      rate: 50,
      timing: { warmupMs: 300, durationMs: 1_000 },
      serverCpuList: '0',
      workers: 1,
    });
    const r = m.result;
    assert.equal(r.connected, 40, 'every subscriber connected to node B');
    assert.equal(r.publish?.failed, 0, r.publish?.firstError);
    assert.ok((r.publish?.accepted ?? 0) >= 40, `node A accepted ${r.publish?.accepted} publications`);
    // The subscribers are on B only and the publisher on A: every push crossed Redis.
    assert.equal(r.lost, 0, 'every publication reached every subscriber on the other node');
    assert.ok(r.delivered > 0);
    for (const sec of [m.cpuSecA, m.cpuSecB, m.cpuSecRedis]) assert.ok(Number.isFinite(sec) && sec >= 0);
    assert.ok(m.cpuSecB > 0, 'node B did the fan-out work');
    assert.equal(m.cpuSec, m.cpuSecA + m.cpuSecB + m.cpuSecRedis);
  } finally {
    await cluster.stop();
  }
  assert.deepEqual(
    pids.filter((pid) => running(pid)),
    [],
    'both nodes and redis-server are gone',
  );
}

describe('cross-node channel run', redisGate, () => {
  test('wshub: two nodes through redis-server, subscribers on B, publisher on A, nothing lost', async () => {
    await crossNodeRun('wshub');
  });

  const built = existsSync(join(centrifugoBinDir(), 'centrifugo'));
  test(
    'centrifugo: two nodes with the Redis engine, the same run',
    { skip: built ? false : `no Centrifugo binary in ${centrifugoBinDir()}` },
    async () => {
      await crossNodeRun('centrifugo');
    },
  );
});

describe('Centrifugo configuration of a cluster node', () => {
  test('the Redis engine and history are set only when asked for', () => {
    const plain = centrifugoConfig(8000, 'k');
    assert.equal(plain['engine'], undefined);
    const ns = (config: Record<string, unknown>) =>
      (config['channel'] as { without_namespace: Record<string, unknown> }).without_namespace;
    assert.equal(ns(plain)['history_size'], 0);
    const node = centrifugoConfig(8000, 'k', {
      redisUrl: 'redis://127.0.0.1:6379',
      historySize: 100,
      historyTtlSec: 60,
    });
    assert.deepEqual(node['engine'], { type: 'redis', redis: { address: ['redis://127.0.0.1:6379'] } });
    assert.equal(ns(node)['history_size'], 100);
    assert.equal(ns(node)['history_ttl'], '60s');
  });
});

describe('cross-node channels report', () => {
  const s = (...values: number[]) => summarize(values);
  const cell = (target: string, max: number, usPerDelivery: number): ChannelClusterCell => ({
    target,
    history: false,
    subscribers: 1000,
    payloadBytes: 64,
    ratePerPublisher: 20,
    deliveriesPerSec: s(20_000),
    lost: s(0),
    p50Ms: s(1),
    p99Ms: s(4),
    cpuSecA: s(0.1),
    cpuSecB: s(0.5),
    cpuSecRedis: s(0.05),
    cpuUsPerDelivery: s(usPerDelivery),
    generatorLimited: false,
    maxSustainable: s(max * 0.9, max, max * 1.1),
    maxCpuUsPerDelivery: s(usPerDelivery),
    maxP50Ms: s(20),
    maxP99Ms: s(80),
    maxGeneratorBound: false,
    publishFailures: s(0),
    otherLoad: s(0.05, 0.1),
    searchSteps: [],
  });
  const results = (channelCluster: ChannelClusterCell[]): BenchResults => ({
    version: 1,
    command: 'npm run bench -- --scenarios channels-cluster',
    startedAt: '2026-12-02T15:00:00.000Z',
    durationSec: 600,
    quick: false,
    runs: 3,
    targets: [],
    scenarios: ['channels-cluster'],
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
    channelCluster,
    errors: [],
  });

  test('ratios: wshub / Centrifugo on the maximum, Centrifugo / wshub on CPU per delivery', () => {
    const [c] = compareClusters([cell('wshub', 300_000, 2), cell('centrifugo', 100_000, 5)]);
    assert.equal(c!.maxRatio, 3);
    assert.equal(c!.cpuAtMaxRatio, 2.5);
    assert.equal(c!.cpuAtFixedRatio, 2.5);
    const [missing] = compareClusters([cell('wshub', 300_000, 2)]);
    assert.ok(Number.isNaN(missing!.maxRatio));
  });

  test('renders command, machine, history and ratios; a run of this scenario alone leaves the other sections alone', () => {
    const r = results([cell('wshub', 300_000, 2), cell('centrifugo', 100_000, 5)]);
    const section = renderClusterSection(r);
    assert.match(section, /^## Channels across two nodes through Redis: wshub vs Centrifugo/);
    assert.match(section, /npm run bench -- --scenarios channels-cluster/);
    assert.match(section, /Test CPU, 2 cores/);
    assert.match(section, /History is \*\*off on both\*\*/);
    assert.match(section, /\| 3× \| 2\.5× \| 2\.5× \|/);
    assert.equal(renderClusterSection(results([])), '');

    const dir = mkdtempSync(join(tmpdir(), 'wshub-cluster-report-'));
    try {
      const doc = join(dir, 'BENCHMARKS.md');
      const svg = join(dir, 'chart.svg');
      const before =
        `# Benchmarks\n\n${START_MARKER}\n\nhub figures\n\n${END_MARKER}\n\n` +
        `${CHANNEL_START_MARKER}\n\nchannel figures\n\n${CHANNEL_END_MARKER}\n`;
      writeFileSync(doc, before);
      writeReport(r, doc, svg);
      const first = readFileSync(doc, 'utf8');
      assert.ok(first.startsWith(before.trimEnd()), 'the hub and channel sections are unchanged');
      assert.ok(first.includes(CLUSTER_START_MARKER) && first.includes(CLUSTER_END_MARKER));
      assert.equal(existsSync(svg), false, 'no chart from a run without hub scenarios');
      writeReport(results([cell('wshub', 100_000, 5), cell('centrifugo', 100_000, 5)]), doc, svg);
      const second = readFileSync(doc, 'utf8');
      assert.equal(second.split(CLUSTER_START_MARKER).length, 2, 'replaced, not appended');
      assert.match(second, /\| 1× \| 1× \| 1× \|/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
