// History with the official SDK: exact publications, offsets and epoch for
// limit / since / reverse, limit 0 for the position only, a wrong epoch
// (112), expiry by ttl, the size bound keeping the newest, and 108 when off.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { Centrifuge, Subscription } from 'centrifuge';
import type { ChannelsConfig } from '../../../src/channels/options.ts';
import { cleanupHubs, type RunningHub } from '../server/harness.ts';
import {
  callError,
  closeClients,
  connected,
  connectionToken,
  pause,
  sdkClient,
  startChannelHub,
  subscribed,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

const base = { allowSubscribeForClient: true, allowHistoryForSubscriber: true };

async function setup(
  channels: ChannelsConfig,
): Promise<{ hub: RunningHub; client: Centrifuge; sub: Subscription }> {
  const hub = await startChannelHub({ channels });
  const client = sdkClient(hub, { token: await connectionToken('alice') });
  await connected(client);
  const { sub } = await subscribed(client, 'log');
  return { hub, client, sub };
}

/** Publishes 1..n through the server API; returns the epoch the results carry. */
async function publishNumbers(hub: RunningHub, n: number): Promise<string> {
  let epoch = '';
  for (let i = 1; i <= n; i++) {
    const result = await hub.ws.channels!.publish('log', { n: i });
    assert.equal(result.offset, i);
    epoch = result.epoch!;
  }
  return epoch;
}

type Pub = { data: unknown; offset?: number };
const summary = (pubs: Pub[]): Array<[number | undefined, unknown]> => pubs.map((p) => [p.offset, p.data]);

describe('history', () => {
  it('limit, since and reverse give exact publications, offsets and epoch', async () => {
    const { hub, sub } = await setup({ ...base, historySize: 10, historyTtl: 60_000 });
    const epoch = await publishNumbers(hub, 5);
    assert.match(epoch, /^.{1,}$/);

    const all = await sub.history({ limit: -1 });
    assert.deepEqual([all.offset, all.epoch], [5, epoch]);
    assert.deepEqual(
      summary(all.publications),
      [1, 2, 3, 4, 5].map((n) => [n, { n }]),
    );

    const first2 = await sub.history({ limit: 2 });
    assert.deepEqual(summary(first2.publications), [
      [1, { n: 1 }],
      [2, { n: 2 }],
    ]);

    const after2 = await sub.history({ limit: 10, since: { offset: 2, epoch } });
    assert.deepEqual(
      summary(after2.publications),
      [3, 4, 5].map((n) => [n, { n }]),
    );

    const newest2 = await sub.history({ limit: 2, reverse: true });
    assert.deepEqual(summary(newest2.publications), [
      [5, { n: 5 }],
      [4, { n: 4 }],
    ]);

    const before4 = await sub.history({ limit: 10, since: { offset: 4, epoch }, reverse: true });
    assert.deepEqual(
      summary(before4.publications),
      [3, 2, 1].map((n) => [n, { n }]),
    );
  });

  it('limit 0 answers only the position', async () => {
    const { hub, sub } = await setup({ ...base, historySize: 10, historyTtl: 60_000 });
    const epoch = await publishNumbers(hub, 3);
    const top = await sub.history({ limit: 0 });
    assert.deepEqual(top, { publications: [], offset: 3, epoch });
  });

  it('since with a wrong epoch: 112 unrecoverable position', async () => {
    const { hub, sub } = await setup({ ...base, historySize: 10, historyTtl: 60_000 });
    await publishNumbers(hub, 2);
    assert.deepEqual(await callError(sub.history({ limit: 10, since: { offset: 1, epoch: 'wrong' } })), {
      code: 112,
      message: 'unrecoverable position',
    });
    await assert.rejects(hub.ws.channels!.history('log', { limit: 1, since: { offset: 1, epoch: 'x' } }), {
      error: { code: 112, message: 'unrecoverable position' },
    });
  });

  it('publications expire after historyTtl; the position stays', async () => {
    const { hub, sub } = await setup({ ...base, historySize: 10, historyTtl: 200 });
    const epoch = await publishNumbers(hub, 2);
    assert.equal((await sub.history({ limit: -1 })).publications.length, 2);
    await pause(400);
    assert.deepEqual(await sub.history({ limit: -1 }), { publications: [], offset: 2, epoch });
  });

  it('historySize keeps the newest N', async () => {
    const { hub, sub } = await setup({ ...base, historySize: 3, historyTtl: 60_000 });
    const epoch = await publishNumbers(hub, 7);
    const kept = await sub.history({ limit: -1 });
    assert.deepEqual([kept.offset, kept.epoch], [7, epoch]);
    assert.deepEqual(
      summary(kept.publications),
      [5, 6, 7].map((n) => [n, { n }]),
    );
  });

  it('history off: 108; no permission: 103', async () => {
    const { sub } = await setup(base);
    assert.deepEqual(await callError(sub.history({ limit: 1 })), { code: 108, message: 'not available' });
    const { client } = await setup({ allowSubscribeForClient: true, historySize: 5, historyTtl: 60_000 });
    assert.deepEqual(await callError(client.history('log', { limit: 1 })), {
      code: 103,
      message: 'permission denied',
    });
  });

  it('a client publication is kept with its offset and publisher info', async () => {
    const { hub, sub } = await setup({
      ...base,
      allowPublishForSubscriber: true,
      historySize: 5,
      historyTtl: 60_000,
    });
    await sub.publish({ from: 'alice' });
    await hub.ws.channels!.publish('log', { from: 'server' });
    const h = await hub.ws.channels!.history('log', { limit: -1 });
    assert.equal(h.publications.length, 2);
    assert.deepEqual(h.publications[0]!.data, { from: 'alice' });
    assert.equal(h.publications[0]!.offset, 1);
    assert.equal(h.publications[0]!.info?.user, 'alice');
    assert.deepEqual(h.publications[1], { data: { from: 'server' }, offset: 2 });
  });
});
