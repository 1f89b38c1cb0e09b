// Channel commands no SDK would send, from a raw client: each gets its
// exact reply error (or disconnect), and a refused subscribe leaves nothing
// behind (room registration, presence).
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { cleanupHubs, type RunningHub } from '../server/harness.ts';
import { RawProtocolClient, closeRawProtocolClients, connectionToken, startChannelHub } from './sdk.ts';

afterEach(async () => {
  closeRawProtocolClients();
  await cleanupHubs();
});

const channels = {
  allowSubscribeForClient: true,
  allowPublishForClient: true,
  allowHistoryForClient: true,
  allowPresenceForClient: true,
  presence: true,
  historySize: 5,
  historyTtl: 60_000,
  forceRecovery: true,
};

async function connectedRaw(hub: RunningHub, user = 'alice'): Promise<RawProtocolClient> {
  const raw = await RawProtocolClient.open(hub);
  const reply = await raw.call('connect', { token: await connectionToken(user) });
  assert.equal(typeof (reply.connect as { client?: unknown }).client, 'string');
  return raw;
}

const errorOf = (reply: Record<string, unknown>): unknown => reply.error;

describe('malformed channel commands', () => {
  it('each gets its reply error and the connection stays', async () => {
    const hub = await startChannelHub({ channels });
    const raw = await connectedRaw(hub);
    const bad = { code: 107, message: 'bad request' };
    assert.deepEqual(errorOf(await raw.call('subscribe', { channel: 'x'.repeat(300) })), bad);
    assert.deepEqual(errorOf(await raw.call('subscribe', { channel: 'nope:x' })), {
      code: 102,
      message: 'unknown channel',
    });
    assert.deepEqual(errorOf(await raw.call('publish', { channel: 'c' })), bad);
    assert.deepEqual(errorOf(await raw.call('history', { channel: 'c', limit: 'ten' })), bad);
    assert.deepEqual(errorOf(await raw.call('history', { channel: 'c', since: { offset: -1 } })), bad);
    assert.deepEqual(errorOf(await raw.call('history', { channel: 'c', reverse: 'yes' })), bad);
    assert.deepEqual(errorOf(await raw.call('presence', { channel: 'nope:x' })), {
      code: 102,
      message: 'unknown channel',
    });
    // still connected and working
    assert.deepEqual(await raw.call('publish', { channel: 'c', data: { ok: 1 } }), { id: 9, publish: {} });
  });

  it('a recovering subscribe with a malformed position is 107 and leaves no room member or presence behind', async () => {
    const hub = await startChannelHub({ channels });
    const raw = await connectedRaw(hub);
    for (const position of [{ offset: -5 }, { offset: 'x' }, { offset: 1, epoch: 7 }]) {
      const reply = await raw.call('subscribe', { channel: 'c', recover: true, ...position });
      assert.deepEqual(errorOf(reply), { code: 107, message: 'bad request' }, JSON.stringify(position));
    }
    assert.equal(hub.ws.hub.getRoomCount('c'), 0);
    assert.deepEqual(await hub.ws.channels!.presence('c'), {});
    // and a good subscribe afterwards works once
    const ok = await raw.call('subscribe', { channel: 'c' });
    assert.equal((ok.subscribe as { recoverable?: boolean }).recoverable, true);
    assert.equal(hub.ws.hub.getRoomCount('c'), 1);
    assert.equal(Object.keys(await hub.ws.channels!.presence('c')).length, 1);
  });

  it('an empty channel name or a token that is not a string: disconnected 3501', async () => {
    const hub = await startChannelHub({ channels });
    for (const body of [{ channel: '' }, { channel: 'c', token: 5 }, { channel: 7 }]) {
      const raw = await connectedRaw(hub);
      raw.sendRaw(JSON.stringify({ id: 9, subscribe: body }));
      assert.deepEqual(await raw.closed, { code: 3501, reason: 'bad request' }, JSON.stringify(body));
    }
  });
});
