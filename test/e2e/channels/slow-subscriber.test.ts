// A subscriber that stops reading while publications flow is disconnected
// with 3008 slow (not silently dropped); when it reads again and the SDK
// reconnects, it recovers every publication, each once and in order. The
// server holds a bounded number of bytes for it meanwhile.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { SubscribedContext } from 'centrifuge';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { cleanupHubs } from '../server/harness.ts';
import {
  atLeast,
  closeClients,
  connected,
  connectionToken,
  pause,
  record,
  sdkClient,
  startChannelHub,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

/** The SDK's WebSocket, remembering each instance so a test can pause its reading. */
const sockets: WebSocket[] = [];
class RecordingWebSocket extends WebSocket {
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args);
    sockets.push(this);
  }
}

// Random (base64) so that permessage-deflate, on by default here, cannot shrink it much on the wire.
const PAYLOAD = randomBytes(6 * 1024).toString('base64');
const QUEUE_BYTES = 256 * 1024;

describe('slow subscriber', () => {
  it('is disconnected with 3008, then reconnects and recovers every publication once, in order', async () => {
    const hub = await startChannelHub({
      channels: { allowSubscribeForClient: true, historySize: 2000, historyTtl: 60_000, forceRecovery: true },
      sendQueueBytes: QUEUE_BYTES,
      maxOutboundBytes: 4 * QUEUE_BYTES,
      closeTimeout: 10_000,
    });
    const api = hub.ws.channels!;
    const client = sdkClient(hub, {
      token: await connectionToken('slow'),
      websocket: RecordingWebSocket,
      minReconnectDelay: 50,
      maxReconnectDelay: 100,
    });
    const connecting = record<{ code: number; reason: string }>(client, 'connecting');
    await connected(client);
    const sub = client.newSubscription('feed');
    const subscribedEvents = record<SubscribedContext>(sub, 'subscribed');
    const got = record<{ data: { n: number } }>(sub, 'publication');
    sub.subscribe();
    await atLeast(subscribedEvents, 1);

    sockets.at(-1)!.pause();
    // Publish (one per turn, as separate frames) until the server gives up on the reader.
    let n = 0;
    const maxPublications = 1500; // 12 MiB at most, whatever the kernel buffers hold
    while ((hub.ws.metrics().channel_pushes_dropped ?? 0) === 0 && n < maxPublications) {
      await api.publish('feed', { n: ++n, pad: PAYLOAD });
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(n < maxPublications, `the reader was not given up after ${n} publications`);
    const givenUpAt = n;
    // More while it is away.
    for (let i = 0; i < 10; i++) await api.publish('feed', { n: ++n, pad: PAYLOAD });
    assert.ok((hub.ws.metrics().channel_pushes_dropped ?? 0) >= 1);

    sockets.at(0)!.resume();
    await atLeast(subscribedEvents, 2, 5000);
    await atLeast(got, n, 5000);
    await pause(100);
    assert.deepEqual(connecting.at(-1), { code: 3008, reason: 'slow' });
    const again = subscribedEvents[1]!;
    assert.deepEqual([again.wasRecovering, again.recovered], [true, true]);
    assert.deepEqual(
      got.map((p) => p.data.n),
      Array.from({ length: n }, (_, i) => i + 1),
      `given up after ${givenUpAt} publications`,
    );
  });
});
