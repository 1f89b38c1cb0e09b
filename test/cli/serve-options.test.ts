// The one description of `wshub serve`'s options against what users read:
// the help lists every flag and its variable rule, docs/CONFIG.md carries the
// generated table, and every config-file key an option names is a real one.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CONFIG_KEYS } from '../../src/config.ts';
import { SERVE_USAGE } from '../../src/cli/serve.ts';
import { envName, optionsTable, readServeValues, SERVE_OPTIONS } from '../../src/cli/serve-options.ts';

const CONFIG_MD = readFileSync(new URL('../../docs/CONFIG.md', import.meta.url), 'utf8');

test('serve --help lists every flag', () => {
  for (const o of SERVE_OPTIONS) assert.ok(SERVE_USAGE.includes(`--${o.flag}`), `--${o.flag} in the help`);
  assert.match(SERVE_USAGE, /WSHUB_ and the flag in\s+upper snake case/);
});

test('docs/CONFIG.md holds the generated table of every option', () => {
  const start = CONFIG_MD.indexOf('<!-- serve-options:start -->\n');
  const end = CONFIG_MD.indexOf('<!-- serve-options:end -->');
  assert.ok(start >= 0 && end > start, 'the table markers are present');
  const table = CONFIG_MD.slice(start + '<!-- serve-options:start -->\n'.length, end).trim();
  const expected = optionsTable().trim();
  // Prettier pads the columns; compare cell by cell.
  const cells = (text: string) =>
    text.split('\n').map((row) => row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/^-+$/, '-')));
  assert.deepEqual(cells(table), cells(expected), 'regenerate with: node --import tsx -e "…optionsTable()"');
  for (const o of SERVE_OPTIONS) {
    assert.ok(CONFIG_MD.includes(`\`--${o.flag}\``), `--${o.flag} documented`);
    if (o.env !== false)
      assert.ok(CONFIG_MD.includes(`\`${envName(o.flag)}\``), `${envName(o.flag)} documented`);
  }
});

test('every config-file key of an option is a server option, and flags are unique', () => {
  const keys = new Set<string>(CONFIG_KEYS);
  for (const o of SERVE_OPTIONS) if (o.key !== undefined) assert.ok(keys.has(o.key), o.key);
  assert.equal(new Set(SERVE_OPTIONS.map((o) => o.flag)).size, SERVE_OPTIONS.length);
});

test('flag over environment, empty variables unset, lists comma-separated', () => {
  const env = {
    WSHUB_PORT: '9000',
    WSHUB_HOST: '',
    WSHUB_ALLOW_ORIGIN: 'https://a.example, https://b.example',
  };
  const fromEnv = readServeValues({}, env);
  assert.equal(fromEnv.get('port'), 9000);
  assert.equal(fromEnv.source('port'), 'WSHUB_PORT');
  assert.equal(fromEnv.get('host'), '127.0.0.1');
  assert.equal(fromEnv.source('host'), undefined);
  assert.deepEqual(fromEnv.get('allow-origin'), ['https://a.example', 'https://b.example']);
  const fromFlag = readServeValues({ port: '9001' }, env);
  assert.equal(fromFlag.get('port'), 9001);
  assert.equal(fromFlag.source('port'), '--port');
  assert.equal(readServeValues({}, { WSHUB_HELP: '1' }).get('help'), undefined, '--help has no variable');
  assert.equal(readServeValues({}, { WSHUB_BROADCAST: 'off' }).get('broadcast'), false);
});
