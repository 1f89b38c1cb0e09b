// Client messages: the built-in room fan-out, a custom onMessage
// handler and its close codes, and the default text validation.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import type { WshubConfig } from '../../../src/config.ts';
import { CloseError } from '../../../src/errors.ts';
import { Opcode } from '../../../src/protocol/frame.ts';
import {
  authHeaders,
  cleanupHubs,
  connectClient,
  startHub,
  waitFor,
  type Client,
  type RunningHub,
} from './harness.ts';

afterEach(cleanupHubs);

async function join(hub: RunningHub, room: string): Promise<Client> {
  const client = await connectClient(hub.url(`/ws?room=${room}`), { headers: await authHeaders() });
  return client;
}

async function closeAll(...clients: Client[]): Promise<void> {
  for (const c of clients) c.conn.close();
  await Promise.all(clients.map((c) => c.conn.closed()));
}

/** Sends `text` from a client and returns the close code the client then sees. */
async function closeCodeFor(
  config: Partial<WshubConfig>,
  send: (c: Client) => Promise<void>,
): Promise<number> {
  const hub = await startHub(config);
  const client = await join(hub, 'r');
  await send(client);
  const { code } = await client.conn.closed();
  return code;
}

describe('built-in room fan-out', () => {
  test('a text message reaches every member of the room, sender included, and no other room', async () => {
    const hub = await startHub();
    const [a1, a2, a3, b1] = [
      await join(hub, 'a'),
      await join(hub, 'a'),
      await join(hub, 'a'),
      await join(hub, 'b'),
    ];
    await a2.conn.sendText('hello room a ✓');
    for (const c of [a1, a2, a3]) {
      const m = await c.queue.next(2_000);
      assert.equal(m.binary, false);
      assert.equal(m.text, 'hello room a ✓');
    }
    // Room b sees its own traffic first: nothing from room a got there.
    await b1.conn.sendText('b only');
    assert.equal((await b1.queue.next(2_000)).text, 'b only');
    assert.equal(b1.queue.size, 0);
    for (const c of [a1, a2, a3]) assert.equal(c.queue.size, 0, 'each member got it exactly once');
    await closeAll(a1, a2, a3, b1);
  });

  test('a binary message keeps its opcode and bytes', async () => {
    const hub = await startHub();
    const [x, y] = [await join(hub, 'bin'), await join(hub, 'bin')];
    const payload = Buffer.from([0, 1, 2, 255, 0x80, 0xc3, 0x28]);
    await x.conn.sendBinary(payload);
    for (const c of [x, y]) {
      const m = await c.queue.next(2_000);
      assert.equal(m.binary, true);
      assert.deepEqual(m.data, payload);
    }
    await closeAll(x, y);
  });

  test('fan-out of a large message (fragmented by the client) arrives intact', async () => {
    const hub = await startHub();
    const [x, y] = [await join(hub, 'big'), await join(hub, 'big')];
    const text = 'z'.repeat(200_000);
    await x.conn.sendText(text);
    for (const c of [x, y]) assert.equal((await c.queue.next(3_000)).text, text);
    await closeAll(x, y);
  });
});

describe('custom onMessage', () => {
  test('replaces the fan-out', async () => {
    const seen: Array<{ text: string; binary: boolean }> = [];
    const hub = await startHub({
      onMessage: async (conn, data, binary) => {
        seen.push({ text: data.toString(), binary });
        await conn.sendText(`echo:${data.toString()}`);
      },
    });
    const [x, y] = [await join(hub, 'c'), await join(hub, 'c')];
    await x.conn.sendText('hi');
    assert.equal((await x.queue.next(2_000)).text, 'echo:hi');
    // y did not get "hi": its first message is a later server broadcast.
    hub.ws.hub.broadcastRoom('c', Opcode.TEXT, 'marker');
    assert.equal((await y.queue.next(2_000)).text, 'marker');
    assert.equal((await x.queue.next(2_000)).text, 'marker');
    assert.deepEqual(seen, [{ text: 'hi', binary: false }]);
    await closeAll(x, y);
  });

  test('a handler throwing CloseError(4005, "x") closes with 4005 and reason "x"', async () => {
    const hub = await startHub({
      onMessage: () => {
        throw new CloseError(4005, 'x');
      },
    });
    const client = await join(hub, 'r');
    await client.conn.sendText('anything');
    const closed = await client.conn.closed();
    assert.deepEqual(closed, { code: 4005, reason: 'x' });
    await waitFor(() => hub.ws.hub.getActiveConnectionCount() === 0, 2_000, 'removal from the hub');
  });

  test('an async handler rejecting with CloseError closes with its code', async () => {
    const code = await closeCodeFor(
      {
        onMessage: async () => {
          await new Promise((resolve) => setImmediate(resolve));
          throw new CloseError(4100, 'later');
        },
      },
      (c) => c.conn.sendText('go'),
    );
    assert.equal(code, 4100);
  });

  test('any other error closes with 1011', async () => {
    const code = await closeCodeFor(
      {
        onMessage: () => {
          throw new TypeError('bug in the app');
        },
      },
      (c) => c.conn.sendText('go'),
    );
    assert.equal(code, 1011);
    const asyncCode = await closeCodeFor({ onMessage: () => Promise.reject(new Error('async bug')) }, (c) =>
      c.conn.sendText('go'),
    );
    assert.equal(asyncCode, 1011);
  });

  test('conn.metadata carries per-connection data from onConnect to onMessage and onClose', async () => {
    let joined = 0;
    const emptyAtConnect: boolean[] = [];
    const countsAtClose: unknown[] = [];
    const hub = await startHub({
      onConnect: (conn) => {
        emptyAtConnect.push(conn.metadata.size === 0);
        conn.metadata.set('label', `#${++joined}`);
      },
      onMessage: async (conn, data) => {
        const count = ((conn.metadata.get('messages') as number | undefined) ?? 0) + 1;
        conn.metadata.set('messages', count);
        await conn.sendText(`${String(conn.metadata.get('label'))}:${count}:${data.toString()}`);
      },
      onClose: (conn) => countsAtClose.push(conn.metadata.get('messages')),
    });
    const x = await join(hub, 'm');
    const y = await join(hub, 'm');
    await x.conn.sendText('a');
    assert.equal((await x.queue.next(2_000)).text, '#1:1:a');
    await x.conn.sendText('b');
    assert.equal((await x.queue.next(2_000)).text, '#1:2:b');
    await y.conn.sendText('c');
    assert.equal((await y.queue.next(2_000)).text, '#2:1:c');
    await closeAll(x, y);
    await waitFor(() => countsAtClose.length === 2, 2_000, 'both onClose calls');
    assert.deepEqual(emptyAtConnect, [true, true]);
    assert.deepEqual(countsAtClose.sort(), [1, 2]);
  });
});

describe('message validation defaults', () => {
  test('text over 1 MiB → 1009', async () => {
    const code = await closeCodeFor({}, (c) => c.conn.sendText('a'.repeat(1024 * 1024 + 1)));
    assert.equal(code, 1009);
  });

  test('exactly 1 MiB of text is fanned out', async () => {
    const hub = await startHub();
    const client = await join(hub, 'r');
    const text = 'b'.repeat(1024 * 1024);
    await client.conn.sendText(text);
    assert.equal((await client.queue.next(3_000)).text.length, text.length);
    await closeAll(client);
  });

  test('control characters → 1008; newline and tab are fine', async () => {
    for (const text of ['a\u0001b', 'bell\u0007', 'esc\u001b[31m', 'del\u007f', 'c1\u0085']) {
      const code = await closeCodeFor({}, (c) => c.conn.sendText(text));
      assert.equal(code, 1008, JSON.stringify(text));
    }
    const hub = await startHub();
    const client = await join(hub, 'r');
    await client.conn.sendText('line1\nline2\tcol');
    assert.equal((await client.queue.next(2_000)).text, 'line1\nline2\tcol');
    await closeAll(client);
  });

  test('an empty text message → 1008', async () => {
    const code = await closeCodeFor({}, (c) => c.conn.sendText(''));
    assert.equal(code, 1008);
  });

  test('binary messages are not subject to text validation', async () => {
    const hub = await startHub();
    const client = await join(hub, 'r');
    await client.conn.sendBinary(Buffer.alloc(0));
    await client.conn.sendBinary(Buffer.from([1, 7, 27]));
    assert.equal((await client.queue.next(2_000)).data.length, 0);
    assert.deepEqual((await client.queue.next(2_000)).data, Buffer.from([1, 7, 27]));
    await closeAll(client);
  });

  test('messageValidation: false switches it off', async () => {
    const hub = await startHub({ messageValidation: false });
    const client = await join(hub, 'r');
    const big = 'q'.repeat(1024 * 1024 + 10);
    await client.conn.sendText('');
    await client.conn.sendText('a\u0001b');
    await client.conn.sendText(big);
    assert.equal((await client.queue.next(2_000)).text, '');
    assert.equal((await client.queue.next(2_000)).text, 'a\u0001b');
    assert.equal((await client.queue.next(3_000)).text.length, big.length);
    assert.equal(client.conn.readyState, 'open');
    await closeAll(client);
  });

  test('custom limits apply', async () => {
    const code = await closeCodeFor({ messageValidation: { maxBytes: 10 } }, (c) =>
      c.conn.sendText('x'.repeat(11)),
    );
    assert.equal(code, 1009);
    const hub = await startHub({ messageValidation: { allowEmpty: true } });
    const client = await join(hub, 'r');
    await client.conn.sendText('');
    assert.equal((await client.queue.next(2_000)).text, '');
    await closeAll(client);
  });
});
