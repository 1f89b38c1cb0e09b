// The Protocol Buffers encoding end to end with the SDK's protobuf build
// (`centrifuge/build/protobuf`, subprotocol `centrifuge-protobuf`): connect,
// subscribe, publish, history, presence, recovery, rpc and ping; binary
// data byte for byte between protobuf subscribers and raw /ws room members
// in both directions; JSON and protobuf SDK clients on one channel.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { SubscribedContext } from 'centrifuge';
import WebSocket from 'ws';
import { authHeaders, cleanupHubs, connectClient, type Client, type RunningHub } from '../server/harness.ts';
import {
  CHANNEL_PATH,
  atLeast,
  captureSockets,
  channelLimits,
  closeClients,
  connected,
  connectionToken,
  nextEvent,
  pause,
  record,
  recordEvents,
  sdkClient,
  sdkProtobufClient,
  startChannelHub,
  subscribed,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

const ROOM = 'chat:general';
const channels = {
  namespaces: [
    {
      name: 'chat',
      allowSubscribeForClient: true,
      allowPublishForSubscriber: true,
      allowHistoryForSubscriber: true,
      allowPresenceForSubscriber: true,
      presence: true,
      joinLeave: true,
      historySize: 20,
      historyTtl: 60_000,
      forceRecovery: true,
    },
  ],
};

/** Bytes that are neither UTF-8 nor JSON. */
const BINARY = Uint8Array.from([0, 1, 2, 0xfe, 0xff, 0x80, 0x0a, 0x7b]);
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const bytesOf = (data: unknown): number[] => [...(data as Uint8Array)];

async function rawMember(hub: RunningHub): Promise<Client> {
  return connectClient(hub.url(`/ws?room=${ROOM}`), { headers: await authHeaders() });
}

describe('protobuf encoding with the SDK protobuf build', () => {
  it('negotiates centrifuge-protobuf when offered, and nothing for a JSON client', async () => {
    const hub = await startChannelHub({ channels });
    const offered = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(hub.url(CHANNEL_PATH), ['other', 'centrifuge-protobuf']);
      ws.once('open', () => {
        resolve(ws.protocol);
        ws.terminate();
      });
      ws.once('error', reject);
    });
    assert.equal(offered, 'centrifuge-protobuf');
    const plain = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(hub.url(CHANNEL_PATH));
      ws.once('open', () => {
        resolve(ws.protocol);
        ws.terminate();
      });
      ws.once('error', reject);
    });
    assert.equal(plain, '');
  });

  it('connect, subscribe, publish bytes, history, presence and presence stats', async () => {
    const hub = await startChannelHub({ channels });
    const client = sdkProtobufClient(hub, { token: await connectionToken('alice', { info: { n: 1 } }) });
    const ctx = await connected(client);
    assert.match(ctx.client, /^[0-9a-f-]{36}$/);
    const { sub, ctx: subscribedCtx } = await subscribed(client, ROOM);
    assert.equal(subscribedCtx.recoverable, true);
    const pubs = record<{ data: unknown; offset?: number; info?: { user: string; connInfo?: Uint8Array } }>(
      sub,
      'publication',
    );
    await sub.publish(BINARY);
    await sub.publish(text('{"a": [1, 2]}'));
    await atLeast(pubs, 2);
    assert.deepEqual(bytesOf(pubs[0]!.data), [...BINARY]);
    assert.deepEqual(bytesOf(pubs[1]!.data), [...text('{"a": [1, 2]}')]);
    assert.deepEqual(
      pubs.map((p) => p.offset),
      [1, 2],
    );
    assert.equal(pubs[0]!.info?.user, 'alice');
    assert.equal(Buffer.from(pubs[0]!.info.connInfo as Uint8Array).toString(), '{"n":1}');

    const history = await sub.history({ limit: 10 });
    assert.deepEqual(
      history.publications.map((p) => bytesOf(p.data)),
      [[...BINARY], [...text('{"a": [1, 2]}')]],
    );
    assert.equal(history.offset, 2);
    const reversed = await sub.history({ limit: 1, reverse: true });
    assert.deepEqual(bytesOf(reversed.publications[0]!.data), [...text('{"a": [1, 2]}')]);

    const presence = await sub.presence();
    assert.deepEqual(
      Object.values(presence.clients).map((c) => c.user),
      ['alice'],
    );
    assert.deepEqual(await sub.presenceStats(), { numClients: 1, numUsers: 1 });
  });

  it('errors come back as reply errors (publish without permission: 103)', async () => {
    const hub = await startChannelHub({ channels });
    const client = sdkProtobufClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    await assert.rejects(client.publish(ROOM, BINARY), (e: { code?: number }) => e.code === 103);
    assert.equal(client.state, 'connected');
  });

  it('rpc: JSON bytes reach onRpc as their value, other bytes as bytes; the result comes back as JSON bytes', async () => {
    const seen: Array<{ data: unknown; bytes?: number[] }> = [];
    const hub = await startChannelHub({
      channels,
      channelHooks: {
        onRpc: ({ data, bytes }) => {
          seen.push({ data, ...(bytes === undefined ? {} : { bytes: [...bytes] }) });
          return { echo: data ?? null };
        },
      },
    });
    const client = sdkProtobufClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const first = await client.rpc('m', text('{"x":1}'));
    const second = await client.rpc('m', BINARY);
    assert.equal(Buffer.from(first.data as Uint8Array).toString(), '{"echo":{"x":1}}');
    assert.equal(Buffer.from(second.data as Uint8Array).toString(), '{"echo":null}');
    assert.deepEqual(seen, [
      { data: { x: 1 }, bytes: [...text('{"x":1}')] },
      { data: undefined, bytes: [...BINARY] },
    ]);
  });

  it('answers server pings and stays connected', async () => {
    const hub = await startChannelHub({
      channels,
      channelLimits: channelLimits({ pingInterval: 200, pongTimeout: 150 }),
    });
    const client = sdkProtobufClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const events = recordEvents(client, ['connecting', 'disconnected', 'error']);
    await pause(1000);
    assert.deepEqual(events, []);
    assert.equal(client.state, 'connected');
  });

  it('recovers what it missed, byte for byte, after a dropped socket', async () => {
    const hub = await startChannelHub({ channels });
    const sockets = captureSockets(hub);
    const client = sdkProtobufClient(hub, {
      token: await connectionToken('alice'),
      minReconnectDelay: 400,
      maxReconnectDelay: 500,
    });
    await connected(client);
    sockets.stop();
    const sub = client.newSubscription(ROOM);
    const pubs = record<{ data: unknown; offset?: number }>(sub, 'publication');
    const subscribedEvents = record<SubscribedContext>(sub, 'subscribed');
    sub.subscribe();
    await atLeast(subscribedEvents, 1);
    const raw = await rawMember(hub);
    await raw.conn.sendBinary(Buffer.from(BINARY));
    await atLeast(pubs, 1);

    const connecting = nextEvent(client, 'connecting');
    assert.equal(sockets.drop(), 1);
    await connecting;
    // While the client is away: binary and text from the raw member, JSON from the API.
    const channelApi = hub.ws.channels!;
    await raw.conn.sendBinary(Buffer.from([9, 8, 7]));
    await raw.conn.sendText('not json');
    for (let i = 0; i < 100 && (await channelApi.history(ROOM)).offset < 3; i++) await pause(5);
    await channelApi.publish(ROOM, { n: 4 });
    assert.equal(subscribedEvents.length, 1, 'all three were published before the client came back');
    await atLeast(subscribedEvents, 2, 3000);
    await atLeast(pubs, 4);
    await pause(100);
    const again = subscribedEvents[1]!;
    assert.deepEqual([again.wasRecovering, again.recovered], [true, true]);
    assert.deepEqual(
      pubs.map((p) => bytesOf(p.data)),
      [[...BINARY], [9, 8, 7], [...text('not json')], [...text('{"n":4}')]],
    );
    assert.deepEqual(
      pubs.map((p) => p.offset),
      [1, 2, 3, 4],
    );
    raw.conn.close();
    await raw.conn.closed();
  });
});

describe('protobuf clients and raw /ws room members', () => {
  it('binary from a raw member reaches protobuf subscribers byte for byte (JSON subscribers skip it, counted)', async () => {
    const hub = await startChannelHub({ channels });
    const raw = await rawMember(hub);
    const pb = sdkProtobufClient(hub, { token: await connectionToken('alice') });
    await connected(pb);
    const { sub } = await subscribed(pb, ROOM);
    const json = sdkClient(hub, { token: await connectionToken('bob') });
    await connected(json);
    const { sub: jsonSub } = await subscribed(json, ROOM);
    const got = record<{ data: unknown }>(sub, 'publication');
    const jsonGot = record<{ data: unknown }>(jsonSub, 'publication');
    const before = hub.ws.metrics();
    const payloads = [Buffer.from(BINARY), Buffer.alloc(70_000, 0xab), Buffer.from([0xff])];
    for (const payload of payloads) await raw.conn.sendBinary(payload);
    await raw.conn.sendText('{"after":"binary"}');
    await atLeast(got, 4);
    await atLeast(jsonGot, 1);
    await pause(100);
    assert.deepEqual(
      got.slice(0, 3).map((p) => Buffer.from(p.data as Uint8Array)),
      payloads,
    );
    assert.equal(Buffer.from(got[3]!.data as Uint8Array).toString(), '{"after":"binary"}');
    assert.deepEqual(
      jsonGot.map((p) => p.data),
      [{ after: 'binary' }],
    );
    assert.equal(hub.ws.metrics().channel_binary_skipped! - before.channel_binary_skipped!, 3);
  });

  it('a protobuf client publication reaches raw members unchanged: binary frames for bytes, text frames for JSON', async () => {
    const hub = await startChannelHub({ channels });
    const raw = await rawMember(hub);
    const pb = sdkProtobufClient(hub, { token: await connectionToken('alice') });
    await connected(pb);
    const { sub } = await subscribed(pb, ROOM);
    await sub.publish(BINARY);
    await sub.publish(text('{"x":\n1}'));
    const first = await raw.queue.next(2000);
    assert.equal(first.binary, true);
    assert.deepEqual([...first.data], [...BINARY]);
    const second = await raw.queue.next(2000);
    assert.equal(second.binary, false);
    assert.equal(second.text, '{"x":\n1}');
  });

  it('a JSON and a protobuf SDK client on one channel', async () => {
    const hub = await startChannelHub({ channels });
    const pb = sdkProtobufClient(hub, { token: await connectionToken('alice') });
    await connected(pb);
    const { sub: pbSub } = await subscribed(pb, ROOM, { joinLeave: true });
    const joins = record<{ info: { user: string } }>(pbSub, 'join');
    const json = sdkClient(hub, { token: await connectionToken('bob') });
    await connected(json);
    const { sub: jsonSub } = await subscribed(json, ROOM);
    const pbGot = record<{ data: unknown; info?: { user: string } }>(pbSub, 'publication');
    const jsonGot = record<{ data: unknown; info?: { user: string } }>(jsonSub, 'publication');
    const before = hub.ws.metrics();

    await jsonSub.publish({ from: 'json', list: [1, 'two'] });
    await pbSub.publish(text('{"from": "protobuf"}'));
    await pbSub.publish(BINARY);
    await jsonSub.publish('last');
    await atLeast(pbGot, 4);
    await atLeast(jsonGot, 3);
    await pause(100);
    assert.deepEqual(
      pbGot.map((p) => Buffer.from(p.data as Uint8Array)),
      [
        Buffer.from('{"from":"json","list":[1,"two"]}'),
        Buffer.from('{"from": "protobuf"}'),
        Buffer.from(BINARY),
        Buffer.from('"last"'),
      ],
    );
    assert.deepEqual(
      pbGot.map((p) => p.info?.user),
      ['bob', 'alice', 'alice', 'bob'],
    );
    assert.deepEqual(
      jsonGot.map((p) => p.data),
      [{ from: 'json', list: [1, 'two'] }, { from: 'protobuf' }, 'last'],
    );
    assert.deepEqual(
      jsonGot.map((p) => p.info?.user),
      ['bob', 'alice', 'bob'],
    );
    assert.equal(hub.ws.metrics().channel_binary_skipped! - before.channel_binary_skipped!, 1);
    // The JSON client joined after the protobuf one subscribed with join/leave.
    assert.ok(
      joins.some((j) => j.info.user === 'bob'),
      'the join of the JSON client',
    );
    // History in JSON leaves out what has no JSON form; in protobuf it has everything.
    assert.deepEqual(
      (await jsonSub.history({ limit: 10 })).publications.map((p): unknown => p.data),
      [{ from: 'json', list: [1, 'two'] }, { from: 'protobuf' }, 'last'],
    );
    assert.equal((await pbSub.history({ limit: 10 })).publications.length, 4);
  });
});
