// Interop: the `ws` package (the most used Node.js WebSocket client) against `wshub echo`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';
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

interface Received {
  data: Buffer;
  isBinary: boolean;
}

/** Opens a client and collects every message into a queue that `next()` reads in order. */
async function connect(url: string, protocols?: string[]) {
  const ws = new WebSocket(url, protocols, { maxPayload: 16 * 1024 * 1024 });
  const queue: Received[] = [];
  const waiters: { resolve: (m: Received) => void; reject: (e: Error) => void }[] = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const message = { data, isBinary };
    const waiter = waiters.shift();
    if (waiter) waiter.resolve(message);
    else queue.push(message);
  });
  // A reply that will never come must fail the test now, not at the runner's timeout.
  ws.on('close', (code: number) => {
    for (const waiter of waiters.splice(0))
      waiter.reject(new Error(`connection closed (${code}) while waiting for a message`));
  });
  await once(ws, 'open');
  return {
    ws,
    next(): Promise<Received> {
      const queued = queue.shift();
      if (queued) return Promise.resolve(queued);
      if (ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('connection is not open'));
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    },
    /** Closes cleanly when still open, so a failed assertion leaves no socket behind. */
    async dispose(): Promise<void> {
      if (ws.readyState === WebSocket.CLOSED) return;
      const closed = once(ws, 'close');
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      const timer = setTimeout(() => ws.terminate(), 2_000);
      await closed;
      clearTimeout(timer);
    },
  };
}

describe('ws client against wshub echo', () => {
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
        assert.equal(reply.isBinary, false, 'opcode must stay text');
        assert.equal(reply.data.toString('utf8'), text);
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
        assert.equal(reply.isBinary, true, `opcode must stay binary (size ${size})`);
        assert.equal(reply.data.length, size);
        assert.ok(reply.data.equals(payload), `payload of ${size} bytes differs`);
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
      const received: string[] = [];
      for (let i = 0; i < ORDERED_COUNT; i++) received.push((await client.next()).data.toString('utf8'));
      assert.deepEqual(received, sent);
    } finally {
      await client.dispose();
    }
  });

  test('a close with a code and reason is answered with the same code and reason', limits, async () => {
    const client = await connect(server.wsUrl);
    const closed = once(client.ws, 'close') as Promise<[number, Buffer]>;
    client.ws.close(CLOSE_CODE, CLOSE_REASON);
    const [code, reason] = await closed;
    assert.equal(code, CLOSE_CODE);
    assert.equal(reason.toString('utf8'), ECHOED_CLOSE_REASON);
  });

  test('a ping is answered by a pong with the same payload', limits, async () => {
    const client = await connect(server.wsUrl);
    try {
      const payload = Buffer.from('are you there? ✓');
      const pong = once(client.ws, 'pong') as Promise<[Buffer]>;
      client.ws.ping(payload);
      const [data] = await pong;
      assert.ok(data.equals(payload), `pong payload ${data.toString('hex')} differs`);
      // The connection still works after the control frame.
      client.ws.send('after ping');
      assert.equal((await client.next()).data.toString('utf8'), 'after ping');
    } finally {
      await client.dispose();
    }
  });

  subprotocolTests(() => server.wsUrl, connect, limits);
});
