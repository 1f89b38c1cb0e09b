// Client publications with the official SDK: who may publish (subscriber,
// client, anonymous, hook), the publisher's info carried by the
// publication, and join/leave events for those who ask (or all, forced).
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { Centrifuge } from 'centrifuge';
import { cleanupHubs } from '../server/harness.ts';
import {
  atLeast,
  callError,
  channelLimits,
  closeClients,
  connected,
  connectionToken,
  pause,
  publications,
  record,
  sdkClient,
  startChannelHub,
  subscribed,
  subscriptionToken,
} from './sdk.ts';
import type { ChannelsConfig } from '../../../src/channels/options.ts';
import type { ChannelHooks } from '../../../src/channels/node.ts';
import type { RunningHub } from '../server/harness.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

async function user(
  hub: RunningHub,
  name: string,
  claims: Record<string, unknown> = {},
): Promise<Centrifuge> {
  const client = sdkClient(hub, name === '' ? {} : { token: await connectionToken(name, claims) });
  await connected(client);
  return client;
}

async function hubWith(channels: ChannelsConfig, hooks?: ChannelHooks): Promise<RunningHub> {
  return startChannelHub({
    channels,
    channelLimits: channelLimits({ allowAnonymousConnect: true }),
    ...(hooks === undefined ? {} : { channelHooks: hooks }),
  });
}

describe('publish', () => {
  it('allowPublishForSubscriber: a subscriber may, a non-subscriber gets 103', async () => {
    const hub = await hubWith({ allowSubscribeForClient: true, allowPublishForSubscriber: true });
    const alice = await user(hub, 'alice');
    const { sub } = await subscribed(alice, 'room');
    const got = publications(sub, 1);
    await sub.publish({ text: 'hi' });
    assert.deepEqual(await got, [{ text: 'hi' }]);
    const bob = await user(hub, 'bob');
    assert.deepEqual(await callError(bob.publish('room', { text: 'no' })), {
      code: 103,
      message: 'permission denied',
    });
  });

  it('allowPublishForClient: any client with a user, not an anonymous one unless allowPublishForAnonymous', async () => {
    const hub = await hubWith({ allowSubscribeForClient: true, allowPublishForClient: true });
    const alice = await user(hub, 'alice');
    const { sub } = await subscribed(alice, 'room');
    const got = record<{ data: unknown }>(sub, 'publication');
    const bob = await user(hub, 'bob');
    await bob.publish('room', 'from bob');
    const anon = await user(hub, '');
    assert.deepEqual(await callError(anon.publish('room', 'from anon')), {
      code: 103,
      message: 'permission denied',
    });

    const open = await hubWith({
      allowSubscribeForClient: true,
      allowPublishForClient: true,
      allowPublishForAnonymous: true,
    });
    const carol = await user(open, 'carol');
    const { sub: sub2 } = await subscribed(carol, 'room');
    const got2 = publications(sub2, 1);
    await (await user(open, '')).publish('room', 'anon ok');
    assert.deepEqual(await got2, ['anon ok']);
    await pause(50);
    assert.deepEqual(
      got.map((p) => p.data),
      ['from bob'],
    );
  });

  it('nothing allowed: 103; the hook allows or denies and sees the data', async () => {
    const seen: unknown[] = [];
    const hub = await hubWith(
      { allowSubscribeForClient: true },
      {
        authorizePublish: (client, channel, data) => {
          seen.push([client.user, channel, data]);
          return (data as { ok?: boolean }).ok === true;
        },
      },
    );
    const alice = await user(hub, 'alice');
    const { sub } = await subscribed(alice, 'room');
    const got = record<{ data: unknown }>(sub, 'publication');
    await sub.publish({ ok: true });
    assert.deepEqual(await callError(sub.publish({ ok: false })), {
      code: 103,
      message: 'permission denied',
    });
    await pause(50);
    assert.deepEqual(
      got.map((p) => p.data),
      [{ ok: true }],
    );
    assert.deepEqual(seen, [
      ['alice', 'room', { ok: true }],
      ['alice', 'room', { ok: false }],
    ]);

    const closed = await hubWith({ allowSubscribeForClient: true });
    const bob = await user(closed, 'bob');
    const { sub: bobSub } = await subscribed(bob, 'room');
    assert.deepEqual(await callError(bobSub.publish(1)), { code: 103, message: 'permission denied' });
  });

  it('a publication over maxPublicationBytes is 106 and reaches nobody', async () => {
    const hub = await startChannelHub({
      channels: { allowSubscribeForClient: true, allowPublishForSubscriber: true },
      channelLimits: channelLimits({ maxPublicationBytes: 1024 }),
    });
    const alice = await user(hub, 'alice');
    const { sub } = await subscribed(alice, 'room');
    const got = record<{ data: unknown }>(sub, 'publication');
    assert.deepEqual(await callError(sub.publish('x'.repeat(1100))), {
      code: 106,
      message: 'limit exceeded',
    });
    await sub.publish('x'.repeat(1000));
    await pause(50);
    assert.deepEqual(
      got.map((p) => (p.data as string).length),
      [1000],
    );
  });

  it('the publication carries the publisher info: user, client, conn_info, chan_info', async () => {
    const hub = await hubWith({ allowSubscribeForClient: true, allowPublishForSubscriber: true });
    const reader = await user(hub, 'reader');
    const { sub: readerSub } = await subscribed(reader, 'room');
    const got = record<{ data: unknown; info?: unknown }>(readerSub, 'publication');
    const writer = sdkClient(hub, { token: await connectionToken('writer', { info: { name: 'W' } }) });
    const ctx = await connected(writer);
    const { sub } = await subscribed(writer, 'room', {
      token: await subscriptionToken('writer', 'room', { info: { role: 'mod' } }),
    });
    await sub.publish({ n: 1 });
    await pause(100);
    assert.deepEqual(got, [
      {
        channel: 'room',
        data: { n: 1 },
        info: { user: 'writer', client: ctx.client, connInfo: { name: 'W' }, chanInfo: { role: 'mod' } },
      },
    ]);
  });

  it('the publication of a client publishing without a subscription carries its conn_info', async () => {
    const hub = await hubWith({ allowSubscribeForClient: true, allowPublishForClient: true });
    const reader = await user(hub, 'reader');
    const { sub } = await subscribed(reader, 'room');
    const got = record<{ info?: unknown }>(sub, 'publication');
    const writer = sdkClient(hub, { token: await connectionToken('writer', { info: 'w-info' }) });
    const ctx = await connected(writer);
    await writer.publish('room', 1);
    await pause(100);
    assert.deepEqual(
      got.map((p) => p.info),
      [{ user: 'writer', client: ctx.client, connInfo: 'w-info' }],
    );
  });
});

describe('join and leave', () => {
  // As in Centrifuge, a subscriber that may read presence and asks gets the
  // events, its own join included.
  it('joinLeave: a subscriber that asks gets join and leave with the client info; one that does not, none', async () => {
    const hub = await hubWith({
      allowSubscribeForClient: true,
      joinLeave: true,
      allowPresenceForSubscriber: true,
    });
    const watcher = await user(hub, 'watcher');
    const sub = watcher.newSubscription('room', { joinLeave: true });
    const joins = record<{ info: unknown }>(sub, 'join');
    const leaves = record<{ info: unknown }>(sub, 'leave');
    sub.subscribe();
    await atLeast(joins, 1);
    const quiet = await user(hub, 'quiet');
    const { sub: quietSub } = await subscribed(quiet, 'room');
    const quietJoins = record(quietSub, 'join');
    const quietLeaves = record(quietSub, 'leave');

    const guest = sdkClient(hub, { token: await connectionToken('guest', { info: { g: 1 } }) });
    const guestCtx = await connected(guest);
    const { sub: guestSub } = await subscribed(guest, 'room');
    const guestInfo = { user: 'guest', client: guestCtx.client, connInfo: { g: 1 } };
    await pause(50);
    guestSub.unsubscribe();
    await pause(100);
    const expectedInfo = (info: unknown): void => assert.deepEqual(info, guestInfo);
    // watcher saw its own join, quiet's, then guest's join and leave
    assert.deepEqual(
      joins.map((j) => (j.info as { user: string }).user),
      ['watcher', 'quiet', 'guest'],
    );
    expectedInfo(joins[2]!.info);
    assert.equal(leaves.length, 1);
    expectedInfo(leaves[0]!.info);
    assert.deepEqual([quietJoins.length, quietLeaves.length], [0, 0]);
  });

  it('a subscriber that asks gets its own join, after its subscribe reply (as Centrifuge sends it)', async () => {
    const hub = await hubWith({
      allowSubscribeForClient: true,
      joinLeave: true,
      allowPresenceForSubscriber: true,
    });
    const client = sdkClient(hub, { token: await connectionToken('self') });
    const { client: id } = await connected(client);
    const sub = client.newSubscription('room', { joinLeave: true });
    const joins = record<{ info: { user: string; client: string } }>(sub, 'join');
    sub.subscribe();
    await atLeast(joins, 1);
    assert.deepEqual(
      joins.map((j) => [j.info.user, j.info.client]),
      [['self', id]],
    );
  });

  it('forcePushJoinLeave: every subscriber gets them without asking', async () => {
    const hub = await hubWith({ allowSubscribeForClient: true, joinLeave: true, forcePushJoinLeave: true });
    const watcher = await user(hub, 'watcher');
    const sub = watcher.newSubscription('room');
    const joins = record<{ info: { user: string } }>(sub, 'join');
    const leaves = record<{ info: { user: string } }>(sub, 'leave');
    sub.subscribe();
    await atLeast(joins, 1);
    const guest = await user(hub, 'guest');
    await subscribed(guest, 'room');
    await pause(50);
    guest.disconnect();
    await pause(100);
    assert.deepEqual(
      [joins.map((j) => j.info.user), leaves.map((l) => l.info.user)],
      [['watcher', 'guest'], ['guest']],
    );
  });

  it('asking without the right to read presence gets nothing', async () => {
    const hub = await hubWith({ allowSubscribeForClient: true, joinLeave: true });
    const watcher = await user(hub, 'watcher');
    const { sub } = await subscribed(watcher, 'room', { joinLeave: true });
    const events = record(sub, 'join');
    const guest = await user(hub, 'guest');
    await subscribed(guest, 'room');
    await pause(100);
    assert.equal(events.length, 0);
  });

  it('a server-side subscription (token channels claim) is announced with a join, after the connect reply', async () => {
    const hub = await hubWith({ allowSubscribeForClient: true, joinLeave: true, forcePushJoinLeave: true });
    const watcher = await user(hub, 'watcher');
    const sub = watcher.newSubscription('room');
    const joins = record<{ info: { user: string } }>(sub, 'join');
    sub.subscribe();
    await atLeast(joins, 1);
    const member = sdkClient(hub, { token: await connectionToken('member', { channels: ['room'] }) });
    const ownJoins = record<{ channel: string; info: { user: string } }>(member, 'join');
    await connected(member);
    await atLeast(joins, 2);
    await atLeast(ownJoins, 1);
    assert.deepEqual(
      joins.map((j) => j.info.user),
      ['watcher', 'member'],
    );
    assert.deepEqual(
      ownJoins.map((j) => [j.channel, j.info.user]),
      [['room', 'member']],
    );
  });

  it('without joinLeave in the channel options, asking gets nothing', async () => {
    const hub = await hubWith({ allowSubscribeForClient: true });
    const watcher = await user(hub, 'watcher');
    const { sub } = await subscribed(watcher, 'room', { joinLeave: true });
    const events = record(sub, 'join');
    const guest = await user(hub, 'guest');
    await subscribed(guest, 'room');
    await pause(100);
    assert.equal(events.length, 0);
  });
});
