// Anonymous connections (allowAnonymousConnect, user '') and the "for
// anonymous" channel options of presence and history: the subscriber and
// client permissions alone do not admit them; with the option they do.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { cleanupHubs } from '../server/harness.ts';
import {
  callError,
  channelLimits,
  closeClients,
  connected,
  sdkClient,
  startChannelHub,
  subscribed,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

const open = {
  allowSubscribeForClient: true,
  allowSubscribeForAnonymous: true,
  presence: true,
  allowPresenceForSubscriber: true,
  historySize: 10,
  historyTtl: 60_000,
  allowHistoryForSubscriber: true,
};

function anonymousHub(extra: Record<string, boolean> = {}) {
  return startChannelHub({
    channelLimits: channelLimits({ allowAnonymousConnect: true }),
    channels: { namespaces: [{ name: 'room', ...open, ...extra }] },
  });
}

describe('anonymous clients', () => {
  it('presence and history need their "for anonymous" option: 103 without it', async () => {
    const hub = await anonymousHub();
    const client = sdkClient(hub);
    await connected(client);
    const { sub } = await subscribed(client, 'room:a');
    assert.equal((await callError(sub.presence())).code, 103);
    assert.equal((await callError(sub.presenceStats())).code, 103);
    assert.equal((await callError(sub.history({ limit: 10 }))).code, 103);
  });

  it('allowPresenceForAnonymous and allowHistoryForAnonymous admit them', async () => {
    const hub = await anonymousHub({ allowPresenceForAnonymous: true, allowHistoryForAnonymous: true });
    const client = sdkClient(hub);
    const { client: id } = await connected(client);
    const { sub } = await subscribed(client, 'room:a');
    await hub.ws.channels!.publish('room:a', { n: 1 });
    const presence = await sub.presence();
    assert.deepEqual(Object.keys(presence.clients), [id]);
    assert.equal(presence.clients[id]?.user, '');
    assert.deepEqual(await sub.presenceStats(), { numClients: 1, numUsers: 1 });
    const history = await sub.history({ limit: 10 });
    assert.deepEqual(
      history.publications.map((p) => p.data as unknown),
      [{ n: 1 }],
    );
  });
});
