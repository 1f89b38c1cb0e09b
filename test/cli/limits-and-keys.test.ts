// `wshub serve` with the per-client limit flags, a trusted proxy and a
// public token key; `wshub token --private-key-file` mints what it accepts.
// Bad values are usage errors (exit 2) before anything listens.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { dial } from '../../src/client/dial.ts';
import { runCli, startCli } from '../helpers/cli.ts';
import { dialError, tempDir } from './support.ts';

describe('wshub serve limits, proxy and key flags', () => {
  test('an ES256 key file, a trusted proxy and --max-conns-per-ip / --max-conns-per-user reach the server', async () => {
    const tmp = tempDir();
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = tmp.file('key.pub', publicKey.export({ type: 'spki', format: 'pem' }).toString());
    const priv = tmp.file('key.pem', privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const mint = async (sub: string): Promise<string> => {
      const minted = await runCli([
        'token',
        '--private-key-file',
        priv,
        '--sub',
        sub,
        '--iss',
        'https://id.test',
      ]);
      assert.equal(minted.code, 0, minted.stderr);
      return minted.stdout.trim();
    };
    const cli = await startCli([
      'serve',
      '--port',
      '0',
      '--token-public-key-file',
      pub,
      '--token-issuer',
      'https://id.test',
      '--max-conns-per-ip',
      '1',
      '--max-conns-per-user',
      '1',
      '--limit-exempt',
      'none',
      '--trusted-proxy',
      '127.0.0.1',
    ]);
    const url = cli.url.replace('http', 'ws');
    const open: Array<{ terminate(): void }> = [];
    try {
      const token = await mint('ann');
      const header = (t: string, forwarded: string) => ({
        headers: { Authorization: `Bearer ${t}`, 'X-Forwarded-For': forwarded },
      });
      open.push(await dial(`${url}/ws`, header(token, '203.0.113.1')));
      const sameIp = await dialError(dial(`${url}/ws`, header(await mint('bob'), '203.0.113.1')));
      assert.equal(sameIp.status, 429);
      assert.match(sameIp.body ?? '', /WEBSOCKET_IP_CONNECTION_LIMIT/);
      const sameUser = await dialError(dial(`${url}/ws`, header(await mint('ann'), '203.0.113.2')));
      assert.equal(sameUser.status, 429);
      assert.match(sameUser.body ?? '', /WEBSOCKET_USER_CONNECTION_LIMIT/);
      open.push(await dial(`${url}/ws`, header(await mint('bob'), '203.0.113.3')));
      // An HS256 token forged with the public key file as its secret is refused.
      const forged = await runCli(['token', '--sub', 'eve'], {
        WS_SECRET: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      });
      assert.equal(forged.code, 0, forged.stderr);
      const refused = await dialError(dial(`${url}/ws`, header(forged.stdout.trim(), '203.0.113.4')));
      assert.equal(refused.status, 403);
    } finally {
      for (const c of open) c.terminate();
      assert.equal(await cli.stop(), 0);
      tmp.cleanup();
    }
  });

  test('bad values are usage errors', async () => {
    const tmp = tempDir();
    const { privateKey } = generateKeyPairSync('ed25519');
    const priv = tmp.file('key.pem', privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    try {
      for (const [args, message] of [
        [['--trusted-proxy', '10.0.0.0/40'], /--trusted-proxy must be an IP address or CIDR/],
        [['--limit-exempt', 'localhost'], /--limit-exempt must be an IP address or CIDR/],
        [['--jwks-url', 'ftp://keys.example'], /--jwks-url must be an absolute http\(s\) URL/],
        [['--max-conns-per-ip', 'lots'], /--max-conns-per-ip must be a whole number/],
        [['--trusted-proxy-header', 'x-real-ip'], /--trusted-proxy-header must be one of/],
        [['--token-public-key-file', priv], /--token-public-key-file: is a private key/],
      ] as const) {
        const result = await runCli(['serve', '--allow-unauthenticated', ...args]);
        assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
        assert.match(result.stderr, message);
      }
      const noKey = await runCli(['serve']);
      assert.equal(noKey.code, 2);
      assert.match(noKey.stderr, /--token-public-key-file or --jwks-url/);
    } finally {
      tmp.cleanup();
    }
  });
});
