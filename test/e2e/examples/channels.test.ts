// examples/channels.ts as a user runs it: the official SDK gets a token from
// its endpoint, subscribes to chat:general, sees itself in presence, calls the
// RPC method, and receives what the server API publishes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Centrifuge, type PublicationContext } from 'centrifuge';
import WebSocket from 'ws';
import { startChannelsExample, type RunningChannelsExample } from '../../../examples/channels.ts';

const KEY = randomBytes(32).toString('base64url');
let app: RunningChannelsExample;
let client: Centrifuge;

before(async () => {
  app = await startChannelsExample({ secret: randomBytes(32), apiKey: KEY });
});

after(async () => {
  client?.disconnect();
  await app.close();
});

describe('channels example', () => {
  test('token endpoint, subscribe, presence, rpc and a server API publication', async () => {
    client = new Centrifuge(`${app.url.replace('http', 'ws')}/connection/websocket`, {
      websocket: WebSocket,
      getToken: async () => (await fetch(`${app.url}/token?user=alice`)).text(),
    });
    const sub = client.newSubscription('chat:general');
    const got = new Promise<PublicationContext>((resolve) => sub.once('publication', resolve));
    const subscribed = new Promise((resolve) => sub.once('subscribed', resolve));
    sub.subscribe();
    client.connect();
    await subscribed;
    const presence = await sub.presence();
    assert.deepEqual(
      Object.values(presence.clients).map((c) => c.user),
      ['alice'],
    );
    assert.equal(typeof ((await client.rpc('time', {})).data as { now: unknown }).now, 'number');
    await assert.rejects(client.rpc('nope', {}), (e: { code: number }) => e.code === 104);
    const response = await fetch(`${app.url}/api/publish`, {
      method: 'POST',
      headers: { 'X-API-Key': KEY },
      body: JSON.stringify({ channel: 'chat:general', data: { text: 'hi' } }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(((await response.json()) as { result: { offset: number } }).result.offset, 1);
    assert.deepEqual((await got).data, { text: 'hi' });
  });
});
