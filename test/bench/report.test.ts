import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarize, formatSummary, formatRatio } from '../../bench/summary.ts';
import type { BenchResults, FanoutCell } from '../../bench/results.ts';
import { END_MARKER, START_MARKER, renderSection, replaceSection } from '../../bench/report/document.ts';
import { fanoutSvg } from '../../bench/report/svg.ts';
import { verdicts } from '../../bench/report/verdict.ts';
import { handshakeCostSection, handshakeCostVerdict } from '../../bench/report/handshake-cost.ts';
import { writeReport } from '../../bench/report.ts';
import { plateau } from '../../bench/scenarios/slow-consumers.ts';

const s = (...values: number[]) => summarize(values);

function cell(
  target: string,
  subscribers: number,
  payloadBytes: number,
  max: number[],
  extra: Partial<FanoutCell> = {},
): FanoutCell {
  return {
    target,
    members: subscribers + 1,
    payloadBytes,
    ratePerPublisher: 100,
    deliveriesPerSec: s(100_000),
    lost: s(0),
    lossFraction: s(0),
    p50Ms: s(1),
    p99Ms: s(5),
    maxMs: s(9),
    serverCpuSec: s(0.5),
    deliveriesPerCpuSec: s(200_000),
    generatorLimited: false,
    maxSustainable: summarize(max),
    maxGeneratorBound: false,
    searchSteps: [],
    ...extra,
  };
}

function fixture(): BenchResults {
  return {
    version: 1,
    command: 'npm run bench -- --quick',
    startedAt: '2026-12-01T10:00:00.000Z',
    durationSec: 100,
    quick: true,
    runs: 3,
    targets: ['wshub', 'ws-naive', 'uws', 'bare-net'],
    scenarios: ['fanout', 'idle', 'handshakes'],
    machine: {
      cpuModel: 'Test CPU <x>',
      cores: 2,
      ramBytes: 8e9,
      node: 'v20.0.0',
      kernel: 'Linux 6',
      loadBefore: 1,
      loadAfter: 2,
      pinned: true,
    },
    notes: [],
    fanout: [
      cell('wshub', 1000, 64, [3_000_000, 2_600_000, 3_300_000]),
      cell('ws-naive', 1000, 64, [200_000, 210_000, 190_000]),
      cell('uws', 1000, 64, [2_000_000, 2_000_000, 2_000_000], { maxGeneratorBound: true }),
      cell('wshub', 5000, 1024, [1_000_000, 1_000_000, 1_000_000]),
      cell('ws-naive', 5000, 1024, [100_000, 100_000, 100_000]),
      cell('uws', 5000, 1024, [1_350_000, 1_300_000, 1_400_000]),
    ],
    manyRooms: [],
    idle: [
      {
        target: 'wshub',
        connections: 19_000,
        connected: s(19_000),
        rssPerConnBytes: s(4_400),
        heapPerConnBytes: s(900),
        idleCpuSec: s(0.01),
        idleMs: 10_000,
      },
      {
        target: 'bare-net',
        connections: 19_000,
        connected: s(19_000),
        rssPerConnBytes: s(4_200),
        heapPerConnBytes: s(300),
        idleCpuSec: s(0),
        idleMs: 10_000,
      },
    ],
    handshakes: [
      {
        target: 'wshub',
        jwt: false,
        concurrency: 64,
        upgradesPerSec: s(9000),
        upgradesPerCpuSec: s(18_000),
        p99Ms: s(20),
        failures: s(0),
        generatorLimited: false,
      },
      {
        target: 'ws-naive',
        jwt: false,
        concurrency: 64,
        upgradesPerSec: s(7000),
        upgradesPerCpuSec: s(13_000),
        p99Ms: s(25),
        failures: s(0),
        generatorLimited: false,
      },
    ],
    slow: [],
    errors: [],
  };
}

describe('summarize', () => {
  test('median of odd and even counts, min and max, ignoring non-finite values', () => {
    assert.deepEqual(summarize([5, 1, 3]), { median: 3, min: 1, max: 5, values: [5, 1, 3] });
    assert.equal(summarize([4, 1, 3, 2]).median, 2.5);
    const withNaN = summarize([NaN, 7, Infinity, 9]);
    assert.equal(withNaN.median, 8);
    assert.equal(withNaN.min, 7);
    assert.ok(Number.isNaN(summarize([]).median));
  });

  test('formats a median with its range, and ratios', () => {
    assert.equal(formatSummary(summarize([2_000_000, 1_500_000, 2_500_000])), '2 M (1.5 M–2.5 M)');
    assert.equal(formatSummary(summarize([42])), '42');
    assert.equal(formatRatio(1.3333), '1.3×');
    assert.equal(formatRatio(15.2), '15×');
    assert.equal(formatRatio(NaN), '–');
  });
});

describe('report', () => {
  test('renders tables with ratios, the generator-bound mark and the machine', () => {
    const section = renderSection(fixture());
    assert.match(section, /^## Hub benchmarks/);
    assert.match(section, /npm run bench -- --quick/);
    assert.match(section, /Test CPU <x>, 2 cores/);
    assert.match(section, /wshub \/ ws-naive = 15×/); // 3 M / 200 k
    // uws's maximum is generator-bound (a lower bound): no ratio is claimed against it
    assert.match(section, /wshub \/ uws: no ratio \(uws generator-bound\)/);
    assert.match(section, /≥ 2 M \(generator-bound\)/);
    assert.match(section, /3 M \(2\.6 M–3\.3 M\)/);
    assert.match(section, /\| wshub \| 19,000 \|/);
    assert.match(section, /wshub \/ ws-naive = 1\.4×/); // handshakes 18k / 13k
  });

  test('verdicts are honest: met, not met, and not determined when unmeasured or generator-bound', () => {
    const byName = new Map(verdicts(fixture()).map((v) => [v.target.split(':')[0], v]));
    // 1,000 × 64 B: uws is generator-bound, so beating it decides nothing; 5,000 × 1 KiB loses to uws.
    assert.equal(byName.get('Fan-out')?.met, false);
    assert.match(byName.get('Fan-out')!.detail, /5,000 × 1 KiB: 1 M vs uws 1\.35 M/);
    assert.equal(byName.get('Idle memory')?.met, true); // 4.4 / 4.2 = 1.05
    assert.equal(byName.get('Handshakes')?.met, false); // 18k / 13k = 1.38× < 1.5× (JWT unmeasured, but one miss decides)
    assert.equal(byName.get('Latency')?.met, null);
    assert.equal(byName.get('Slow consumers')?.met, null);

    const better = fixture();
    better.fanout = better.fanout.filter((c) => c.members === 1001);
    better.idle[0]!.rssPerConnBytes = s(5_000); // 1.19× the floor
    const again = new Map(verdicts(better).map((v) => [v.target.split(':')[0], v]));
    assert.equal(again.get('Idle memory')?.met, false);
    assert.equal(again.get('Fan-out')?.met, null);
  });

  test('upgrade cost: judged against 1.3 × the seed and 0.7 × uws of the same run, with and without JWT', () => {
    const row = (target: string, jwt: boolean, perCpu: number) => ({
      target,
      jwt,
      concurrency: 64,
      upgradesPerSec: s(5000),
      upgradesPerCpuSec: s(perCpu),
      p99Ms: s(20),
      failures: s(0),
      generatorLimited: false,
      ...(jwt ? { distinctTokens: 20_000, tokenReuses: 0 } : {}),
    });
    const results = fixture();
    // 18 k < 20.8 k: one miss decides, whatever is unmeasured.
    assert.equal(handshakeCostVerdict(results).met, false);
    assert.match(handshakeCostVerdict(results).detail, /vs 1\.3 × seed = 20\.8 k → not met/);

    results.handshakes = [
      row('wshub', false, 22_000),
      row('uws', false, 30_000),
      row('wshub', true, 21_000),
      row('uws', true, 25_000),
    ];
    const met = handshakeCostVerdict(results);
    assert.equal(met.met, true, met.detail);
    assert.match(met.detail, /0\.73× uws/);
    assert.match(met.detail, /20,000 distinct tokens/);

    results.handshakes[1] = row('uws', false, 40_000); // 22 k / 40 k = 0.55× < 0.7×
    assert.equal(handshakeCostVerdict(results).met, false);
    // The floor peers of the same run are set against the uws bar.
    results.handshakes.push(row('bare-net', false, 26_000), row('tcp-handle', false, 30_000));
    const floors = handshakeCostVerdict(results).detail;
    assert.match(floors, /node:net floor \(bare-net[^)]*\): 26 k = 0\.65× uws, below the 0\.7× bar/);
    assert.match(
      floors,
      /without node:net \(tcp-handle[^)]*\): 30 k = 0\.75× uws, at or above the 0\.7× bar/,
    );
    results.handshakes = results.handshakes.slice(0, 4);
    results.handshakes = results.handshakes.filter((r) => r.target === 'wshub');
    assert.equal(handshakeCostVerdict(results).met, null); // seed met, uws not measured

    const section = handshakeCostSection(results);
    assert.equal(
      section.match(
        /\| seed \(Go; independent measurement, not run\) \| (none|JWT \(HS256\)) \| – \| 16 k \|/g,
      )?.length,
      2,
    );
    assert.match(section, /\| wshub \| JWT \(HS256\) \| node \| 21 k \|/);
    assert.match(section, /every connection presents one of 20,000 distinct HS256 tokens/);
    assert.equal(handshakeCostSection({ ...results, handshakes: [] }), '');
  });

  test('replaces only the text between the markers', () => {
    const doc = `# Benchmarks\n\n## Protocol micro-benchmark\n\nkept\n\n${START_MARKER}\nold\n${END_MARKER}\n\ntail\n`;
    const out = replaceSection(doc, '## Hub benchmarks\n\nnew');
    assert.match(out, /## Protocol micro-benchmark\n\nkept/);
    assert.match(out, /new/);
    assert.doesNotMatch(out, /\nold\n/);
    assert.match(out, /tail\n$/);
    const appended = replaceSection('# Benchmarks\n', 'x');
    assert.ok(appended.includes(START_MARKER) && appended.endsWith(`${END_MARKER}\n`));
  });

  test('the SVG chart is well-formed and has one bar per fan-out cell', () => {
    const svg = fanoutSvg(fixture());
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    const stack: string[] = [];
    for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
      if (m[3] === '/') continue;
      if (m[1] === '/') assert.equal(stack.pop(), m[2]);
      else stack.push(m[2]!);
    }
    assert.equal(stack.length, 0);
    assert.equal(svg.match(/<rect [^>]*><title>/g)?.length, 6);
    assert.ok(
      svg.includes('Test') === false && !/<[^>]*<[^>]*>/.test(svg.replace(/<title>[^<]*<\/title>/g, '')),
    );
  });

  test('writeReport writes the document section and the chart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wshub-report-'));
    try {
      const doc = join(dir, 'B.md');
      const svg = join(dir, 'c.svg');
      writeFileSync(doc, '# Benchmarks\n\n## Protocol micro-benchmark\n\nkept\n');
      writeReport(fixture(), doc, svg);
      const text = readFileSync(doc, 'utf8');
      assert.ok(text.startsWith('# Benchmarks\n\n## Protocol micro-benchmark\n\nkept\n'));
      assert.ok(text.includes('![Fan-out: maximum sustainable deliveries/s per target](bench-fanout.svg)'));
      assert.match(readFileSync(svg, 'utf8'), /<\/svg>\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('plateau: flat when the last third grows < 5% of the total', () => {
    const mb = 1024 * 1024;
    assert.equal(
      plateau(
        [
          [0, 10 * mb],
          [1000, 50 * mb],
          [2000, 60 * mb],
          [3000, 60.5 * mb],
        ],
        3000,
      ).flat,
      true,
    );
    assert.equal(
      plateau(
        [
          [0, 10 * mb],
          [1000, 20 * mb],
          [2000, 30 * mb],
          [3000, 40 * mb],
        ],
        3000,
      ).flat,
      false,
    );
    assert.equal(
      plateau(
        [
          [0, 10 * mb],
          [3000, 10.5 * mb],
        ],
        3000,
      ).flat,
      true,
    );
  });
});

describe('cross-node section', () => {
  test('renders one row per mode and rate, and is absent when not measured', () => {
    const results = fixture();
    assert.doesNotMatch(renderSection(results), /Scale-out: one node/);
    results.crossNode = [
      {
        mode: 'single node',
        subscribers: 1000,
        payloadBytes: 64,
        ratePerPublisher: 100,
        deliveriesPerSec: s(100_100),
        lost: s(0),
        p50Ms: s(2),
        p99Ms: s(9),
        maxMs: s(12),
        generatorLimited: false,
      },
      {
        mode: 'redis',
        subscribers: 1000,
        payloadBytes: 64,
        ratePerPublisher: 100,
        deliveriesPerSec: s(99_000, 100_100),
        lost: s(1100, 0),
        p50Ms: s(3),
        p99Ms: s(14),
        maxMs: s(30),
        generatorLimited: true,
      },
    ];
    const section = renderSection(results);
    assert.match(section, /### Scale-out: one node against two nodes through Redis and NATS/);
    assert.match(section, /\| single node \| 1000 \| 100 \|/);
    assert.match(section, /\| redis ⚠ \| 1000 \| 100 \|/);
  });
});
