// `wshub serve --tls-cert --tls-key` run as a real process with a
// self-signed certificate made by openssl: https /healthz and a wss client.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startCli } from '../helpers/cli.ts';
import { selfSignedCertificate } from '../helpers/self-signed.ts';
import { request, tempDir } from './support.ts';

const files = tempDir();
after(() => files.cleanup());

const material = selfSignedCertificate(files.dir);

describe('wshub serve over TLS', () => {
  test(
    'serves https and wss with the given certificate',
    { skip: typeof material === 'string' ? material : false },
    async () => {
      if (typeof material === 'string') return;
      const cli = await startCli(
        [
          'serve',
          '--port',
          '0',
          '--allow-unauthenticated',
          '--tls-cert',
          material.certPath,
          '--tls-key',
          material.keyPath,
        ],
        { WS_SECRET: '' },
      );
      try {
        assert.match(cli.url, /^https:\/\/127\.0\.0\.1:\d+$/);
        const health = await request(`${cli.url}/healthz`);
        assert.equal(health.status, 200);
        assert.equal((JSON.parse(health.body) as { status: string }).status, 'healthy');

        const client = new WebSocket(`${cli.wsUrl}/ws?room=secure`, { rejectUnauthorized: false });
        await new Promise<void>((resolve, reject) => {
          client.once('open', resolve);
          client.once('error', reject);
        });
        const echoed = new Promise<string>((resolve) =>
          client.once('message', (data: Buffer) => resolve(data.toString('utf8'))),
        );
        client.send('over wss');
        assert.equal(await echoed, 'over wss');
        const closed = new Promise<number>((resolve) =>
          client.once('close', (code: number) => resolve(code)),
        );
        client.close(1000);
        assert.equal(await closed, 1000);

        // Plain http on the TLS port is not served.
        await assert.rejects(request(cli.url.replace('https:', 'http:') + '/healthz'));
      } finally {
        assert.equal(await cli.stop(), 0);
      }
    },
  );
});
