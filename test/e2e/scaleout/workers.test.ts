// `wshub serve --workers 2` as a real process tree: both workers get
// members, members on different workers receive each other's messages
// exactly once and in order per publisher (through the primary's IPC
// relay), a SIGKILLed worker is restarted and serves again, and SIGTERM on
// the primary closes every client with 1001 and exits 0.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { dial } from '../../../src/client/dial.ts';
import { MessageQueue } from '../../../src/client/messages.ts';
import type { Connection } from '../../../src/connection/connection.ts';
import { startCli, type RunningCli } from '../../helpers/cli.ts';
import { redisRequirement, startRedis } from '../../helpers/redis.ts';
import { logLines, request, waitFor, type LogLine } from '../../cli/support.ts';

const CLIENTS = 20;
const PER_CLIENT = 3;

const running: RunningCli[] = [];
const clients: Connection[] = [];

after(async () => {
  for (const conn of clients.splice(0)) conn.terminate();
  await Promise.all(running.splice(0).map((cli) => cli.stop('SIGKILL')));
});

interface Member {
  conn: Connection;
  queue: MessageQueue;
}

async function join(url: string): Promise<Member> {
  const queue = new MessageQueue();
  const conn = await dial(url, { handlers: queue.handlers });
  clients.push(conn);
  return { conn, queue };
}

function events(cli: RunningCli, event: string): LogLine[] {
  return logLines(cli.stderr()).filter((line) => line.event === event);
}

/** Takes `count` messages from the queue (each wait bounded). */
async function take(queue: MessageQueue, count: number): Promise<string[]> {
  const texts: string[] = [];
  for (let i = 0; i < count; i++) texts.push((await queue.next(5_000)).text);
  return texts;
}

/**
 * Room subscriptions reach the other workers asynchronously: sends probes
 * from `sender` until one reaches every member, then drains all queues.
 */
async function settle(sender: Member, members: Member[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (let attempt = 0; ; attempt++) {
    await sender.conn.sendText(`probe-${attempt}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (members.every((m) => m.queue.size > 0)) break;
    assert.ok(Date.now() < deadline, 'a probe reached every member');
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (const member of members) while (member.queue.size > 0) await member.queue.next(100);
}

describe('wshub serve --workers', () => {
  test('two workers share the port and behave as one hub; crash restart; graceful stop', async () => {
    const cli = await startCli(
      ['serve', '--workers', '2', '--allow-unauthenticated', '--port', '0', '--log-level', 'debug'],
      {},
      60_000,
    );
    running.push(cli);
    assert.ok(cli.port > 0, `a real port, got ${cli.port}`);
    const starts = events(cli, 'start');
    assert.equal(starts.length, 2, 'two workers started');
    assert.ok(
      starts.every((line) => line.url === cli.url),
      'every worker listens on the announced port',
    );
    const workerPids = new Set(starts.map((line) => line.pid));
    assert.equal(workerPids.size, 2);
    assert.ok(!workerPids.has(cli.child.pid), 'workers are separate processes');

    const endpoint = `${cli.wsUrl}/ws?room=shared`;
    const members: Member[] = [];
    for (let i = 0; i < CLIENTS; i++) members.push(await join(endpoint));
    await waitFor(() => events(cli, 'connected').length === CLIENTS, 'every join in the log', 10_000);
    const perWorker = new Map<unknown, number>();
    for (const line of events(cli, 'connected')) perWorker.set(line.pid, (perWorker.get(line.pid) ?? 0) + 1);
    assert.equal(perWorker.size, 2, `members on both workers: ${JSON.stringify([...perWorker])}`);
    for (const count of perWorker.values()) assert.ok(count >= 1);

    await settle(members[0]!, members);

    await Promise.all(
      members.map(async (member, i) => {
        for (let k = 0; k < PER_CLIENT; k++) await member.conn.sendText(`m:${i}:${k}`);
      }),
    );
    for (const [index, member] of members.entries()) {
      const texts = await take(member.queue, CLIENTS * PER_CLIENT);
      assert.equal(new Set(texts).size, texts.length, `member ${index}: no duplicates`);
      const lastSeen = new Map<string, number>();
      for (const text of texts) {
        const [, from, k] = text.split(':');
        const previous = lastSeen.get(from!) ?? -1;
        assert.equal(Number(k), previous + 1, `member ${index}: in order from publisher ${from}`);
        lastSeen.set(from!, Number(k));
      }
      assert.equal(lastSeen.size, CLIENTS, `member ${index} heard every publisher`);
      // Nothing beyond exactly once arrives later.
      await new Promise((resolve) => setTimeout(resolve, index === 0 ? 300 : 0));
      assert.equal(member.queue.size, 0, `member ${index}: exactly once`);
    }

    // Crash one worker: its members drop, the others stay, a new worker appears.
    const victim = [...workerPids][0] as number;
    const survivor = [...workerPids][1];
    const closes = members.map((member) => member.conn.closed());
    process.kill(victim, 'SIGKILL');
    await waitFor(
      () => events(cli, 'worker_exit').some((l) => l.pid === victim),
      'the crash in the log',
      10_000,
    );
    await waitFor(() => events(cli, 'start').length === 3, 'a replacement worker', 30_000);
    const replacement = events(cli, 'start')[2]!;
    assert.ok(!workerPids.has(replacement.pid), 'the replacement is a new process');
    assert.equal(replacement.url, cli.url, 'on the same port');
    const dropped = members.filter((member) => member.queue.closed !== null);
    const kept = members.filter((member) => member.queue.closed === null);
    assert.equal(dropped.length, perWorker.get(victim), "exactly the victim's members dropped");
    assert.equal(kept.length, perWorker.get(survivor));

    // New members land on both live workers and reach the survivors' members.
    const fresh: Member[] = [];
    for (let i = 0; i < 6; i++) fresh.push(await join(endpoint));
    await waitFor(
      () => events(cli, 'connected').some((l) => l.pid === replacement.pid),
      'a member on the new worker',
      10_000,
    );
    const onReplacement = events(cli, 'connected').filter((l) => l.pid === replacement.pid).length;
    assert.ok(onReplacement >= 1 && onReplacement < fresh.length, 'new members spread over both workers');
    await settle(fresh[0]!, [...kept, ...fresh]);
    for (const [i, member] of fresh.entries()) await member.conn.sendText(`fresh:${i}`);
    for (const member of [...kept, ...fresh]) {
      const texts = await take(member.queue, fresh.length);
      // One message per publisher here, so only the set matters.
      assert.deepEqual([...texts].sort(), fresh.map((_, i) => `fresh:${i}`).sort());
    }
    assert.equal((await request(`${cli.url}/healthz`)).status, 200);

    // Graceful stop: every open client gets 1001, the primary exits 0.
    const open = [...kept, ...fresh];
    const closing = open.map((member) => member.conn.closed());
    const exitCode = await cli.stop('SIGTERM');
    for (const closed of await Promise.all(closing)) assert.equal(closed.code, 1001);
    assert.equal(exitCode, 0);
    const stopped = events(cli, 'stopped');
    assert.equal(stopped.length, 2, 'both live workers stopped gracefully');
    assert.ok(events(cli, 'primary_stopped').length === 1);
    await Promise.all(closes);
  });

  test(
    '--workers 2 --broker redis: workers stay consistent through the broker',
    redisRequirement(),
    async () => {
      const redis = await startRedis();
      try {
        const cli = await startCli(
          [
            'serve',
            '--workers',
            '2',
            '--broker',
            redis.url,
            '--node-id',
            'box',
            '--allow-unauthenticated',
            '--port',
            '0',
            '--log-level',
            'debug',
          ],
          {},
          60_000,
        );
        running.push(cli);
        const starts = events(cli, 'start');
        assert.deepEqual(
          starts.map((l) => l.broker),
          ['redis', 'redis'],
        );
        assert.deepEqual(starts.map((l) => l.node).sort(), ['box-1', 'box-2'], 'node ids per worker');
        const members: Member[] = [];
        for (let i = 0; i < 8; i++) members.push(await join(`${cli.wsUrl}/ws?room=r`));
        await waitFor(() => events(cli, 'connected').length === 8, 'every join in the log', 10_000);
        assert.equal(new Set(events(cli, 'connected').map((l) => l.pid)).size, 2, 'members on both workers');
        await settle(members[0]!, members);
        for (const [i, member] of members.entries()) await member.conn.sendText(`m${i}`);
        for (const member of members) {
          const texts = await take(member.queue, members.length);
          assert.deepEqual(texts.sort(), members.map((_, i) => `m${i}`).sort());
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
        for (const member of members) assert.equal(member.queue.size, 0, 'exactly once');
        assert.equal(await cli.stop('SIGTERM'), 0);
      } finally {
        for (const conn of clients.splice(0)) conn.terminate();
        await Promise.all(running.splice(0).map((cli) => cli.stop('SIGKILL')));
        await redis.stop();
      }
    },
  );
});
