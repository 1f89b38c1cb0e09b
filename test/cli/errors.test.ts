// Bad input to the real `wshub` process: exit code 2 and exactly one
// `wshub: …` line on stderr, nothing on stdout, no secret echoed.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { SECRET, tempDir } from './support.ts';

const files = tempDir();
after(() => files.cleanup());

const WEAK = 'too-short-secret';
const NO_SECRET = { WS_SECRET: '', WS_BROADCAST_SECRET: '' };
const WITH_SECRET = { WS_SECRET: SECRET, WS_BROADCAST_SECRET: '' };

interface Case {
  name: string;
  args: () => string[];
  env: NodeJS.ProcessEnv;
  /** What the one stderr line must say. */
  expect: RegExp;
}

const cases: Case[] = [
  { name: 'unknown flag', args: () => ['serve', '--bogus'], env: WITH_SECRET, expect: /--bogus/ },
  {
    name: 'a --secret flag (secrets never come from flags)',
    args: () => ['serve', '--secret', SECRET],
    env: NO_SECRET,
    expect: /no --secret flag.*WS_SECRET/,
  },
  { name: 'unknown command', args: () => ['launch'], env: WITH_SECRET, expect: /unknown command "launch"/ },
  {
    name: 'weak WS_SECRET (under 32 bytes)',
    args: () => ['serve', '--port', '0'],
    env: { WS_SECRET: WEAK },
    expect: /WS_SECRET is too weak.*32 bytes/,
  },
  {
    name: 'missing secret without --allow-unauthenticated',
    args: () => ['serve', '--port', '0'],
    env: NO_SECRET,
    expect: /no token key.*--allow-unauthenticated/,
  },
  {
    name: '--port abc',
    args: () => ['serve', '--port', 'abc'],
    env: WITH_SECRET,
    expect: /--port must be a whole number/,
  },
  {
    name: '--port 70000',
    args: () => ['serve', '--port', '70000'],
    env: WITH_SECRET,
    expect: /--port must be between 0 and 65535/,
  },
  {
    name: '--send-queue -1',
    args: () => ['serve', '--send-queue', '-1'],
    env: WITH_SECRET,
    expect: /--send-queue/,
  },
  {
    name: '--send-queue=-1',
    args: () => ['serve', '--send-queue=-1'],
    env: WITH_SECRET,
    expect: /--send-queue must be a whole number/,
  },
  {
    name: '--send-queue 0',
    args: () => ['serve', '--send-queue', '0'],
    env: WITH_SECRET,
    expect: /--send-queue must be between 1/,
  },
  {
    name: '--send-behavior bogus',
    args: () => ['serve', '--send-behavior', 'bogus'],
    env: WITH_SECRET,
    expect: /--send-behavior must be one of block, drop, close/,
  },
  {
    name: '--message-validation maybe',
    args: () => ['serve', '--message-validation', 'maybe'],
    env: WITH_SECRET,
    expect: /--message-validation must be one of strict, off/,
  },
  {
    name: '--log-level loud',
    args: () => ['serve', '--log-level', 'loud'],
    env: WITH_SECRET,
    expect: /--log-level/,
  },
  {
    name: 'unreadable --config',
    args: () => ['serve', '--config', '/nonexistent/wshub.json'],
    env: WITH_SECRET,
    expect: /cannot read config file \/nonexistent\/wshub\.json/,
  },
  {
    name: 'config file that is not JSON',
    args: () => ['serve', '--config', files.file('bad.json', '{"maxRoomConnections": ')],
    env: WITH_SECRET,
    expect: /is not valid JSON/,
  },
  {
    name: 'config file with an unknown key',
    args: () => ['serve', '--config', files.file('unknown.json', '{"maxRoomConnection": 3}')],
    env: WITH_SECRET,
    expect: /"maxRoomConnection" is not a wshub option/,
  },
  {
    name: 'config file with a function-valued option',
    args: () => ['serve', '--config', files.file('fn.json', '{"onMessage": "console.log"}')],
    env: WITH_SECRET,
    expect: /"onMessage" takes a function/,
  },
  {
    name: 'config file with a secret',
    args: () => ['serve', '--config', files.file('secret.json', JSON.stringify({ secret: SECRET }))],
    env: NO_SECRET,
    expect: /"secret" is a secret: supply it through WS_SECRET or --secret-file/,
  },
  {
    name: 'config file value of the wrong type',
    args: () => ['serve', '--config', files.file('type.json', '{"allowQueryToken": "yes"}')],
    env: WITH_SECRET,
    expect: /"allowQueryToken" must be a boolean/,
  },
  {
    name: 'config file value out of range',
    args: () => ['serve', '--config', files.file('range.json', '{"readLimit": 999999999999}')],
    env: WITH_SECRET,
    expect: /config file \S+range\.json: "readLimit" must be between 1 and 67108864, got 999999999999/,
  },
  {
    name: 'config file that is an array',
    args: () => ['serve', '--config', files.file('array.json', '[]')],
    env: WITH_SECRET,
    expect: /must contain a JSON object/,
  },
  {
    name: 'unreadable --secret-file',
    args: () => ['serve', '--secret-file', '/nonexistent/secret'],
    env: NO_SECRET,
    expect: /cannot read --secret-file file/,
  },
  {
    name: 'weak --secret-file',
    args: () => ['serve', '--secret-file', files.file('weak-secret', `${WEAK}\n`)],
    env: NO_SECRET,
    expect: /--secret-file file is too weak/,
  },
  {
    name: '--broadcast without a broadcast secret',
    args: () => ['serve', '--broadcast'],
    env: WITH_SECRET,
    expect: /--broadcast needs WS_BROADCAST_SECRET/,
  },
  {
    name: '--tls-cert without --tls-key',
    args: () => ['serve', '--tls-cert', files.file('cert.pem', 'x')],
    env: WITH_SECRET,
    expect: /--tls-cert and --tls-key must be given together/,
  },
  {
    name: 'room passwords file with a non-string password',
    args: () => ['serve', '--room-passwords', files.file('rooms.json', '{"vip": 42}')],
    env: WITH_SECRET,
    expect: /password of room "vip" must be a non-empty string/,
  },
  {
    name: 'token without a secret',
    args: () => ['token', '--sub', 'u'],
    env: NO_SECRET,
    expect: /no secret/,
  },
  {
    name: 'token with a weak secret',
    args: () => ['token', '--sub', 'u'],
    env: { WS_SECRET: WEAK },
    expect: /WS_SECRET is too weak/,
  },
  {
    name: 'token --ttl 0',
    args: () => ['token', '--ttl', '0'],
    env: WITH_SECRET,
    expect: /--ttl must be between 1/,
  },
];

describe('wshub rejects bad input with exit code 2 and one stderr line', { concurrency: 4 }, () => {
  for (const c of cases) {
    test(c.name, async () => {
      const result = await runCli(c.args(), c.env);
      assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
      assert.equal(result.stdout, '', 'nothing on stdout');
      const lines = result.stderr.split('\n');
      assert.equal(lines.length, 2, `exactly one line: ${JSON.stringify(result.stderr)}`);
      assert.equal(lines[1], '');
      assert.match(lines[0]!, /^wshub: /);
      assert.match(lines[0]!, c.expect);
      assert.ok(!result.stderr.includes(SECRET), 'the secret is never echoed');
      assert.ok(!result.stderr.includes(WEAK), 'a weak secret is never echoed');
    });
  }
});
