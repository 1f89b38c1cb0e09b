// One options source: the hub's and the connection's options and defaults
// are derived from the configuration, and validated by the same rules.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  connectionOptionsOf,
  defaultConfig,
  defaultConnectionOptions,
  defaultHubOptions,
  hubOptionsOf,
  resolveConfig,
} from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';
import { Hub } from '../../src/hub/hub.ts';

test('direct Hub and Connection defaults are the configuration defaults', () => {
  const config = defaultConfig();
  for (const [key, value] of Object.entries(defaultHubOptions())) {
    assert.equal(value, config[key as keyof typeof config], key);
  }
  for (const [key, value] of Object.entries(defaultConnectionOptions())) {
    assert.equal(value, config[key as keyof typeof config], key);
  }
  assert.equal(defaultConnectionOptions().maxOutboundBytes, undefined, 'the cap follows sendQueueBytes');
  assert.deepEqual(new Hub().options, defaultHubOptions());
});

test('a resolved configuration gives the hub and connection options, secrets as copied Buffers', () => {
  const secret = new Uint8Array(32).fill(7);
  const roomValidator = (room: string): boolean => room === 'x';
  const config = resolveConfig({
    secret,
    workerCount: 3,
    sendBehavior: 'drop',
    sendQueueBytes: 1024,
    roomValidator,
  });
  assert.ok(Buffer.isBuffer(config.secret));
  secret.fill(0);
  assert.equal(config.secret[0], 7, 'copied');
  const hub = hubOptionsOf(config);
  assert.equal(hub.workerCount, 3);
  assert.equal(hub.roomValidator, roomValidator);
  assert.equal('cluster' in hub, false, 'unset options are left out');
  const connection = connectionOptionsOf(config);
  assert.equal(connection.sendBehavior, 'drop');
  assert.equal(connection.maxOutboundBytes, 2048, 'resolved from sendQueueBytes');
});

test('Hub and resolveConfig reject the same values with the same errors', () => {
  for (const [options, message] of [
    [{ workerCount: 0 }, 'must be at least 1'],
    [{ jobQueueSize: -1 }, 'must be a non-negative number, got -1'],
    [{ sendTimeout: Number.NaN }, 'must be a non-negative number, got NaN'],
  ] as const) {
    for (const build of [
      () => new Hub(options),
      () => resolveConfig({ ...options, allowUnauthenticated: true }),
    ]) {
      assert.throws(
        build,
        (error: unknown) => error instanceof ConfigError && error.message.includes(message),
      );
    }
  }
});

test('per-client limit options: the byte rate follows readLimit, lists are checked as CIDRs', () => {
  assert.equal(resolveConfig({ allowUnauthenticated: true }).maxBytesPerSec, 32 * 1024 * 1024);
  assert.equal(resolveConfig({ allowUnauthenticated: true, readLimit: 1000 }).maxBytesPerSec, 2000);
  assert.equal(resolveConfig({ allowUnauthenticated: true, maxBytesPerSec: 0 }).maxBytesPerSec, 0);
  assert.throws(
    () => resolveConfig({ allowUnauthenticated: true, readLimit: 1000, maxBytesPerSec: 1000 }),
    (e: unknown) => e instanceof ConfigError && e.option === 'maxBytesPerSec',
  );
  assert.equal(defaultConnectionOptions().maxMessagesPerSec, undefined, 'a client is never rate limited');
  for (const [key, value] of [
    ['trustedProxies', ['10.0.0.0/99']],
    ['limitExempt', ['localhost']],
    ['tokenIssuer', ['']],
    ['jwksUrl', 'ftp://x'],
    ['maxConnsPerIp', 1.5],
    ['trustedProxyHeader', 'x-real-ip'],
  ] as const) {
    assert.throws(
      () => resolveConfig({ allowUnauthenticated: true, [key]: value }),
      (e: unknown) => e instanceof ConfigError && e.option === key,
      key,
    );
  }
  // A public key or a JWKS URL counts as token verification: no secret needed.
  assert.doesNotThrow(() => resolveConfig({ jwksUrl: 'https://id.example/jwks.json' }));
});
