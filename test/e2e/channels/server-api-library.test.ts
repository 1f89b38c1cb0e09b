// The server-side library API (`ws.channels`) against SDK clients: publish
// (its offset and epoch), history, historyRemove, presence, presenceStats,
// unsubscribe (the SDK sees code 2000), disconnect (3503, no reconnect),
// channels(pattern) and info().
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { cleanupHubs } from '../server/harness.ts';
import {
  closeClients,
  connected,
  connectionToken,
  nextEvent,
  pause,
  record,
  sdkClient,
  startChannelHub,
  subscribed,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

const channels = {
  allowSubscribeForClient: true,
  presence: true,
  historySize: 3,
  historyTtl: 60_000,
  namespaces: [{ name: 'plain', allowSubscribeForClient: true }],
};

describe('ws.channels, the server-side API', () => {
  it('publish returns offset and epoch with history, nothing without; history and historyRemove', async () => {
    const hub = await startChannelHub({ channels });
    const api = hub.ws.channels!;
    const r1 = await api.publish('feed', { n: 1 });
    const r2 = await api.publish('feed', { n: 2 }, { tags: { kind: 'x' } });
    assert.equal(r1.offset, 1);
    assert.equal(r2.offset, 2);
    assert.equal(typeof r1.epoch, 'string');
    assert.equal(r2.epoch, r1.epoch);
    assert.deepEqual(await api.publish('plain:feed', 1), {});
    const skipped = await api.publish('feed', { n: 'skip' }, { skipHistory: true });
    assert.deepEqual(skipped, {});
    assert.deepEqual(await api.history('feed', { limit: -1 }), {
      publications: [
        { data: { n: 1 }, offset: 1 },
        { data: { n: 2 }, offset: 2, tags: { kind: 'x' } },
      ],
      offset: 2,
      epoch: r1.epoch,
    });
    await api.historyRemove('feed');
    assert.deepEqual(await api.history('feed', { limit: -1 }), {
      publications: [],
      offset: 2,
      epoch: r1.epoch,
    });
    // the position goes on after the removal
    assert.equal((await api.publish('feed', 3)).offset, 3);
    await assert.rejects(api.history('plain:feed'), { error: { code: 108, message: 'not available' } });
    await assert.rejects(api.publish('nope:x', 1), { error: { code: 102, message: 'unknown channel' } });
    await assert.rejects(api.publish('', 1), { error: { code: 107, message: 'bad request' } });
  });

  it('presence and presenceStats list SDK subscribers', async () => {
    const hub = await startChannelHub({ channels });
    const api = hub.ws.channels!;
    const a = sdkClient(hub, { token: await connectionToken('alice', { info: { n: 'A' } }) });
    const idA = (await connected(a)).client;
    await subscribed(a, 'room');
    assert.deepEqual(await api.presence('room'), {
      [idA]: { user: 'alice', client: idA, conn_info: { n: 'A' } },
    });
    assert.deepEqual(await api.presenceStats('room'), { num_clients: 1, num_users: 1 });
    assert.deepEqual(await api.presence('empty'), {});
    await assert.rejects(api.presence('plain:room'), { error: { code: 108, message: 'not available' } });
  });

  it('an API publication reaches SDK subscribers with its offset and tags', async () => {
    const hub = await startChannelHub({ channels });
    const a = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(a);
    const { sub } = await subscribed(a, 'room');
    const got = record<{ data: unknown; offset?: number; tags?: Record<string, string> }>(sub, 'publication');
    await hub.ws.channels!.publish('room', { n: 1 }, { tags: { kind: 'note' } });
    await pause(100);
    assert.deepEqual(
      got.map((p) => [p.data, p.offset, p.tags]),
      [[{ n: 1 }, 1, { kind: 'note' }]],
    );
  });

  it('unsubscribe(channel, user): the SDK subscription is unsubscribed with 2000 and gets nothing more', async () => {
    const hub = await startChannelHub({ channels });
    const api = hub.ws.channels!;
    const a = sdkClient(hub, { token: await connectionToken('alice') });
    const b = sdkClient(hub, { token: await connectionToken('bob') });
    await connected(a);
    await connected(b);
    const { sub } = await subscribed(a, 'room');
    const { sub: bobSub } = await subscribed(b, 'room');
    const pubs = record<{ data: unknown }>(sub, 'publication');
    const unsubscribed = nextEvent<{ channel: string; code: number; reason: string }>(sub, 'unsubscribed');
    await api.unsubscribe('room', 'alice');
    assert.deepEqual(await unsubscribed, { channel: 'room', code: 2000, reason: 'server unsubscribe' });
    await api.publish('room', 'after');
    await pause(100);
    assert.equal(pubs.length, 0);
    assert.equal(sub.state, 'unsubscribed');
    assert.equal(bobSub.state, 'subscribed');
    assert.equal(a.state, 'connected');
    assert.deepEqual(await api.presenceStats('room'), { num_clients: 1, num_users: 1 });
  });

  it('unsubscribe of a server-side subscription: the client-level unsubscribed event, and no more publications', async () => {
    const hub = await startChannelHub({ channels });
    const a = sdkClient(hub, { token: await connectionToken('alice', { channels: ['alerts'] }) });
    const pubs = record<{ data: unknown }>(a, 'publication');
    const unsubscribed = new Promise<{ channel: string }>((resolve) => a.once('unsubscribed', resolve));
    await connected(a);
    await hub.ws.channels!.unsubscribe('alerts', 'alice');
    assert.deepEqual(await unsubscribed, { channel: 'alerts' });
    await hub.ws.channels!.publish('alerts', 1);
    await pause(100);
    assert.deepEqual([pubs.length, a.state, hub.ws.hub.getRoomCount('alerts')], [0, 'connected', 0]);
  });

  it('disconnect(user): 3503 to every connection of the user, and the SDK does not reconnect', async () => {
    const hub = await startChannelHub({ channels });
    const api = hub.ws.channels!;
    const a1 = sdkClient(hub, { token: await connectionToken('alice') });
    const a2 = sdkClient(hub, { token: await connectionToken('alice') });
    const b = sdkClient(hub, { token: await connectionToken('bob') });
    await connected(a1);
    await connected(a2);
    await connected(b);
    const d1 = nextEvent<{ code: number; reason: string }>(a1, 'disconnected');
    const d2 = nextEvent<{ code: number; reason: string }>(a2, 'disconnected');
    const reconnecting = record(a1, 'connecting');
    await api.disconnect('alice');
    assert.deepEqual(await d1, { code: 3503, reason: 'force disconnect' });
    assert.deepEqual(await d2, { code: 3503, reason: 'force disconnect' });
    await pause(300);
    assert.deepEqual([reconnecting.length, a1.state, b.state], [0, 'disconnected', 'connected']);
    assert.equal((await api.info()).nodes[0]!.num_users, 1);
  });

  it("disconnect of one client id leaves the user's other connections", async () => {
    const hub = await startChannelHub({ channels });
    const a1 = sdkClient(hub, { token: await connectionToken('alice') });
    const a2 = sdkClient(hub, { token: await connectionToken('alice') });
    const id1 = (await connected(a1)).client;
    await connected(a2);
    const d1 = nextEvent<{ code: number }>(a1, 'disconnected');
    await hub.ws.channels!.disconnect('alice', { client: id1 });
    assert.equal((await d1).code, 3503);
    await pause(50);
    assert.equal(a2.state, 'connected');
  });

  it('channels(pattern) and info() count subscribers, users and channels', async () => {
    const hub = await startChannelHub({ channels });
    const api = hub.ws.channels!;
    const a = sdkClient(hub, { token: await connectionToken('alice') });
    const a2 = sdkClient(hub, { token: await connectionToken('alice') });
    const b = sdkClient(hub, { token: await connectionToken('bob') });
    await connected(a);
    await connected(a2);
    await connected(b);
    await subscribed(a, 'news');
    await subscribed(b, 'news');
    await subscribed(a, 'plain:x');
    await subscribed(a2, 'notes');
    assert.deepEqual(await api.channels(), {
      news: { num_clients: 2 },
      'plain:x': { num_clients: 1 },
      notes: { num_clients: 1 },
    });
    assert.deepEqual(await api.channels('n*s'), { news: { num_clients: 2 }, notes: { num_clients: 1 } });
    assert.deepEqual(await api.channels('plain:?'), { 'plain:x': { num_clients: 1 } });
    const { nodes } = await api.info();
    assert.equal(nodes.length, 1);
    const node = nodes[0]!;
    assert.deepEqual([node.num_clients, node.num_users, node.num_channels, node.num_subs], [3, 2, 3, 4]);
    assert.equal(typeof node.uid, 'string');
    assert.ok(node.uptime >= 0);
  });
});
