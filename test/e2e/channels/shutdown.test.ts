/**
 * Shutdown of a server with channel clients: every channel connection is
 * closed with 3001 shutdown, on which the official SDK reconnects.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { cleanupHubs } from '../server/harness.ts';
import {
  closeClients,
  closeRawClients,
  connected,
  connectionToken,
  nextEvent,
  rawChannelClient,
  sdkClient,
  startChannelHub,
  subscribed,
  within,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  closeRawClients();
  await cleanupHubs();
});

describe('channel shutdown', () => {
  it('closes SDK and raw channel clients with 3001; the SDK goes to connecting', async () => {
    const hub = await startChannelHub({ channels: { allowSubscribeForClient: true } });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    await subscribed(client, 'news');
    const raw = await rawChannelClient(hub);
    await raw.connect(await connectionToken('bob'));
    const silent = await rawChannelClient(hub); // upgraded, never sent connect
    const connecting = nextEvent<{ code: number; reason: string }>(client, 'connecting');
    await within(hub.ws.shutdown({ timeout: 1000 }), 3000, 'shutdown');
    assert.deepEqual(await connecting, { code: 3001, reason: 'shutdown' });
    for (const c of [raw, silent]) {
      const close = await within(c.closed, 3000, 'close');
      assert.deepEqual([close.code, close.reason], [3001, 'shutdown']);
    }
    assert.equal(hub.ws.channels!.connectionCount, 0);
    assert.equal(hub.ws.channels!.channelMetrics().channel_subscriptions, 0);
  });
});
