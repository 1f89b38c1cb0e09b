// The server's log hook: text that a client or application code chose
// reaches it escaped and bounded (sanitizeForLogging), so a room name or an
// error message cannot forge a log line or flood the log.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import type { LogEntry } from '../../../src/server/server.ts';
import { authHeaders, cleanupHubs, connectClient, startHub, waitFor } from './harness.ts';

afterEach(cleanupHubs);

describe('log hook', () => {
  test('a room name and an application error message arrive on one line, escaped and cut after 200 characters', async () => {
    const entries: LogEntry[] = [];
    const forged = '\n{"level":"error","event":"forged"}';
    const hub = await startHub({
      // A custom policy that lets any name through, control characters included.
      roomValidator: (room) => room.length > 0 && room.length <= 64,
      onMessage: (_conn, data) => {
        throw new Error(`cannot handle ${data.toString()}${forged}${'x'.repeat(10_000)}`);
      },
    });
    hub.ws.log = (entry) => entries.push(entry);
    const room = `a${forged}\u001b[31m`;
    const client = await connectClient(hub.url(`/ws?room=${encodeURIComponent(room)}`), {
      headers: await authHeaders(),
    });
    await client.conn.sendText('this');
    assert.equal((await client.conn.closed()).code, 1011);
    await waitFor(() => entries.some((e) => e.event === 'connection_error'), 2_000, 'the error entry');

    const connected = entries.find((e) => e.event === 'connected');
    assert.equal(connected?.room, 'a\\n{"level":"error","event":"forged"}\\u001b[31m');
    const error = entries.find((e) => e.event === 'connection_error')?.error;
    assert.equal(typeof error, 'string');
    const text = error as string;
    assert.ok(text.startsWith('cannot handle this\\n{"level"'), text.slice(0, 40));
    for (const raw of ['\n', '\r', '\u001b']) assert.ok(!text.includes(raw), 'no raw control character');
    // 200 characters of the message (an escape writes one as several), then the ellipsis.
    assert.ok(text.length < 250, `${text.length} characters`);
    assert.ok(text.endsWith('x…'));
  });
});
