/**
 * Bounds and bad input of the channel protocol, each with its exact code:
 * malformed frames and commands (3501), commands per frame (3501), the
 * command rate (111), commands waiting behind a slow hook (3013), the
 * frame size (1009), the publication size and the subscription count (106).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanupHubs, type RunningHub } from '../server/harness.ts';
import {
  channelLimits,
  closeClients,
  closeRawClients,
  connected,
  connectionToken,
  nextEvent,
  publications,
  rawChannelClient,
  sdkClient,
  startChannelHub,
  subscribed,
  within,
  type RawChannelClient,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  closeRawClients();
  await cleanupHubs();
});

/** A raw client past its connect. */
async function connectedRaw(hub: RunningHub, user = 'alice'): Promise<RawChannelClient> {
  const raw = await rawChannelClient(hub);
  await raw.connect(await connectionToken(user));
  return raw;
}

const rpcHooks = { onRpc: ({ method }: { method: string }) => method };

describe('channel bad input', () => {
  it('closes a connect whose server-side subscription carries a malformed recovery position with 3501', async () => {
    const hub = await startChannelHub({
      channels: { namespaces: [{ name: 'feed', historySize: 10, historyTtl: 60_000, forceRecovery: true }] },
    });
    const raw = await rawChannelClient(hub);
    const token = await connectionToken('alice', { channels: ['feed:a'] });
    raw.send({ id: 1, connect: { token, subs: { 'feed:a': { recover: true, offset: -1, epoch: 'x' } } } });
    const close = await within(raw.closed, 3000, 'close');
    assert.deepEqual([close.code, close.reason], [3501, 'bad request']);
    assert.equal(hub.ws.hub.getRoomCount('feed:a'), 0, 'nothing left registered');
  });

  it('closes each malformed frame or command with 3501 and answers none of it', async () => {
    const hub = await startChannelHub({ channelHooks: rpcHooks });
    const cases: [string, string | Buffer][] = [
      ['not JSON', 'hello'],
      ['truncated JSON', '{"id":2,"rpc":{"method":"a"}'],
      ['a JSON array', '[{"id":2,"rpc":{}}]'],
      ['a JSON string', '"rpc"'],
      ['a binary frame', Buffer.from('{"id":2,"rpc":{"method":"a"}}')],
      ['rpc without id', '{"rpc":{"method":"a"}}'],
      ['ping without id', '{"ping":{}}'],
      ['id 0', '{"id":0,"rpc":{"method":"a"}}'],
      ['a string id', '{"id":"2","rpc":{"method":"a"}}'],
      ['a negative id', '{"id":-2,"rpc":{"method":"a"}}'],
      ['a fractional id', '{"id":2.5,"rpc":{"method":"a"}}'],
      ['a request that is not an object', '{"id":2,"rpc":"a"}'],
      ['an rpc method that is not a string', '{"id":2,"rpc":{"method":5}}'],
      ['a channel that is not a string', '{"id":2,"subscribe":{"channel":5}}'],
      ['an empty channel', '{"id":2,"history":{"channel":""}}'],
      ['refresh without a token', '{"id":2,"refresh":{}}'],
      ['a second connect', '{"id":2,"connect":{}}'],
      ['a good command then a bad line', '{"id":2,"rpc":{"method":"a"}}\nnope'],
    ];
    for (const [name, frame] of cases) {
      const raw = await connectedRaw(hub);
      raw.ws.send(frame, { binary: Buffer.isBuffer(frame) });
      const close = await within(raw.closed, 3000, name);
      assert.deepEqual([close.code, close.reason], [3501, 'bad request'], name);
      assert.deepEqual(raw.messages.slice(1), [], `${name}: no reply`);
    }
  });

  it('closes a text frame that is not UTF-8 with 1007, as on /ws', async () => {
    const hub = await startChannelHub({ channelHooks: rpcHooks });
    const raw = await connectedRaw(hub);
    raw.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    assert.equal((await within(raw.closed, 3000, 'close')).code, 1007);
    assert.deepEqual(raw.messages.slice(1), []);
  });

  it('runs no command that arrives after the one that closed the connection', async () => {
    const hub = await startChannelHub({
      channels: { allowSubscribeForClient: true, allowPublishForClient: true },
      channelHooks: rpcHooks,
    });
    const observer = sdkClient(hub, { token: await connectionToken('observer') });
    await connected(observer);
    const { sub } = await subscribed(observer, 'chat');
    const got = publications(sub, 1);
    const publish = (id: number): unknown => ({
      id,
      publish: { channel: 'chat', data: `after close ${id}` },
    });
    // In the next frame, on the wire before the close frame reaches the client.
    const a = await connectedRaw(hub);
    a.ws.send('{"id":2,"rpc":"bad"}');
    a.send(publish(3));
    // Queued behind a command that waits (a token check) and then closes the connection (3500).
    const b = await connectedRaw(hub);
    b.send({ id: 2, refresh: { token: await connectionToken('mallory') } }, publish(3));
    // Queued behind a waiting command, after one that closes the connection (3501).
    const c = await connectedRaw(hub);
    c.send({ id: 2, rpc: { method: 'm' } }, { id: 3, rpc: 'bad' }, publish(4));
    const closes = await within(Promise.all([a.closed, b.closed, c.closed]), 3000, 'closes');
    assert.deepEqual(
      closes.map((close) => close.code),
      [3501, 3500, 3501],
    );
    await hub.ws.channels!.publish('chat', 'marker');
    assert.deepEqual(await got, ['marker']);
  });

  it('takes the pong {} and send without an id, and empty lines between commands', async () => {
    const hub = await startChannelHub({ channelHooks: { ...rpcHooks, onSend: () => {} } });
    const raw = await connectedRaw(hub);
    raw.ws.send('{}\n{"send":{"data":1}}\n\n{"id":2,"rpc":{"method":"a"}}\n');
    assert.deepEqual(await raw.reply(2), { id: 2, rpc: { data: 'a' } });
  });

  it('closes a frame with more than maxCommandsPerFrame commands with 3501 before running any', async () => {
    const hub = await startChannelHub({
      channelLimits: channelLimits({ maxCommandsPerFrame: 3 }),
      channelHooks: rpcHooks,
    });
    const fits = await connectedRaw(hub);
    fits.send(...[2, 3, 4].map((id) => ({ id, rpc: { method: `m${id}` } })));
    assert.deepEqual(await fits.reply(4), { id: 4, rpc: { data: 'm4' } });
    const raw = await connectedRaw(hub);
    raw.send(...[2, 3, 4, 5].map((id) => ({ id, rpc: { method: `m${id}` } })));
    const close = await within(raw.closed, 3000, 'close');
    assert.equal(close.code, 3501);
    assert.deepEqual(raw.messages.slice(1), []);
  });
});

describe('channel bounds', () => {
  it('answers commands beyond maxCommandsPerSecond with 111 and keeps serving other clients', async () => {
    const hub = await startChannelHub({
      channelLimits: channelLimits({ maxCommandsPerSecond: 5 }),
      channelHooks: rpcHooks,
    });
    const other = sdkClient(hub, { token: await connectionToken('bob') });
    await connected(other);
    const raw = await connectedRaw(hub); // the connect took one of the burst of 10
    const ids = Array.from({ length: 14 }, (_, i) => i + 2);
    raw.send(...ids.map((id) => ({ id, rpc: { method: 'm' } })));
    await raw.reply(15);
    const replies = raw.messages.slice(1);
    assert.deepEqual(
      replies.map((r) => r.id),
      ids,
    );
    const answered = replies.filter((r) => r.rpc !== undefined).length;
    assert.ok(answered === 9 || answered === 10, `${answered} answered`); // 10 if a token refilled meanwhile
    for (const r of replies.slice(0, answered)) assert.deepEqual(r.rpc, { data: 'm' });
    for (const r of replies.slice(answered))
      assert.deepEqual(r.error, { code: 111, message: 'too many requests', temporary: true });
    assert.equal(raw.ws.readyState, raw.ws.OPEN);
    assert.deepEqual(await other.rpc('still', {}), { data: 'still' });
    await sleep(450); // two tokens back at 5 per second
    raw.send({ id: 20, rpc: { method: 'later' } });
    assert.deepEqual(await raw.reply(20), { id: 20, rpc: { data: 'later' } });
  });

  it('closes a client with more than maxPendingCommands waiting behind a slow hook with 3013', async () => {
    const hub = await startChannelHub({
      channelLimits: channelLimits({ maxPendingCommands: 3, maxCommandsPerFrame: 1, hookTimeout: 5000 }),
      channelHooks: { onRpc: ({ method }) => (method === 'slow' ? new Promise<never>(() => {}) : method) },
    });
    const raw = await connectedRaw(hub);
    raw.send({ id: 2, rpc: { method: 'slow' } });
    for (const id of [3, 4, 5]) raw.send({ id, rpc: { method: 'm' } });
    await sleep(100);
    assert.equal(raw.ws.readyState, raw.ws.OPEN, 'three may wait');
    raw.send({ id: 6, rpc: { method: 'm' } });
    const close = await within(raw.closed, 3000, 'close');
    assert.deepEqual([close.code, close.reason], [3013, 'too many requests']);
    assert.deepEqual(raw.messages.slice(1), []);
  });

  it('closes a frame above readLimit with 1009, which the SDK takes as final', async () => {
    const hub = await startChannelHub({
      readLimit: 4096,
      channels: { allowPublishForClient: true },
    });
    const raw = await connectedRaw(hub);
    raw.ws.send(JSON.stringify({ id: 2, publish: { channel: 'news', data: 'x'.repeat(5000) } }));
    assert.equal((await within(raw.closed, 3000, 'close')).code, 1009);

    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const disconnected = nextEvent<{ code: number; reason: string }>(client, 'disconnected');
    client.publish('news', 'x'.repeat(5000)).catch(() => {});
    assert.deepEqual(await disconnected, { code: 3, reason: 'message size limit exceeded' });
  });

  it('answers a publication above maxPublicationBytes with 106 and delivers one at the limit', async () => {
    const hub = await startChannelHub({
      channels: { allowPublishForClient: true, allowSubscribeForClient: true },
      channelLimits: channelLimits({ maxPublicationBytes: 100 }),
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const { sub } = await subscribed(client, 'news');
    const got = publications(sub, 1);
    const atLimit = 'y'.repeat(98); // 100 bytes as JSON
    await assert.rejects(client.publish('news', 'y'.repeat(99)), {
      code: 106,
      message: 'limit exceeded',
    });
    await client.publish('news', atLimit);
    assert.deepEqual(await got, [atLimit]);
  });

  it('answers a subscribe beyond maxSubscriptions with 106; after an unsubscribe it fits', async () => {
    const hub = await startChannelHub({
      channels: { allowSubscribeForClient: true },
      channelLimits: channelLimits({ maxSubscriptions: 2 }),
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const { sub: a } = await subscribed(client, 'a');
    await subscribed(client, 'b');
    const c = client.newSubscription('c');
    const refused = nextEvent(c, 'unsubscribed');
    c.subscribe();
    assert.deepEqual(await refused, { channel: 'c', code: 106, reason: 'limit exceeded' });
    assert.equal(client.state, 'connected');
    const gone = nextEvent(a, 'unsubscribed');
    a.unsubscribe();
    await gone;
    const ok = nextEvent(c, 'subscribed');
    c.subscribe();
    await ok;
  });
});
