/**
 * The protocol's ping/pong end to end: the connect reply announces it, the
 * official SDK answers every server ping and stays connected, and a client
 * that does not answer is closed with 3012 no pong.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from '../../../src/errors.ts';
import { createWshub } from '../../../src/server/server.ts';
import { cleanupHubs, SECRET } from '../server/harness.ts';
import {
  channelLimits,
  closeClients,
  closeRawClients,
  connected,
  connectionToken,
  rawChannelClient,
  recordEvents,
  sdkClient,
  startChannelHub,
  within,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  closeRawClients();
  await cleanupHubs();
});

const PING = 200;
const PONG = 150;

describe('channel ping/pong', () => {
  it('announces the ping interval in seconds and pong: true in the connect reply', async () => {
    const hub = await startChannelHub({
      channelLimits: channelLimits({ pingInterval: 2000, pongTimeout: 500 }),
    });
    const raw = await rawChannelClient(hub);
    const reply = await raw.connect(await connectionToken('alice'));
    const result = reply.connect as Record<string, unknown>;
    assert.deepEqual([result.ping, result.pong], [2, true]);
  });

  it('announces no ping when pings are off', async () => {
    const hub = await startChannelHub({ channelLimits: channelLimits({ pingInterval: 0 }) });
    const raw = await rawChannelClient(hub);
    const result = (await raw.connect(await connectionToken('alice'))).connect as Record<string, unknown>;
    assert.deepEqual([result.ping, result.pong], [undefined, undefined]);
  });

  it('keeps the SDK connected across several pings, which it answers', async () => {
    const hub = await startChannelHub({
      channelLimits: channelLimits({ pingInterval: PING, pongTimeout: PONG }),
      channelHooks: { onRpc: () => 'pong' },
    });
    // A raw client that answers too, to count the pings that went out meanwhile.
    const witness = await rawChannelClient(hub);
    await witness.connect(await connectionToken('witness'));
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const events = recordEvents(client, ['connecting', 'disconnected', 'error']);
    await sleep(PING * 6);
    const pings = witness.messages.filter((m) => Object.keys(m).length === 0).length;
    assert.ok(pings >= 4, `only ${pings} pings in ${PING * 6} ms`);
    assert.deepEqual(events, []);
    assert.equal(client.state, 'connected');
    assert.deepEqual((await client.rpc('x', null)).data, 'pong');
  });

  it('closes a client that does not answer a ping with 3012 within pingInterval + pongTimeout', async () => {
    const hub = await startChannelHub({
      channelLimits: channelLimits({ pingInterval: PING, pongTimeout: PONG }),
    });
    const raw = await rawChannelClient(hub, { answerPings: false });
    await raw.connect(await connectionToken('alice'));
    const close = await within(raw.closed, 3000, 'close');
    assert.deepEqual([close.code, close.reason], [3012, 'no pong']);
    assert.ok(close.afterMs >= PONG - 20, `closed after ${close.afterMs} ms`);
    assert.ok(close.afterMs < PING + PONG + 500, `closed after ${close.afterMs} ms`);
    assert.deepEqual(raw.messages.slice(1), [{}], 'one ping, then the close');
  });

  it('refuses a pongTimeout that is not below pingInterval (a client would never be dropped)', async () => {
    for (const [pingInterval, pongTimeout] of [
      [200, 200],
      [200, 300],
    ] as const) {
      assert.throws(
        () => createWshub({ secret: SECRET, channelLimits: channelLimits({ pingInterval, pongTimeout }) }),
        (error: unknown) => error instanceof ConfigError && /channelLimits\.pongTimeout/.test(error.message),
      );
    }
    // Without pings, pongTimeout does not matter.
    const ws = createWshub({
      secret: SECRET,
      channelLimits: channelLimits({ pingInterval: 0, pongTimeout: 300 }),
    });
    await ws.shutdown({ timeout: 100 });
  });
});
