// Interop: undici's WHATWG WebSocket (the implementation behind Node's global
// WebSocket) against `wshub echo`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { WebSocket, ping, type CloseEvent, type MessageEvent } from 'undici';
import {
  BINARY_SIZES,
  CLOSE_CODE,
  CLOSE_REASON,
  ECHOED_CLOSE_REASON,
  ORDERED_COUNT,
  TEXT_SAMPLES,
  orderedMessage,
  randomPayload,
  startEchoServer,
  subprotocolTests,
} from './echo-fixture.ts';

const limits = { timeout: 10_000 };

type Received = string | ArrayBuffer;

/** Opens a client and collects every message into a queue that `next()` reads in order. */
async function connect(url: string, protocols?: string[]) {
  const ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const queue: Received[] = [];
  const waiters: { resolve: (m: Received) => void; reject: (e: Error) => void }[] = [];
  ws.addEventListener('message', (event: MessageEvent) => {
    const data = event.data as Received;
    const waiter = waiters.shift();
    if (waiter) waiter.resolve(data);
    else queue.push(data);
  });
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener('close', resolve));
  // A reply that will never come must fail the test now, not at the runner's timeout.
  void closed.then((event) => {
    for (const waiter of waiters.splice(0)) {
      waiter.reject(new Error(`connection closed (${event.code}) while waiting for a message`));
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve());
    ws.addEventListener('error', () => reject(new Error(`could not connect to ${url}`)));
  });
  return {
    ws,
    closed,
    next(): Promise<Received> {
      const queued = queue.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      if (ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('connection is not open'));
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    },
    /** Closes cleanly when still open, so a failed assertion leaves no socket behind. */
    async dispose(): Promise<void> {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      await closed;
    },
  };
}

describe('undici WebSocket against wshub echo', () => {
  let server: Awaited<ReturnType<typeof startEchoServer>>;
  before(async () => {
    server = await startEchoServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('text messages, including non-ASCII, come back as the same text', limits, async () => {
    const client = await connect(`${server.wsUrl}/any/path`);
    try {
      for (const text of TEXT_SAMPLES) {
        client.ws.send(text);
        const reply = await client.next();
        assert.equal(typeof reply, 'string', 'opcode must stay text');
        assert.equal(reply, text);
      }
    } finally {
      await client.dispose();
    }
  });

  test('binary messages up to 1 MiB come back byte for byte', limits, async () => {
    const client = await connect(server.wsUrl);
    try {
      for (const size of BINARY_SIZES) {
        const payload = randomPayload(size);
        client.ws.send(payload);
        const reply = await client.next();
        assert.ok(reply instanceof ArrayBuffer, `opcode must stay binary (size ${size})`);
        const bytes = Buffer.from(reply);
        assert.equal(bytes.length, size);
        assert.ok(bytes.equals(payload), `payload of ${size} bytes differs`);
      }
    } finally {
      await client.dispose();
    }
  });

  test(`${ORDERED_COUNT} messages sent back to back come back in order`, limits, async () => {
    const client = await connect(server.wsUrl);
    try {
      const sent = Array.from({ length: ORDERED_COUNT }, (_, i) => orderedMessage(i));
      for (const text of sent) client.ws.send(text);
      const received: Received[] = [];
      for (let i = 0; i < ORDERED_COUNT; i++) received.push(await client.next());
      assert.deepEqual(received, sent);
    } finally {
      await client.dispose();
    }
  });

  test('a close with a code and reason is answered with the same code and reason', limits, async () => {
    const client = await connect(server.wsUrl);
    client.ws.close(CLOSE_CODE, CLOSE_REASON);
    const event = await client.closed;
    assert.equal(event.wasClean, true, 'the close handshake must complete');
    assert.equal(event.code, CLOSE_CODE);
    assert.equal(event.reason, ECHOED_CLOSE_REASON);
  });

  test('a ping is answered by a pong with the same payload', limits, async () => {
    const client = await connect(server.wsUrl);
    // undici has no pong event; it reports pongs on a diagnostics channel.
    const channel = diagnosticsChannel.channel('undici:websocket:pong');
    let onPong: ((message: unknown) => void) | undefined;
    try {
      const payload = Buffer.from('are you there? ✓');
      const pong = new Promise<Buffer>((resolve) => {
        onPong = (message: unknown) => {
          const { payload: body, websocket } = message as { payload: Buffer; websocket: unknown };
          if (websocket === client.ws) resolve(body);
        };
        channel.subscribe(onPong);
      });
      ping(client.ws, payload);
      const data = await pong;
      assert.ok(
        Buffer.from(data).equals(payload),
        `pong payload ${Buffer.from(data).toString('hex')} differs`,
      );
      client.ws.send('after ping');
      assert.equal(await client.next(), 'after ping');
    } finally {
      if (onPong) channel.unsubscribe(onPong);
      await client.dispose();
    }
  });

  subprotocolTests(() => server.wsUrl, connect, limits);
});
