import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { afterEach, describe, it } from 'node:test';
import { cleanupHubs } from '../server/harness.ts';
import {
  CHANNEL_PATH,
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

describe('several commands and replies per frame', () => {
  it('answers the commands of one frame in one frame, one reply per line, in order', async () => {
    const hub = await startChannelHub({ channels: { allowSubscribeForClient: true } });
    const socket = new WebSocket(hub.url(CHANNEL_PATH));
    const frames: string[] = [];
    socket.on('message', (data: Buffer) => frames.push(data.toString('utf8')));
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    const token = await connectionToken('alice');
    socket.send(JSON.stringify({ id: 1, connect: { token } }));
    while (frames.length < 1) await sleep(10);
    const commands = [
      { id: 2, subscribe: { channel: 'a' } },
      { id: 3, subscribe: { channel: 'b' } },
      { id: 4, subscribe: { channel: 'a' } },
    ];
    socket.send(commands.map((c) => JSON.stringify(c)).join('\n'));
    while (frames.length < 2) await sleep(10);
    await sleep(50);
    socket.terminate();
    assert.equal(frames.length, 2, 'one frame for the three replies');
    const replies = frames[1]!.split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      replies.map((r) => [r.id, 'subscribe' in r ? 'subscribe' : (r.error as { code: number }).code]),
      [
        [2, 'subscribe'],
        [3, 'subscribe'],
        [4, 105],
      ],
    );
  });
});
