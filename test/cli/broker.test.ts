// `wshub serve --broker` / `--workers` as real processes: bad scale-out flags
// exit 2 with one line, and an unreachable broker at start exits 1 with one
// line (no retry). Nodes on a real Redis are in broker-redis.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../../src/cli/logger.ts';
import { MemoryBus, MemoryTransport } from '../../src/broker/memory.ts';
import { buildCluster, LoggedTransport, planScaleOut } from '../../src/cli/scaleout.ts';
import { Opcode } from '../../src/protocol/frame.ts';
import { runCli } from '../helpers/cli.ts';
import { tempDir } from './support.ts';

const BASE = ['serve', '--allow-unauthenticated', '--port', '0'];

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((line) => line !== '');
  assert.equal(lines.length, 1, `exactly one stderr line, got: ${stderr}`);
  return lines[0]!;
}

describe('wshub serve --broker / --workers flags', () => {
  const usage: Array<[string[], RegExp]> = [
    [['--broker', 'ftp://127.0.0.1:21'], /unsupported broker URL scheme "ftp:"/],
    [['--broker', 'not a url'], /broker URL must look like/],
    [['--broker-sharded'], /--broker-sharded needs --broker/],
    [['--broker', 'nats://127.0.0.1:4222', '--broker-sharded'], /redis:\/\/ brokers only/],
    [['--broker-cluster'], /--broker-cluster needs --broker/],
    [
      ['--broker', 'nats://127.0.0.1:4222', '--broker-cluster'],
      /Redis Cluster applies to redis:\/\/ brokers only/,
    ],
    [
      ['--broker', 'redis://127.0.0.1:7000,redis://127.0.0.1:7001'],
      /several only as Redis Cluster seed nodes/,
    ],
    [['--node-id', 'has space', '--broker', 'redis://127.0.0.1:6379'], /--node-id must be/],
    [['--workers', '0'], /--workers must be between 1 and/],
    [['--workers', 'two'], /--workers must be a whole number/],
    [['--workers', '2', '--dev'], /--dev cannot be combined with --workers/],
    [['--broker-max-in-flight-bytes', '1024'], /--broker-max-in-flight-bytes needs --broker or --workers/],
    [
      ['--broker', 'redis://127.0.0.1:6379', '--broker-max-in-flight-bytes', '0'],
      /--broker-max-in-flight-bytes must be a whole number of at least 1/,
    ],
    [
      ['--broker', 'redis://127.0.0.1:6379', '--broker-max-in-flight-bytes', '64MiB'],
      /--broker-max-in-flight-bytes must be a whole number of at least 1/,
    ],
    [['--broker-max-remote-rooms', '1000'], /--broker-max-remote-rooms needs --broker or --workers/],
    [
      ['--broker', 'redis://127.0.0.1:6379', '--broker-max-remote-rooms', '0'],
      /--broker-max-remote-rooms must be a whole number of at least 1/,
    ],
    [
      ['--broker', 'redis://127.0.0.1:6379', '--broker-max-remote-rooms', '1e6'],
      /--broker-max-remote-rooms must be a whole number of at least 1/,
    ],
  ];
  for (const [args, message] of usage) {
    test(`${args.join(' ')} → exit 2 with one line`, async () => {
      const result = await runCli([...BASE, ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(oneLine(result.stderr), message);
      assert.equal(result.stdout, '');
    });
  }

  test('--broker-max-in-flight-bytes reaches the cluster: a larger publish is dropped and counted', () => {
    const plan = planScaleOut(
      { broker: 'redis://127.0.0.1:6379', 'broker-max-in-flight-bytes': '1000' },
      false,
    );
    assert.equal(plan.maxInFlightBytes, 1000);
    const cluster = buildCluster(
      plan,
      createLogger('error', () => {}),
    );
    assert.ok(cluster !== undefined);
    cluster.publish('r', Opcode.TEXT, Buffer.alloc(1001));
    assert.equal(cluster.metrics().broker_publish_dropped, 1);
    assert.equal(planScaleOut({ broker: 'redis://127.0.0.1:6379' }, false).maxInFlightBytes, undefined);
  });

  test('--broker-max-remote-rooms reaches the cluster; the logging wrapper passes the close deadline on', async () => {
    const plan = planScaleOut({ workers: '2', 'broker-max-remote-rooms': '5000' }, false);
    assert.equal(plan.maxRemoteRooms, 5000);
    const cluster = buildCluster(
      plan,
      createLogger('error', () => {}),
      1,
    );
    assert.ok(cluster !== undefined);
    // A worker's cluster cannot start outside a forked worker, so the option is read back directly.
    assert.equal((cluster as unknown as { maxRemoteRooms: number }).maxRemoteRooms, 5000);
    assert.equal(planScaleOut({ broker: 'redis://127.0.0.1:6379' }, false).maxRemoteRooms, undefined);

    const deadlines: Array<number | undefined> = [];
    const inner = new MemoryTransport(new MemoryBus());
    const close = inner.close.bind(inner);
    inner.close = (timeoutMs?: number) => {
      deadlines.push(timeoutMs);
      return close();
    };
    await new LoggedTransport(
      inner,
      createLogger('error', () => {}),
    ).close(123);
    assert.deepEqual(deadlines, [123]);
  });

  test('"cluster" in a config file → exit 2 pointing to --broker', async () => {
    const files = tempDir();
    try {
      const config = files.file('config.json', JSON.stringify({ cluster: { transport: 'redis' } }));
      const result = await runCli([...BASE, '--config', config]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(oneLine(result.stderr), /"cluster" cannot be set in a config file: use --broker/);
    } finally {
      files.cleanup();
    }
  });

  test('an unreachable broker at start → exit 1 with one line, password redacted', async () => {
    const redis = await runCli([...BASE, '--broker', 'redis://user:hunter2@127.0.0.1:1']);
    assert.equal(redis.code, 1, redis.stderr);
    const line = oneLine(redis.stderr);
    assert.match(line, /^wshub: cannot connect to broker redis:\/\/user:\*\*\*@127\.0\.0\.1:1: /);
    assert.doesNotMatch(line, /hunter2/);
    assert.doesNotMatch(redis.stdout, /listening/);

    const nats = await runCli([...BASE, '--broker', 'nats://127.0.0.1:1']);
    assert.equal(nats.code, 1, nats.stderr);
    assert.match(oneLine(nats.stderr), /^wshub: cannot connect to broker nats:\/\/127\.0\.0\.1:1: /);
  });

  test('--workers with an unreachable broker → exit 1, reported once', async () => {
    const result = await runCli([...BASE, '--workers', '2', '--broker', 'redis://127.0.0.1:1'], {}, 60_000);
    assert.equal(result.code, 1, result.stderr);
    const problems = result.stderr.split('\n').filter((line) => line.startsWith('wshub:'));
    assert.equal(problems.length, 1, result.stderr);
    assert.match(problems[0]!, /cannot connect to broker redis:\/\/127\.0\.0\.1:1/);
    assert.doesNotMatch(result.stdout, /listening/);
  });
});
