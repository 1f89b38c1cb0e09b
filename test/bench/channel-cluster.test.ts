/**
 * The cross-node channel benchmark: two wshub nodes joined through a real
 * redis-server, subscribers on one and the API publisher on the other, in
 * a short run with history off and with history kept in Redis (read back
 * from the stream), and the same with Centrifugo's Redis engine when its
 * binary is built; the peer's history flags; and the report section it
 * renders.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { centrifugoBinDir, centrifugoConfig } from '../../bench/peers/centrifugo.ts';
import {
  CLUSTER_HISTORY,
  checkHistoryKept,
  historyStreamLength,
  measureCluster,
  startChannelCluster,
} from '../../bench/scenarios/channel-cluster.ts';
import type { BenchResults, ChannelClusterCell } from '../../bench/results.ts';
import { summarize } from '../../bench/summary.ts';
import {
  CLUSTER_END_MARKER,
  CLUSTER_START_MARKER,
  compareClusters,
  historyCosts,
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

/**
 * One short cross-node run on a fresh cluster of `target` (with
 * `historySize` > 0: history kept in its Redis), then everything stopped.
 */
async function crossNodeRun(target: string, historySize = 0): Promise<void> {
  const cluster = await startChannelCluster(target, '0', () => {}, historySize);
  const pids = [cluster.a.peer.pid, cluster.b.peer.pid, cluster.redis.pid];
  try {
    assert.equal(cluster.historySize, historySize);
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
    const accepted = r.publish?.accepted ?? 0;
    if (historySize > 0) {
      // The last historySize publications (or all, if fewer) are in the channel's stream.
      assert.equal(m.historyLength, Math.min(historySize, accepted), 'the stream holds the history');
    } else {
      assert.equal(m.historyLength, undefined);
      assert.equal(await historyStreamLength(cluster.redis.url, 'xnode-1'), 0, 'no stream without history');
    }
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

  test('wshub with history in Redis: the same run, and the channel stream holds what was published', async () => {
    // 40 pub/s for 1.3 s: more than a history of 20, so the stream is capped at exactly 20.
    await crossNodeRun('wshub', 20);
  });

  const built = existsSync(join(centrifugoBinDir(), 'centrifugo'));
  test(
    'centrifugo: two nodes with the Redis engine, the same run',
    { skip: built ? false : `no Centrifugo binary in ${centrifugoBinDir()}` },
    async () => {
      await crossNodeRun('centrifugo');
    },
  );
  test(
    'centrifugo with history in Redis: the same run, and its channel stream holds what was published',
    { skip: built ? false : `no Centrifugo binary in ${centrifugoBinDir()}` },
    async () => {
      await crossNodeRun('centrifugo', 20);
    },
  );
});

describe('history check', () => {
  test('a stream shorter than min(history size, accepted) fails the run', () => {
    assert.doesNotThrow(() => checkHistoryKept('wshub', 100, 52, 52));
    assert.doesNotThrow(() => checkHistoryKept('wshub', 100, 500, 100));
    assert.throws(
      () => checkHistoryKept('wshub', 100, 500, 0),
      /wshub: history on, but .* holds 0 .* 500 accepted/,
    );
    assert.throws(() => checkHistoryKept('centrifugo', 100, 52, 51), /expected 52/);
    assert.equal(CLUSTER_HISTORY.size, 100);
    assert.equal(CLUSTER_HISTORY.ttlSec, 300);
  });
});

/** Runs the wshub-channels peer with `args`; resolves with its exit code and stderr once it stops by itself. */
async function peerExit(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', 'bench/peers/wshub-channels.ts', '--port', '0', ...args],
    {
      env: { ...process.env, WSHUB_BENCH_API_KEY: 'k'.repeat(40) },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  const [code] = (await once(proc, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stderr };
}

describe('wshub-channels history flags', () => {
  test('a history size that is not an integer from 1 to 100000 is a usage error (exit code 2)', async () => {
    for (const value of ['abc', '0', '100001', '-5', '1.5']) {
      const { code, stderr } = await peerExit(['--broker', 'redis://127.0.0.1:1', `--history=${value}`]);
      assert.equal(code, 2, value);
      assert.match(stderr, /--history takes an integer from 1 to 100000/);
    }
    const ttl = await peerExit(['--broker', 'redis://127.0.0.1:1', '--history', '10', '--history-ttl', 'x']);
    assert.equal(ttl.code, 2);
    assert.match(ttl.stderr, /--history-ttl takes an integer/);
  });

  test('history without a redis:// broker is a usage error (exit code 2)', async () => {
    for (const args of [
      ['--history', '10'],
      ['--broker', 'nats://127.0.0.1:1', '--history', '10'],
    ]) {
      const { code, stderr } = await peerExit(args);
      assert.equal(code, 2, args.join(' '));
      assert.match(stderr, /--history needs --broker redis:\/\//);
    }
  });
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
  const cell = (target: string, max: number, usPerDelivery: number, history = false): ChannelClusterCell => ({
    target,
    history,
    ...(history ? { historySize: 100, historyTtlSec: 300 } : {}),
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
    assert.match(section, /\| off +\| 1,000 × 64 B +\| +3× \| +2\.5× \| +2\.5× \|/);
    assert.doesNotMatch(section, /history on \/ history off/, 'no cost table without history-on cells');
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
      assert.match(second, /\| +1× \| +1× \| +1× \|/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('history on and off: ratios per setting, the history setting described, and what history costs each target', () => {
    const cells = [
      cell('wshub', 300_000, 2),
      cell('centrifugo', 100_000, 5),
      cell('wshub', 150_000, 4, true),
      cell('centrifugo', 50_000, 8, true),
    ];
    const comparisons = compareClusters(cells);
    assert.deepEqual(
      comparisons.map((c) => [c.history, c.label, c.maxRatio, c.cpuAtMaxRatio]),
      [
        [false, '1,000 × 64 B', 3, 2.5],
        [true, '1,000 × 64 B', 3, 2],
      ],
    );
    assert.deepEqual(
      historyCosts(cells).map((c) => [c.target, c.maxRatio, c.cpuAtMaxRatio, c.cpuAtFixedRatio]),
      [
        ['wshub', 0.5, 2, 2],
        ['centrifugo', 0.5, 1.6, 1.6],
      ],
    );
    assert.deepEqual(historyCosts([cell('wshub', 1, 1, true)]), [], 'no cost without the history-off cell');
    const section = renderClusterSection(results(cells));
    assert.doesNotMatch(section, /off on both/);
    assert.match(section, /History \*\*on\*\* keep the last 100 publications .* for 300 s/);
    assert.match(section, /--history 100 --history-ttl 300/);
    assert.match(section, /`history_size: 100`, `history_ttl: 300s`, `allow_recovery: true`/);
    assert.match(section, /read back from Redis \(XLEN\)/);
    assert.match(section, /\| on +\| 1,000 × 64 B +\| +3× \| +2× \| +2× \|/);
    assert.match(section, /history on \/ history off/);
    assert.match(section, /\| wshub +\| 1,000 × 64 B +\| +0\.5× \| +2× \| +2× \|/);
    assert.match(section, /\| centrifugo +\| 1,000 × 64 B +\| +0\.5× \| +1\.6× \| +1\.6× \|/);
    // The figures table has one row per target and setting.
    assert.equal(section.match(/^\| (wshub|centrifugo) +\| (on|off) /gm)?.length, 4);
  });
});
