// `wshub serve --broker` / `--workers` as real processes: bad scale-out flags
// exit 2 with one line, an unreachable broker at start exits 1 with one
// line (no retry), and two nodes on a real redis-server deliver across nodes
// and log the broker going down and coming back.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { dial } from '../../src/client/dial.ts';
import { MessageQueue } from '../../src/client/messages.ts';
import type { Connection } from '../../src/connection/connection.ts';
import { createLogger } from '../../src/cli/logger.ts';
import { MemoryBus, MemoryTransport } from '../../src/broker/memory.ts';
import { buildCluster, LoggedTransport, planScaleOut } from '../../src/cli/scaleout.ts';
import { Opcode } from '../../src/protocol/frame.ts';
import { runCli, startCli, type RunningCli } from '../helpers/cli.ts';
import { redisRequirement, startRedis } from '../helpers/redis.ts';
import { logLines, tempDir, waitFor } from './support.ts';

const running: RunningCli[] = [];
const clients: Connection[] = [];

afterEach(async () => {
  for (const conn of clients.splice(0)) conn.terminate();
  await Promise.all(running.splice(0).map((cli) => cli.stop('SIGKILL')));
});

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

  test(
    'SIGTERM with a stalled redis: exits 0 within seconds, not at the 10 s shutdown bound',
    redisRequirement(),
    async () => {
      const redis = await startRedis();
      try {
        const cli = await startCli([...BASE, '--broker', redis.url], {}, 30_000);
        running.push(cli);
        const member = await dial(`${cli.wsUrl}/ws?room=lobby`, { handlers: new MessageQueue().handlers });
        clients.push(member);
        redis.pause();
        const started = performance.now();
        const code = await cli.stop('SIGTERM');
        const took = performance.now() - started;
        const events = logLines(cli.stderr()).map((l) => l.event);
        assert.equal(code, 0, `exit code; log events: ${events.join(', ')}`);
        assert.ok(!events.includes('shutdown_timeout'));
        assert.ok(events.includes('stopped'));
        // The client answers the close frame at once; the cluster's close takes at most ~1.25 s.
        assert.ok(took < 6_000, `took ${took.toFixed(0)} ms`);
      } finally {
        redis.resume();
        await redis.stop();
      }
    },
  );

  test(
    'two nodes on redis: cross-node delivery, broker_down and broker_up logged',
    redisRequirement(),
    async () => {
      const redis = await startRedis();
      try {
        const nodes = await Promise.all(
          ['a', 'b'].map(async (id) => {
            const cli = await startCli([...BASE, '--broker', redis.url, '--node-id', id], {}, 30_000);
            running.push(cli);
            return cli;
          }),
        );
        const members = await Promise.all(
          nodes.map(async (cli) => {
            const queue = new MessageQueue();
            const conn = await dial(`${cli.wsUrl}/ws?room=lobby`, { handlers: queue.handlers });
            clients.push(conn);
            return { conn, queue };
          }),
        );
        const [a, b] = members as [(typeof members)[0], (typeof members)[0]];
        // The room subscription is asynchronous: retry until one crosses, then drain.
        const crossed = async (text: string): Promise<void> => {
          const deadline = Date.now() + 10_000;
          for (;;) {
            await a.conn.sendText(text);
            assert.equal((await a.queue.next(2_000)).text, text, 'local delivery');
            try {
              assert.equal((await b.queue.next(300)).text, text);
              return;
            } catch (error) {
              if (Date.now() > deadline) throw error;
            }
          }
        };
        await crossed('first');
        const start = logLines(nodes[0]!.stderr()).find((l) => l.event === 'start');
        assert.equal(start?.node, 'a');
        assert.equal(start?.broker, 'redis');

        await redis.kill();
        for (const cli of nodes) {
          await waitFor(
            () => logLines(cli.stderr()).some((l) => l.event === 'broker_down'),
            'broker_down',
            10_000,
          );
        }
        // Local delivery goes on while the broker is away.
        await a.conn.sendText('local-only');
        assert.equal((await a.queue.next(2_000)).text, 'local-only');
        await redis.restart();
        for (const cli of nodes) {
          await waitFor(
            () => logLines(cli.stderr()).some((l) => l.event === 'broker_up'),
            'broker_up',
            15_000,
          );
        }
        await crossed('after-restart');
      } finally {
        for (const conn of clients.splice(0)) conn.terminate();
        await Promise.all(running.splice(0).map((cli) => cli.stop('SIGTERM')));
        await redis.stop();
      }
    },
  );
});
