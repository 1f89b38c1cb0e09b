import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { cleanupHubs } from '../server/harness.ts';
import {
  closeClients,
  connected,
  connectionToken,
  publications,
  sdkClient,
  startChannelHub,
  subscribed,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

describe('channels with the official SDK', () => {
  it('connects with a token, subscribes, and receives a server publication', async () => {
    const hub = await startChannelHub({ channels: { allowSubscribeForClient: true } });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    const ctx = await connected(client);
    assert.match(ctx.client, /^[0-9a-f-]{36}$/);
    const { sub } = await subscribed(client, 'news');
    const got = publications(sub, 2);
    await hub.ws.channels!.publish('news', { n: 1 });
    hub.ws.hub.broadcastRoom('news', 1, '{"n":2}');
    assert.deepEqual(await got, [{ n: 1 }, { n: 2 }]);
  });
});
