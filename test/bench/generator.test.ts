/**
 * The load generator's self-test: the line-rate peer writes frames as fast
 * as the generator reads, and the generator must count exactly the frames
 * the peer wrote, on the receive path that counts fan-out deliveries. Also
 * the classification of fan-out maxima into server-bound and
 * generator-bound, and the report's refusal to give ratios otherwise.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startPeer, type PeerProcess } from '../../bench/peer-process.ts';
import { runCapacity } from '../../bench/loadgen/index.ts';
import { FrameParser } from '../../bench/loadgen/frame-parser.ts';
import { lineRateFrames } from '../../bench/peers/line-rate-frames.ts';
import { limitOf } from '../../bench/scenarios/fanout.ts';
import { fanoutTables } from '../../bench/report/markdown.ts';
import { capacityVerdicts, generatorTable } from '../../bench/report/generator.ts';
import type { BenchResults, FanoutCell, GeneratorRow, RateStep } from '../../bench/results.ts';
import { summarize } from '../../bench/summary.ts';

const peers: PeerProcess[] = [];
after(async () => {
  await Promise.all(peers.map((p) => p.stop()));
});

/** Counts the binary frames a parser sees. */
class Counter extends FrameParser {
  binary = 0;
  protected override onFrame(opcode: number): void {
    if (opcode === 2) this.binary++;
  }
}

describe('line-rate frames', () => {
  test('a write buffer holds whole frames that a parser counts exactly at any split', () => {
    for (const payload of [16, 64, 125, 126, 1024]) {
      const { buffer, frames } = lineRateFrames(payload, 4096);
      assert.ok(frames >= 1);
      const parser = new Counter();
      // feed three copies split at arbitrary points
      const all = Buffer.concat([buffer, buffer, buffer]);
      let at = 0;
      let step = 1;
      while (at < all.length) {
        const end = Math.min(all.length, at + step);
        parser.feed(all, at, end);
        at = end;
        step = (step * 7 + 3) % 977 || 1;
      }
      assert.equal(parser.binary, 3 * frames, `payload ${payload}`);
      // one byte short: the last frame is incomplete and must not count
      const short = new Counter();
      short.feed(buffer, 0, buffer.length - 1);
      assert.equal(short.binary, frames - 1);
    }
  });
});

describe('generator self-test against the line-rate peer', () => {
  for (const [receivePath, writeBytes] of [
    ['node', 18],
    ['node', 64 * 1024],
    ['go', 18],
    ['go', 64 * 1024],
  ] as const) {
    test(`the ${receivePath} receive path counts exactly the frames written (${writeBytes < 100 ? 'one frame' : '64 KiB'} per write)`, async () => {
      const subscribers = 40;
      const peer = await startPeer({
        name: 'line-rate',
        args: ['--subscribers', String(subscribers), '--seconds', '1', '--write-bytes', String(writeBytes)],
      });
      peers.push(peer);
      const result = await runCapacity({
        target: { host: '127.0.0.1', port: peer.port, protocol: 'ws', path: '/ws' },
        subscribers,
        warmupMs: 200,
        durationMs: 600,
        workers: 1,
        receivePath,
      });
      const stats = (await peer.stats()) as unknown as { framesSent: number; writing: boolean };
      await peer.stop();
      assert.equal(result.receivePath, receivePath);
      assert.equal(result.connected, subscribers);
      assert.equal(stats.writing, false);
      assert.ok(stats.framesSent > 1000, `only ${stats.framesSent} frames were written`);
      assert.equal(result.framesTotal, stats.framesSent);
      assert.ok(result.framesInWindow > 0 && result.framesInWindow <= result.framesTotal);
      assert.ok(result.framesPerCpuSec > 0 && result.framesPerRead >= 1);
    });
  }
});

function step(rate: number, pass: boolean, generatorBusy: number, generatorCoreBusy?: number): RateStep {
  return {
    ratePerPublisher: rate,
    deliveriesPerSec: rate * 1001,
    p99Ms: pass ? 10 : 200,
    lost: 0,
    generatorLimited: generatorBusy > 0.9,
    pass,
    generatorBusy,
    ...(generatorCoreBusy !== undefined ? { generatorCoreBusy } : {}),
  };
}

/** A fan-out cell whose only figure that matters here is its maximum and the bound of it. */
const fanoutCell = (target: string, max: number, bound: 'server-bound' | 'generator-bound'): FanoutCell => {
  const s = summarize([1]);
  return {
    target,
    members: 1001,
    payloadBytes: 64,
    ratePerPublisher: 100,
    deliveriesPerSec: s,
    lost: s,
    lossFraction: s,
    p50Ms: s,
    p99Ms: s,
    maxMs: s,
    serverCpuSec: s,
    deliveriesPerCpuSec: s,
    generatorLimited: false,
    maxSustainable: summarize([max]),
    maxGeneratorBound: bound === 'generator-bound',
    maxBound: bound,
    searchSteps: [],
  };
};

describe('fan-out maxima: server-bound or generator-bound', () => {
  test('the failed step just above the maximum decides', () => {
    const steps = [step(100, true, 0.1), step(400, false, 0.95), step(200, false, 0.3), step(150, true, 0.2)];
    assert.deepEqual(limitOf(steps, 150), { bound: 'server-bound', busy: 0.3 });
    const busier = [step(100, true, 0.1), step(200, false, 0.5)];
    assert.equal(limitOf(busier, 100).bound, 'generator-bound');
    const starved = [step(100, true, 0.1), step(200, false, 0.2, 0.97)];
    assert.equal(limitOf(starved, 100).bound, 'generator-bound');
    const neverFailed = [step(100, true, 0.1), step(200, true, 0.2)];
    assert.equal(limitOf(neverFailed, 200).bound, 'generator-bound');
  });

  test('the report gives a ratio only between server-bound maxima', () => {
    const results = {
      fanout: [
        fanoutCell('wshub', 3_000_000, 'server-bound'),
        fanoutCell('uws', 1_000_000, 'server-bound'),
        fanoutCell('ws-preframed', 500_000, 'generator-bound'),
      ],
    } as unknown as BenchResults;
    const text = fanoutTables(results);
    assert.match(text, /wshub \/ uws = 3×/);
    assert.match(text, /wshub \/ ws-preframed: no ratio \(ws-preframed generator-bound\)/);
    assert.match(text, /3 M \(server-bound\)/);
    assert.match(text, /≥ 500 k \(generator-bound\)/);
  });

  test('a generator-bound wshub against a server-bound peer gives a floor of the ratio, never a ratio the other way', () => {
    const text = fanoutTables({
      fanout: [
        fanoutCell('wshub', 32_000_000, 'generator-bound'),
        fanoutCell('ws-preframed', 2_800_000, 'server-bound'),
        fanoutCell('uws', 2_000_000, 'generator-bound'),
      ],
    } as unknown as BenchResults);
    assert.match(text, /wshub \/ ws-preframed ≥ 11× \(wshub generator-bound\)/);
    assert.match(text, /wshub \/ uws: no ratio \(wshub and uws generator-bound\)/);
  });
});

describe('self-test verdict', () => {
  const row = (receivePath: 'go' | 'node', framesPerCpuSec: number): GeneratorRow => {
    const s = summarize([1]);
    return {
      pattern: '64 KiB writes',
      receivePath,
      subscribers: 1000,
      payloadBytes: 64,
      framesPerSec: s,
      framesPerCpuSec: summarize([framesPerCpuSec]),
      framesPerRead: s,
      generatorBusy: s,
      generatorCoreBusy: s,
      serverCpuSec: s,
      exactRuns: 1,
      runs: 1,
      connectFailures: 0,
    };
  };

  test('each receive path is held to 3× the best fan-out maximum, or to the reference without one', () => {
    const alone = {
      generator: [row('node', 15_000_000), row('go', 130_000_000)],
      fanout: [],
    } as unknown as BenchResults;
    const [node, go] = capacityVerdicts(alone);
    assert.match(
      node!,
      /64 B, node receive path: 15 M .*reference wshub ≥ 40 M.*below the 3× bar \(120 M needed\)/,
    );
    assert.match(go!, /64 B, go receive path: 130 M .*= 3\.3× .*meets the 3× bar/);
    assert.match(generatorTable(alone), /\| 64 KiB writes \| go \| 1,000 \| 64 B \|/);

    const s = summarize([1]);
    const withFanout = {
      generator: [row('go', 40_000_000)],
      fanout: [
        {
          target: 'wshub',
          members: 1001,
          payloadBytes: 64,
          maxSustainable: summarize([20_000_000]),
          maxGeneratorBound: true,
          maxBound: 'generator-bound',
          deliveriesPerSec: s,
        },
      ],
    } as unknown as BenchResults;
    const [bar] = capacityVerdicts(withFanout);
    assert.match(
      bar!,
      /= 2× .*wshub, 1,000 subscribers, ≥ 20 M, generator-bound.*below the 3× bar \(60 M needed\)/,
    );
  });
});
