// Presence with the official SDK: every subscriber listed with its info,
// stats counting clients and unique users, 108 when off, 103 without the
// permission, and entries gone after unsubscribe and after a disconnect.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { cleanupHubs } from '../server/harness.ts';
import {
  callError,
  closeClients,
  connected,
  connectionToken,
  pause,
  sdkClient,
  startChannelHub,
  subscribed,
  subscriptionToken,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

const base = { allowSubscribeForClient: true, presence: true, allowPresenceForSubscriber: true };

describe('presence', () => {
  it('lists every subscriber with user, client, conn_info and chan_info; stats count unique users', async () => {
    const hub = await startChannelHub({ channels: base });
    const a1 = sdkClient(hub, { token: await connectionToken('alice', { info: { tab: 1 } }) });
    const a2 = sdkClient(hub, { token: await connectionToken('alice', { info: { tab: 2 } }) });
    const b = sdkClient(hub, { token: await connectionToken('bob') });
    const ids = [await connected(a1), await connected(a2), await connected(b)].map((c) => c.client);
    const { sub } = await subscribed(a1, 'room');
    await subscribed(a2, 'room');
    await subscribed(b, 'room', { token: await subscriptionToken('bob', 'room', { info: { seat: 7 } }) });
    const presence = await sub.presence();
    assert.deepEqual(presence.clients, {
      // the SDK adds the camelCase names and keeps the wire's snake_case ones
      [ids[0]!]: { user: 'alice', client: ids[0], conn_info: { tab: 1 }, connInfo: { tab: 1 } },
      [ids[1]!]: { user: 'alice', client: ids[1], conn_info: { tab: 2 }, connInfo: { tab: 2 } },
      [ids[2]!]: { user: 'bob', client: ids[2], chan_info: { seat: 7 }, chanInfo: { seat: 7 } },
    });
    assert.deepEqual(await sub.presenceStats(), { numClients: 3, numUsers: 2 });
    // the server side sees the same
    assert.deepEqual(await hub.ws.channels!.presenceStats('room'), { num_clients: 3, num_users: 2 });
    assert.deepEqual(Object.keys(await hub.ws.channels!.presence('room')).sort(), [...ids].sort());
    // one of alice's two connections leaves: alice is still there
    a2.disconnect();
    for (let i = 0; i < 100 && (await sub.presenceStats()).numClients !== 2; i++) await pause(10);
    assert.deepEqual(await sub.presenceStats(), { numClients: 2, numUsers: 2 });
  });

  it('entries are gone after unsubscribe and after the client disconnects', async () => {
    const hub = await startChannelHub({ channels: base });
    const a = sdkClient(hub, { token: await connectionToken('alice') });
    const b = sdkClient(hub, { token: await connectionToken('bob') });
    const c = sdkClient(hub, { token: await connectionToken('carol') });
    await connected(a);
    await connected(b);
    const cId = (await connected(c)).client;
    const { sub } = await subscribed(a, 'room');
    const { sub: bSub } = await subscribed(b, 'room');
    await subscribed(c, 'room');
    assert.deepEqual(await sub.presenceStats(), { numClients: 3, numUsers: 3 });
    bSub.unsubscribe();
    await pause(50);
    c.disconnect();
    await pause(100);
    assert.deepEqual(await sub.presenceStats(), { numClients: 1, numUsers: 1 });
    const clients = (await sub.presence()).clients;
    assert.deepEqual(
      Object.values(clients).map((info) => info.user),
      ['alice'],
    );
    assert.equal(clients[cId], undefined);
  });

  it('presence off: 108', async () => {
    const hub = await startChannelHub({ channels: { ...base, presence: false } });
    const a = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(a);
    const { sub } = await subscribed(a, 'room');
    assert.deepEqual(await callError(sub.presence()), { code: 108, message: 'not available' });
    assert.deepEqual(await callError(sub.presenceStats()), { code: 108, message: 'not available' });
  });

  it('permissions: a non-subscriber needs allowPresenceForClient; no option is 103', async () => {
    const hub = await startChannelHub({ channels: base });
    const member = sdkClient(hub, { token: await connectionToken('alice') });
    const outsider = sdkClient(hub, { token: await connectionToken('eve') });
    await connected(member);
    await connected(outsider);
    await subscribed(member, 'room');
    assert.deepEqual(await callError(outsider.presence('room')), { code: 103, message: 'permission denied' });
    assert.deepEqual(await callError(outsider.presenceStats('room')), {
      code: 103,
      message: 'permission denied',
    });

    const forClient = await startChannelHub({
      channels: { allowSubscribeForClient: true, presence: true, allowPresenceForClient: true },
    });
    const m2 = sdkClient(forClient, { token: await connectionToken('alice') });
    const o2 = sdkClient(forClient, { token: await connectionToken('eve') });
    await connected(m2);
    await connected(o2);
    await subscribed(m2, 'room');
    assert.deepEqual(await o2.presenceStats('room'), { numClients: 1, numUsers: 1 });

    const none = await startChannelHub({ channels: { allowSubscribeForClient: true, presence: true } });
    const m3 = sdkClient(none, { token: await connectionToken('alice') });
    await connected(m3);
    const { sub } = await subscribed(m3, 'room');
    assert.deepEqual(await callError(sub.presence()), { code: 103, message: 'permission denied' });
  });
});
