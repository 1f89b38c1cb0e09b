// `wshub token` run as a real process: the printed token verifies with the
// library's HS256 authenticator and carries the requested claims.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { HS256TokenAuthenticator } from '../../src/auth/token.ts';
import { InvalidTokenError } from '../../src/auth/errors.ts';
import { runCli } from '../helpers/cli.ts';
import { SECRET, tempDir } from './support.ts';

const files = tempDir();
after(() => files.cleanup());

describe('wshub token', () => {
  test('prints only a token signed with WS_SECRET carrying sub, name, roles and exp', async () => {
    const before = Math.floor(Date.now() / 1000);
    const result = await runCli(['token', '--sub', 'user-7', '--name', 'Ada L', '--roles', 'admin, ops,'], {
      WS_SECRET: SECRET,
    });
    const afterRun = Math.floor(Date.now() / 1000);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    assert.match(result.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, 'the token and a newline, nothing else');

    const user = await new HS256TokenAuthenticator(SECRET).authenticate(result.stdout.trim());
    assert.equal(user.id, 'user-7');
    assert.equal(user.name, 'Ada L');
    assert.deepEqual(user.roles, ['admin', 'ops']);
    const exp = user.claims.exp as number;
    assert.ok(exp >= before + 3600 && exp <= afterRun + 3600, `default ttl 3600 s, exp=${exp}`);

    const other = new HS256TokenAuthenticator(`${SECRET}-other`);
    await assert.rejects(other.authenticate(result.stdout.trim()), InvalidTokenError);
  });

  test('--ttl sets the lifetime and --secret-file replaces WS_SECRET', async () => {
    const secretFile = files.file('secret', `${SECRET}\n`);
    const before = Math.floor(Date.now() / 1000);
    const result = await runCli(['token', '--sub', 'svc', '--ttl', '60', '--secret-file', secretFile], {
      WS_SECRET: '',
    });
    assert.equal(result.code, 0, result.stderr);
    const user = await new HS256TokenAuthenticator(SECRET).authenticate(result.stdout.trim());
    assert.equal(user.id, 'svc');
    assert.deepEqual(user.roles, []);
    const exp = user.claims.exp as number;
    assert.ok(exp >= before + 60 && exp <= Math.floor(Date.now() / 1000) + 60, `exp=${exp}`);
  });

  test('--help describes the flags and exits 0', async () => {
    const result = await runCli(['token', '--help'], { WS_SECRET: '' });
    assert.equal(result.code, 0);
    for (const flag of ['--sub', '--name', '--roles', '--ttl', '--secret-file', 'WS_SECRET']) {
      assert.ok(result.stdout.includes(flag), `help mentions ${flag}`);
    }
  });
});
