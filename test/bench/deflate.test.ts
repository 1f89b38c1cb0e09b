/**
 * The deflate benchmark's client and scenario: deliveries and wire bytes are
 * counted from compressed frames, the inflate sanity check passes only for a
 * server that really compresses, and the quick scenario yields rows for
 * every peer with deflate agreed.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startPeer } from '../../bench/peer-process.ts';
import { jsonPayload, runDeflateFanout } from '../../bench/loadgen/deflate-fanout.ts';
import { renderDeflateTables, runDeflateScenario } from '../../bench/scenarios/deflate.ts';
import type { ScenarioContext } from '../../bench/scenarios/context.ts';

const SUBSCRIBERS = 40;

async function fanoutAgainst(name: string, args: string[]) {
  const peer = await startPeer({ name, args });
  try {
    return await runDeflateFanout({
      target: { host: '127.0.0.1', port: peer.port, protocol: 'ws', path: '/ws' },
      room: 'deflate-test',
      subscribers: SUBSCRIBERS,
      ratePerSec: 10,
      payloadBytes: 1024,
      warmupMs: 300,
      durationMs: 1000,
    });
  } finally {
    await peer.stop();
  }
}

describe('deflate fan-out client', () => {
  test('the JSON payload has the asked size and parses', () => {
    const p = jsonPayload(1024, 7);
    assert.equal(p.length, 1024);
    assert.equal((JSON.parse(p.toString()) as { seq: number }).seq, 7);
  });

  for (const name of ['wshub', 'ws-naive', 'uws']) {
    test(`${name} --deflate: every client agrees deflate, frames are compressed, one inflates to the payload`, async () => {
      const r = await fanoutAgainst(name, ['--deflate']);
      assert.equal(r.connectFailures, 0);
      assert.equal(r.negotiated, SUBSCRIBERS + 1);
      assert.equal(r.inflateChecked, true);
      // About 10 messages in the 1 s window to 41 members (generous margins for a busy machine).
      assert.ok(r.delivered >= 5 * (SUBSCRIBERS + 1), `delivered ${r.delivered}`);
      const perDelivery = r.wireBytes / r.delivered;
      assert.ok(perDelivery > 20 && perDelivery < 600, `wire bytes per delivery ${perDelivery}`);
    });
  }

  test('a server without deflate: nothing agreed, full-size frames, the inflate check fails', async () => {
    const r = await fanoutAgainst('wshub', []);
    assert.equal(r.negotiated, 0);
    assert.equal(r.inflateChecked, false);
    assert.ok(r.delivered > 0);
    assert.ok(r.wireBytes / r.delivered >= 1024, `wire bytes per delivery ${r.wireBytes / r.delivered}`);
  });
});

describe('deflate scenario (quick mode)', () => {
  test('measures fan-out and idle memory with and without deflate for every peer', async () => {
    const errors: ScenarioContext['errors'] = [];
    const results = await runDeflateScenario({
      quick: true,
      runs: 1,
      targets: [],
      large: false,
      generatorCpuList: undefined,
      serverCpuList: '0',
      log: () => {},
      errors,
    });
    assert.deepEqual(errors, []);
    assert.deepEqual(
      results.fanout.map((r) => [r.target, r.negotiated.median, r.inflateChecked]),
      [
        ['wshub', 1001, true],
        ['ws', 1001, true],
        ['uws', 1001, true],
      ],
    );
    for (const r of results.fanout) assert.ok(r.wireBytesPerDelivery.median < 1024, r.target);
    assert.equal(results.idle.length, 6);
    for (const r of results.idle) assert.equal(r.connected.median, 1000);
    // Heap figures come from the peers' own `stats gc` answers.
    for (const r of results.idle) assert.ok((r.heapPerConnBytes?.median ?? 0) > 0, r.target);
    const tables = renderDeflateTables(results);
    assert.match(tables, /\| wshub \| 1000 \| agreed \|/);
    assert.match(tables, /wshub idle memory with deflate agreed: \d+% of without/);
  });
});
