// Subscription tokens that expire while subscribed, with the official SDK:
// sub_refresh (through the subscription's getToken) keeps a short-lived
// subscription alive past its exp; without a refresh the server unsubscribes
// it with 2501 and the SDK resubscribes with a new token from getToken.
// `exp` counts whole seconds, so each test first waits for the right part
// of a second.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { cleanupHubs } from '../server/harness.ts';
import {
  channelLimits,
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

/** Waits for the first 200 ms of a wall-clock second. */
async function earlyInSecond(): Promise<void> {
  while (Date.now() % 1000 > 200) await pause(10);
}

/** Waits for the last 200 ms of a wall-clock second. */
async function lateInSecond(): Promise<void> {
  while (Date.now() % 1000 < 800) await pause(10);
}

describe('subscription tokens expiring', () => {
  it('a short-lived token with getToken: sub_refresh keeps the subscription past its exp', async () => {
    const hub = await startChannelHub({
      channels,
      channelLimits: channelLimits({ expiredCloseDelay: 0 }),
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    let calls = 0;
    // Early in a second, the SDK's refresh (after ttl = 1 s) comes well before
    // the server's expiry (the end of the exp second, 1.8 to 2 s away).
    await earlyInSecond();
    const firstDeadline = (Math.floor(Date.now() / 1000) + 2) * 1000;
    const { sub } = await subscribed(client, 'vip', {
      getToken: () => {
        calls++;
        return subscriptionToken('alice', 'vip', {}, 1);
      },
    });
    const unsubscribed = record(sub, 'unsubscribed');
    const subscribing = record(sub, 'subscribing');
    await pause(firstDeadline + 150 - Date.now());
    assert.ok(calls >= 2, `getToken called ${calls} times: the subscribe and at least one refresh`);
    assert.deepEqual([unsubscribed.length, subscribing.length, sub.state], [0, 0, 'subscribed']);
    const got = publications(sub, 1);
    await hub.ws.channels!.publish('vip', 'still here');
    assert.deepEqual(await got, ['still here']);
  });

  it('a short-lived token without refresh: unsubscribed 2501 at exp, then the SDK resubscribes via getToken', async () => {
    const hub = await startChannelHub({ channels, channelLimits: channelLimits({ expiredCloseDelay: 0 }) });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    // A token valid to the end of the next second (1 to 1.2 s away, late in
    // this one); getToken only after that.
    await lateInSecond();
    let calls = 0;
    const { sub } = await subscribed(client, 'vip', {
      token: await subscriptionToken('alice', 'vip', {}, 1),
      getToken: () => {
        calls++;
        return subscriptionToken('alice', 'vip', {}, 3600);
      },
    });
    // the SDK's own refresh timer (ttl) races the server's expiry: take it out
    const withTimer = sub as unknown as { _refreshTimeout: NodeJS.Timeout | null };
    if (withTimer._refreshTimeout !== null) clearTimeout(withTimer._refreshTimeout);
    const subscribing = nextEvent<{ code: number; reason: string }>(sub, 'subscribing', 4000);
    const resubscribed = nextEvent(sub, 'subscribed', 4000);
    assert.deepEqual(await subscribing, { channel: 'vip', code: 2501, reason: 'subscription expired' });
    await resubscribed;
    assert.equal(calls, 1);
    assert.equal(sub.state, 'subscribed');
  });
});
