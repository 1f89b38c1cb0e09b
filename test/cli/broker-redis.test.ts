// `wshub serve --broker` on real Redis deployments, as real processes: two
// nodes on a redis-server and three on a 3-master Redis Cluster
// (--broker-cluster) deliver across nodes and log the broker (on a cluster:
// the master owning the room's slot) going down and coming back, and a
// stalled broker does not hold up SIGTERM.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { dial } from '../../src/client/dial.ts';
import { MessageQueue } from '../../src/client/messages.ts';
import type { Connection } from '../../src/connection/connection.ts';
import { startCli, type RunningCli } from '../helpers/cli.ts';
import { REDIS_BACKENDS } from '../helpers/redis-backends.ts';
import { logLines, waitFor } from './support.ts';

const running: RunningCli[] = [];
const clients: Connection[] = [];

afterEach(async () => {
  for (const conn of clients.splice(0)) conn.terminate();
  await Promise.all(running.splice(0).map((cli) => cli.stop('SIGKILL')));
});

const BASE = ['serve', '--allow-unauthenticated', '--port', '0'];

describe('wshub serve --broker on redis', () => {
  for (const backend of REDIS_BACKENDS) {
    test(
      `SIGTERM with a stalled ${backend.name}: exits 0 within seconds, not at the 10 s shutdown bound`,
      backend.requirement(),
      async () => {
        const redis = await backend.start();
        try {
          const cli = await startCli([...BASE, ...redis.cliArgs], {}, 30_000);
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
      `${backend.cluster ? 'three' : 'two'} nodes on ${backend.name}: cross-node delivery, broker_down and broker_up logged`,
      backend.requirement(),
      async () => {
        const redis = await backend.start();
        try {
          const ids = backend.cluster ? ['a', 'b', 'c'] : ['a', 'b'];
          const nodes = await Promise.all(
            ids.map(async (id) => {
              const cli = await startCli([...BASE, ...redis.cliArgs, '--node-id', id], {}, 30_000);
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
          const [a, ...others] = members as [(typeof members)[0], ...typeof members];
          // The room subscription is asynchronous: retry until one crosses to every other node, then drain.
          const crossed = async (text: string): Promise<void> => {
            const deadline = Date.now() + 10_000;
            const pending = new Set(others);
            for (;;) {
              await a.conn.sendText(text);
              assert.equal((await a.queue.next(2_000)).text, text, 'local delivery');
              for (const member of [...pending]) {
                const got = await member.queue.next(300).catch(() => null);
                if (got !== null) {
                  assert.equal(got.text, text);
                  pending.delete(member);
                }
              }
              if (pending.size === 0) {
                // Earlier attempts that crossed late are drained, so the next round starts clean.
                for (const member of others)
                  while ((await member.queue.next(200).catch(() => null)) !== null);
                return;
              }
              if (Date.now() > deadline) assert.fail(`"${text}" did not reach ${pending.size} node(s)`);
            }
          };
          await crossed('first');
          const start = logLines(nodes[0]!.stderr()).find((l) => l.event === 'start');
          assert.equal(start?.node, 'a');
          assert.equal(start?.broker, backend.cluster ? 'redis-cluster' : 'redis');

          const revive = await redis.killOwnerOf('wshub:room:lobby');
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
          await revive();
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
  }
});
