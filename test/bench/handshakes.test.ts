/**
 * The handshake scenario end to end on the two floor peers, in quick mode:
 * runs interleaved across targets (run 1 of every target before run 2 of
 * any), a row per target and auth variant with real upgrades and no
 * failures, the JWT rows with their token pool, and relaying targets'
 * scenarios skipping the floor peers.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runHandshakeScenario, TOKEN_POOL_SIZE } from '../../bench/scenarios/handshakes.ts';
import { takesPart, type ScenarioContext } from '../../bench/scenarios/context.ts';

describe('handshake scenario', () => {
  test('floor peers: interleaved runs, one row per target and variant', async () => {
    const errors: ScenarioContext['errors'] = [];
    const log: string[] = [];
    const rows = await runHandshakeScenario({
      quick: true,
      runs: 2,
      targets: ['bare-net', 'tcp-handle'],
      large: false,
      generatorCpuList: undefined,
      serverCpuList: '0',
      receivePath: 'go',
      log: (message) => log.push(message),
      errors,
    });
    assert.deepEqual(errors, []);
    const order = log.filter((line) => line.startsWith('handshakes / '));
    assert.deepEqual(order, [
      'handshakes / bare-net (run 1 of 2)',
      'handshakes / tcp-handle (run 1 of 2)',
      'handshakes / bare-net (JWT) (run 1 of 2)',
      'handshakes / tcp-handle (JWT) (run 1 of 2)',
      'handshakes / bare-net (run 2 of 2)',
      'handshakes / tcp-handle (run 2 of 2)',
      'handshakes / bare-net (JWT) (run 2 of 2)',
      'handshakes / tcp-handle (JWT) (run 2 of 2)',
    ]);
    assert.deepEqual(
      rows.map((r) => `${r.target}/${r.jwt}`),
      ['bare-net/false', 'tcp-handle/false', 'bare-net/true', 'tcp-handle/true'],
    );
    for (const row of rows) {
      assert.equal(row.upgradesPerSec.values.length, 2, row.target);
      assert.ok(row.upgradesPerSec.min > 50, `${row.target}: ${row.upgradesPerSec.min} upgrades/s`);
      assert.ok(row.upgradesPerCpuSec.min > row.upgradesPerSec.min * 0.5, row.target);
      assert.equal(row.failures.max, 0, row.target);
      assert.equal(row.receivePath, 'go');
      if (row.jwt) assert.equal(row.distinctTokens, TOKEN_POOL_SIZE / 4);
      else assert.equal(row.distinctTokens, undefined);
    }
  });

  test('floor peers take part only where they are a floor', () => {
    assert.equal(takesPart('bare-net', 'idle'), true);
    assert.equal(takesPart('bare-net', 'handshakes'), true);
    assert.equal(takesPart('bare-net', 'fanout'), false);
    assert.equal(takesPart('tcp-handle', 'handshakes'), true);
    assert.equal(takesPart('tcp-handle', 'idle'), false);
    assert.equal(takesPart('wshub', 'fanout'), true);
  });
});
