// docs/OPERATIONS.md's metrics reference against the catalog /metrics is built from.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { FANOUT_HISTOGRAM, METRIC_SPECS, QUEUE_DELAY_HISTOGRAM } from '../../src/metrics/catalog.ts';

const DOC = readFileSync(new URL('../../docs/OPERATIONS.md', import.meta.url), 'utf8');

test('the metrics reference lists every metric with its type and meaning, and nothing else', () => {
  const start = DOC.indexOf('<!-- metrics:start -->');
  const end = DOC.indexOf('<!-- metrics:end -->');
  assert.ok(start >= 0 && end > start, 'the table markers are present');
  const rows = DOC.slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => line.split('|').map((cell) => cell.trim()));
  const documented = rows.map(([, name = '', type = '', help = '']) => [name.replace(/`/g, ''), type, help]);
  const expected = [
    ...METRIC_SPECS.map((m) => [m.name, m.type, m.help]),
    ...[FANOUT_HISTOGRAM, QUEUE_DELAY_HISTOGRAM].map((h) => [h.name, 'histogram', h.help]),
  ];
  assert.deepEqual(documented, expected);
});
