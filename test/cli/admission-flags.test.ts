// `wshub serve --max-pending-handshakes N --max-pending-handshakes-per-ip N`:
// the values reach the server, and bad values are usage errors.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { runCli, startCli } from '../helpers/cli.ts';

/** A TCP connection from `localAddress` that has sent a partial head. */
async function slow(port: number, localAddress: string): Promise<{ socket: Socket; text(): string }> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  let text = '';
  socket.setEncoding('latin1').on('data', (d: string) => (text += d));
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write('GET /ws?room=a HTTP/1.1\r\n');
  return { socket, text: () => text };
}

describe('wshub serve admission flags', () => {
  test('--max-pending-handshakes-per-ip 2: the third pending handshake from one address gets 429', async () => {
    const cli = await startCli([
      'serve',
      '--port',
      '0',
      '--allow-unauthenticated',
      '--max-pending-handshakes-per-ip',
      '2',
      '--max-pending-handshakes',
      '100',
    ]);
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) sockets.push((await slow(cli.port, '127.0.0.2')).socket);
      const third = await slow(cli.port, '127.0.0.2');
      sockets.push(third.socket);
      await Promise.race([once(third.socket, 'close'), new Promise((r) => setTimeout(r, 3_000))]);
      assert.match(third.text(), /^HTTP\/1\.1 429 /);
      assert.match(third.text(), /"code":"HANDSHAKE_LIMIT"/);
      const health = await fetch(`${cli.url}/healthz`);
      assert.equal(health.status, 200);
      assert.match(cli.stderr(), /"refused_per_address":1,.*"event":"handshake_limit"/);
    } finally {
      for (const s of sockets) s.destroy();
      assert.equal(await cli.stop(), 0);
    }
  });

  test('bad values are usage errors', async () => {
    for (const [flag, value] of [
      ['--max-pending-handshakes', 'many'],
      ['--max-pending-handshakes-per-ip', '1e3'],
      ['--max-pending-handshakes-per-ip', '1.5'],
    ] as const) {
      const result = await runCli(['serve', '--allow-unauthenticated', `${flag}=${value}`]);
      assert.equal(result.code, 2, `${flag} ${value}: ${result.stderr}`);
      assert.match(result.stderr, new RegExp(`${flag} must be a whole number`));
    }
  });
});
