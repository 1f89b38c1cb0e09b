/**
 * The workers scenario: the CPU accounting and the verdict of what was
 * full, the paired scaling factors, and a brief run of the real
 * `wshub serve --workers 2` (IPC relay) whose figures must be present and
 * plausible — every process of the tree read, both workers busy in the
 * fan-out window, idle memory summed over the tree.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ScenarioContext } from '../../bench/scenarios/context.ts';
import { runWorkersScenario, scalingOf, type RunFigures } from '../../bench/scenarios/workers.ts';
import {
  cpusOf,
  limiters,
  shareBetween,
  type CpuShare,
  type CpuSnapshot,
} from '../../bench/scenarios/workers-cpu.ts';
import { formatFactor, limiterLabel, renderWorkersTables } from '../../bench/scenarios/workers-report.ts';

function share(partial: Partial<CpuShare>): CpuShare {
  return { spanSec: 1, primary: 0, workers: [], broker: 0, generator: 0, others: 0, cores: 2, ...partial };
}

describe('workers scenario: CPU accounting', () => {
  test('shareBetween turns two snapshots into cores per process, others from the busy cores', () => {
    const from: CpuSnapshot = {
      at: 1_000,
      primary: 1,
      workers: new Map([
        [20, 2],
        [10, 5],
      ]),
      broker: 0.5,
      coresBusy: 100,
    };
    const to: CpuSnapshot = {
      at: 3_000,
      primary: 1.2,
      workers: new Map([
        [10, 6],
        [20, 3],
        [30, 9], // started inside the span: not counted
      ]),
      broker: 0.7,
      coresBusy: 103.6,
    };
    const s = shareBetween(from, to, 0.8, 2);
    assert.equal(s.spanSec, 2);
    assert.ok(Math.abs(s.primary - 0.1) < 1e-9);
    assert.deepEqual(
      s.workers.map((w) => Number(w.toFixed(6))),
      [0.5, 0.5],
    );
    assert.ok(Math.abs(s.broker - 0.1) < 1e-9);
    assert.ok(Math.abs(s.generator - 0.4) < 1e-9);
    // busy 1.8 cores − server 1.1 − broker 0.1 − generator 0.4 = 0.2
    assert.ok(Math.abs(s.others - 0.2) < 1e-9, `others ${s.others}`);
  });

  test('limiters name the full process or the full cores, and nothing below saturation', () => {
    assert.deepEqual(limiters(share({ primary: 0.95, workers: [0.3, 0.3] })), ['primary']);
    assert.deepEqual(limiters(share({ primary: 0.1, workers: [0.9, 0.4] })), ['worker']);
    assert.deepEqual(limiters(share({ primary: 0.1, workers: [0.6, 0.6], generator: 0.6 })), ['cores']);
    assert.deepEqual(limiters(share({ workers: [0.2, 0.2], broker: 0.9, generator: 0.1 })), ['broker']);
    assert.deepEqual(limiters(share({ primary: 0.1, workers: [0.4, 0.4], generator: 0.3 })), []);
  });

  test('cpusOf reads taskset lists', () => {
    assert.deepEqual(cpusOf('0,1'), [0, 1]);
    assert.deepEqual(cpusOf('0-2,5'), [0, 1, 2, 5]);
  });

  test('scaling factors are paired per run and skip runs missing on either side', () => {
    const figures = (fanoutMax: number, hsPerSec: number): RunFigures => ({
      fanoutMax,
      fanoutP99: 10,
      fanoutGeneratorBound: false,
      fanoutLimiters: ['cores'],
      hsPerSec,
      hsPerCpuSec: hsPerSec,
      hsP99: 5,
      hsFailures: 0,
      hsCpu: share({}),
      idleConnected: 100,
      rssPerConn: 4000,
      rssBefore: 1,
      rssWith: 2,
    });
    const byConfig = new Map([
      ['relay/1', [figures(100, 10), figures(200, 10), figures(100, 10)]],
      ['relay/2', [figures(150, 20), undefined, figures(300, 5)]],
    ]);
    const [relay, ...rest] = scalingOf(byConfig, ['relay', 'redis']);
    assert.equal(rest.length, 0, 'no redis rows were measured');
    assert.deepEqual(relay!.fanout.values, [1.5, 3]);
    assert.deepEqual(relay!.handshakesPerSec.values, [2, 0.5]);
    assert.equal(formatFactor(relay!.fanout), '2.25× (1.50×–3.00×)');
    assert.equal(
      limiterLabel([['cores'], ['cores', 'primary'], ['none']]),
      'cores (2 of 3), primary (1 of 3), none (1 of 3)',
    );
  });
});

describe('workers scenario: a brief run on --workers 2', () => {
  test('fan-out, handshakes and idle memory are measured over the whole process tree', async () => {
    const errors: ScenarioContext['errors'] = [];
    const started = performance.now();
    const results = await runWorkersScenario(
      {
        quick: true,
        runs: 1,
        targets: [],
        large: false,
        generatorCpuList: undefined,
        serverCpuList: '0',
        log: () => {},
        errors,
      },
      { modes: ['relay'], workerCounts: [2], entry: 'source' },
    );
    const elapsed = performance.now() - started;
    assert.deepEqual(errors, []);
    assert.ok(elapsed < 60_000, `took ${Math.round(elapsed)} ms`);
    assert.equal(results.rows.length, 1);
    const row = results.rows[0]!;
    assert.equal(row.mode, 'relay');
    assert.equal(row.workers, 2);

    // Idle: every connection made, a plausible per-connection cost, three node processes of RSS.
    assert.equal(row.idle.connected.median, row.idle.connections);
    const perConn = row.idle.rssPerConnBytes.median;
    assert.ok(perConn > 200 && perConn < 200_000, `RSS per connection ${perConn}`);
    assert.ok(row.idle.rssBeforeBytes.median > 3 * 20e6, `tree RSS ${row.idle.rssBeforeBytes.median}`);

    // Handshakes: upgrades went through both layers and the tree's CPU was read.
    assert.ok(row.handshakes.perSec.median > 10, `upgrades/s ${row.handshakes.perSec.median}`);
    assert.equal(row.handshakes.failures.median, 0);
    const perCpu = row.handshakes.perServerCpuSec.median;
    assert.ok(perCpu > 50 && perCpu < 1e6, `upgrades per CPU-s ${perCpu}`);
    assert.equal(row.handshakes.cpu?.workers.length, 2);

    // Fan-out: something sustainable, within what the search could offer, with both workers busy.
    const max = row.fanout.maxDeliveriesPerSec.median;
    const members = row.fanout.subscribers + 1;
    // Quick mode measures one step at 100 messages/s, and steps down (÷ 4, twice) only when it fails:
    // the maximum is one of those rates × members, never more than what was offered.
    assert.ok(
      [100, 25, 6].some((rate) => max === rate * members),
      `max deliveries/s ${max} is not a searched rate × ${members}`,
    );
    assert.ok(Number.isFinite(row.fanout.p99AtMaxMs.median) && row.fanout.p99AtMaxMs.median < 100);
    const cpu = row.fanout.cpuAtMax;
    assert.ok(cpu !== undefined, 'CPU of the best step');
    assert.equal(cpu.workers.length, 2);
    for (const w of cpu.workers) assert.ok(w > 0.005 && w <= 1.05, `worker share ${w}`);
    assert.ok(cpu.primary >= 0 && cpu.primary <= 1.05, `primary share ${cpu.primary}`);
    assert.ok(cpu.generator > 0, 'generator CPU');

    const text = renderWorkersTables(results);
    assert.match(text, /\| IPC relay \| 2 \|/);
    assert.match(text, /Handshakes: 64 concurrent connectors/);
    // One worker count only: no factor to show.
    assert.doesNotMatch(text, /Scaling factor/);
  });
});
