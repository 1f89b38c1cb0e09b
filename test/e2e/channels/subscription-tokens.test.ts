// Subscription tokens with the official SDK: a valid token (its info is the
// subscriber's chan_info), a token for another channel or user (3500), an
// expired one (the SDK asks getToken for a new one). Tokens that expire
// while subscribed: subscription-token-expiry.test.ts.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { cleanupHubs } from '../server/harness.ts';
import {
  closeClients,
  connected,
  connectionToken,
  nextEvent,
  pause,
  publications,
  record,
  sdkClient,
  startChannelHub,
  subscribed,
  subscriptionToken,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

// Subscribing needs a token: nothing in the options allows it.
const channels = { presence: true, allowPresenceForSubscriber: true };

describe('subscription tokens', () => {
  it('a valid token subscribes; its info is the chan_info in presence', async () => {
    const hub = await startChannelHub({ channels });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    const { client: id } = await connected(client);
    const { sub } = await subscribed(client, 'vip', {
      token: await subscriptionToken('alice', 'vip', { info: { badge: 'gold' } }),
    });
    assert.deepEqual(await hub.ws.channels!.presence('vip'), {
      [id]: { user: 'alice', client: id, chan_info: { badge: 'gold' } },
    });
    const got = publications(sub, 1);
    await hub.ws.channels!.publish('vip', 'welcome');
    assert.deepEqual(await got, ['welcome']);
  });

  for (const [what, sub, channel] of [
    ['another channel', 'alice', 'other'],
    ['another user', 'bob', 'vip'],
  ] as const) {
    it(`a token for ${what}: disconnected with 3500 invalid token, no reconnect`, async () => {
      const hub = await startChannelHub({ channels });
      const client = sdkClient(hub, { token: await connectionToken('alice') });
      await connected(client);
      const disconnected = nextEvent<{ code: number; reason: string }>(client, 'disconnected');
      const connecting = record(client, 'connecting');
      client.newSubscription('vip', { token: await subscriptionToken(sub, channel) }).subscribe();
      assert.deepEqual(await disconnected, { code: 3500, reason: 'invalid token' });
      await pause(300);
      assert.equal(connecting.length, 0, 'the SDK does not reconnect after 3500');
      assert.equal(client.state, 'disconnected');
    });
  }

  it('an expired token: the SDK calls getToken and subscribes with the new one', async () => {
    const hub = await startChannelHub({ channels });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    let calls = 0;
    const { sub } = await subscribed(client, 'vip', {
      token: await subscriptionToken('alice', 'vip', {}, -600),
      getToken: async (ctx) => {
        calls++;
        assert.equal(ctx.channel, 'vip');
        return subscriptionToken('alice', 'vip');
      },
    });
    assert.equal(calls, 1);
    assert.equal(sub.state, 'subscribed');
  });
});
