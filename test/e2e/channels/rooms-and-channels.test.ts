// Rooms and channels are one space of names: hub broadcasts reach raw /ws
// members and SDK subscribers; SDK publications reach raw members as JSON
// text; raw text reaches subscribers as a JSON value (or a JSON string when
// it is not JSON, counted); raw binary is skipped (counted); room counts
// and maxRoomConnections cover both kinds of member.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import {
  authHeaders,
  cleanupHubs,
  connectClient,
  expectRefused,
  type Client,
  type RunningHub,
} from '../server/harness.ts';
import {
  closeClients,
  connected,
  connectionToken,
  pause,
  publications,
  record,
  refusedSubscribe,
  sdkClient,
  startChannelHub,
  subscribed,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

const ROOM = 'chat:general';
const channels = {
  namespaces: [{ name: 'chat', allowSubscribeForClient: true, allowPublishForSubscriber: true }],
};

async function rawMember(hub: RunningHub, room = ROOM): Promise<Client> {
  return connectClient(hub.url(`/ws?room=${room}`), { headers: await authHeaders() });
}

describe('rooms and channels', () => {
  it('hub.broadcastRoom reaches raw members and SDK subscribers', async () => {
    const hub = await startChannelHub({ channels });
    const raw = await rawMember(hub);
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const { sub } = await subscribed(client, ROOM);
    const got = publications(sub, 1);
    hub.ws.hub.broadcastRoom(ROOM, 1, '{"hello":"all"}');
    assert.deepEqual(await got, [{ hello: 'all' }]);
    assert.equal((await raw.queue.next(2000)).text, '{"hello":"all"}');
  });

  it('an SDK publication reaches raw members as the JSON text of its data', async () => {
    const hub = await startChannelHub({ channels });
    const raw = await rawMember(hub);
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const { sub } = await subscribed(client, ROOM);
    await sub.publish({ text: 'hi', n: [1, 2] });
    await sub.publish('plain');
    const first = await raw.queue.next(2000);
    assert.deepEqual([first.binary, JSON.parse(first.text)], [false, { text: 'hi', n: [1, 2] }]);
    assert.equal((await raw.queue.next(2000)).text, '"plain"');
  });

  it('raw text reaches SDK subscribers: JSON as its value, other text as a JSON string (counted); binary is skipped (counted)', async () => {
    const hub = await startChannelHub({ channels });
    const raw = await rawMember(hub);
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const { sub } = await subscribed(client, ROOM);
    const got = record<{ data: unknown }>(sub, 'publication');
    const before = hub.ws.metrics();
    await raw.conn.sendText('{"a":1}');
    await raw.conn.sendBinary(Buffer.from([1, 2, 3]));
    await raw.conn.sendText('just words');
    await raw.conn.sendText('42');
    await raw.conn.sendText('[1,"x"]');
    await pause(150);
    assert.deepEqual(
      got.map((p) => p.data),
      [{ a: 1 }, 'just words', 42, [1, 'x']],
    );
    const after = hub.ws.metrics();
    assert.equal(after.channel_text_wrapped! - before.channel_text_wrapped!, 1);
    assert.equal(after.channel_binary_skipped! - before.channel_binary_skipped!, 1);
  });

  it('raw JSON text spread over lines (pretty-printed) reaches SDK subscribers as its value', async () => {
    const hub = await startChannelHub({ channels });
    const raw = await rawMember(hub);
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const { sub } = await subscribed(client, ROOM);
    const got = publications(sub, 2);
    await raw.conn.sendText(JSON.stringify({ a: 1, list: [1, 2] }, null, 2));
    await raw.conn.sendText('{"b":\n\t2,\n"c":"x\\ny"}');
    assert.deepEqual(await got, [
      { a: 1, list: [1, 2] },
      { b: 2, c: 'x\ny' },
    ]);
    assert.equal(client.state, 'connected');
  });

  it('a raw member alone in a channel with history: its messages are kept and readable later', async () => {
    const hub = await startChannelHub({
      channels: {
        namespaces: [
          {
            name: 'chat',
            allowSubscribeForClient: true,
            allowHistoryForSubscriber: true,
            historySize: 10,
            historyTtl: 60_000,
          },
        ],
      },
    });
    const raw = await rawMember(hub);
    await raw.conn.sendText('{"first":true}');
    await raw.conn.sendText('second');
    for (let i = 0; i < 100 && (await hub.ws.channels!.history(ROOM)).offset < 2; i++) await pause(10);
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const { sub } = await subscribed(client, ROOM);
    const h = await sub.history({ limit: -1 });
    assert.deepEqual(
      h.publications.map((p): unknown[] => [p.offset, p.data as unknown]),
      [
        [1, { first: true }],
        [2, 'second'],
      ],
    );
  });

  it('getRoomCount counts raw members and channel subscribers', async () => {
    const hub = await startChannelHub({ channels });
    const raw1 = await rawMember(hub);
    await rawMember(hub);
    const a = sdkClient(hub, { token: await connectionToken('alice') });
    const b = sdkClient(hub, { token: await connectionToken('bob') });
    await connected(a);
    await connected(b);
    await subscribed(a, ROOM);
    const { sub } = await subscribed(b, ROOM);
    assert.equal(hub.ws.hub.getRoomCount(ROOM), 4);
    sub.unsubscribe();
    raw1.conn.close();
    await raw1.conn.closed();
    for (let i = 0; i < 100 && hub.ws.hub.getRoomCount(ROOM) !== 2; i++) await pause(10);
    assert.equal(hub.ws.hub.getRoomCount(ROOM), 2);
  });

  it('maxRoomConnections bounds raw members and subscribers together', async () => {
    const hub = await startChannelHub({ channels, maxRoomConnections: 2 });
    await rawMember(hub);
    const a = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(a);
    await subscribed(a, ROOM);
    // the room is full: a subscriber is refused with 106, a raw member with 429
    const b = sdkClient(hub, { token: await connectionToken('bob') });
    await connected(b);
    assert.deepEqual(await refusedSubscribe(b, ROOM), { code: 106, reason: 'limit exceeded' });
    await expectRefused(
      hub.url(`/ws?room=${ROOM}`),
      { headers: await authHeaders() },
      429,
      'WEBSOCKET_JOIN_DENIED',
    );
    // another room is not affected
    await subscribed(b, 'chat:other');
    assert.equal(hub.ws.hub.getRoomCount(ROOM), 2);
  });
});
