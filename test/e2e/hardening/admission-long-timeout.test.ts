// A handshakeTimeout beyond setTimeout's range (2^31 - 1 ms) must not turn
// the deadline timer into a busy loop while a handshake is pending.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanupHubs, startHub, waitFor } from '../server/harness.ts';

afterEach(cleanupHubs);

test('a pending handshake under a 30-day handshakeTimeout costs no CPU while it waits', async () => {
  const hub = await startHub({ allowUnauthenticated: true, handshakeTimeout: 30 * 24 * 3600 * 1000 });
  const socket = connect(hub.port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write('GET /ws?room=a HTTP/1.1\r\n');
  await waitFor(() => hub.ws.metrics().handshakes_pending === 1, 2_000, 'a pending handshake');
  let overflows = 0;
  const onWarning = (warning: Error) => {
    if (warning.name === 'TimeoutOverflowWarning') overflows++;
  };
  process.on('warning', onWarning);
  const before = process.cpuUsage();
  await sleep(500);
  const used = process.cpuUsage(before);
  process.off('warning', onWarning);
  const ms = (used.user + used.system) / 1000;
  // A timer re-armed every millisecond warns each time and burns tens of ms; idle waiting, about 2 ms.
  assert.equal(overflows, 0, 'no timer delay past 2^31 - 1 ms');
  assert.ok(ms < 40, `${ms.toFixed(0)} ms of CPU in 500 ms of waiting`);
  assert.equal(socket.destroyed, false);
  socket.destroy();
});
