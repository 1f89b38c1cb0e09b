// The version the channel protocol's connect reply announces is package.json's.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { WSHUB_VERSION } from '../../src/version.ts';

test('WSHUB_VERSION is the version in package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  assert.equal(WSHUB_VERSION, pkg.version);
});
