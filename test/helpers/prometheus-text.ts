// A strict reader of the Prometheus text exposition format (version 0.0.4):
// every sample must belong to a family declared by # HELP and # TYPE before
// it, names and labels must be well formed, counters end in _total, and a
// histogram's buckets must be cumulative, end at +Inf and match its _count.
import assert from 'node:assert/strict';

/** One metric family as exposed. */
export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"/y;

/** Parses `text`, failing the test on any deviation from the format. */
export function parsePrometheusText(text: string): Map<string, Family> {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const families = new Map<string, Family>();
  let current: Family | null = null;
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) {
      const [, name = '', help = ''] = /^# HELP (\S+) (.*)$/.exec(line) ?? [];
      assert.match(name, NAME, line);
      assert.ok(!families.has(name), `family ${name} declared twice`);
      current = { name, type: 'untyped', help, samples: [] };
      families.set(name, current);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [, name, type] = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line) ?? [];
      assert.ok(current !== null && name === current.name, `TYPE without its HELP: ${line}`);
      current.type = type as Family['type'];
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment: ${line}`);
    assert.ok(current !== null, `sample before any family: ${line}`);
    const nameEnd = line.search(/[{ ]/);
    const name = line.slice(0, nameEnd);
    assert.match(name, NAME, line);
    const labels: Record<string, string> = {};
    let rest = line.slice(nameEnd);
    if (rest.startsWith('{')) {
      let at = 1;
      while (rest[at] !== '}') {
        LABEL.lastIndex = at;
        const m = LABEL.exec(rest);
        assert.ok(m !== null, `bad label set: ${line}`);
        labels[m[1]!] = m[2]!;
        at = LABEL.lastIndex;
        if (rest[at] === ',') at++;
      }
      rest = rest.slice(at + 1);
    }
    const [, valueText] = /^ (\S+)$/.exec(rest) ?? [];
    assert.ok(valueText !== undefined, `bad value: ${line}`);
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    assert.ok(valueText === 'NaN' || !Number.isNaN(value), `bad value: ${line}`);
    const allowed =
      current.type === 'histogram'
        ? [`${current.name}_bucket`, `${current.name}_sum`, `${current.name}_count`]
        : [current.name];
    assert.ok(allowed.includes(name), `sample ${name} outside its family ${current.name}`);
    current.samples.push({ name, labels, value });
  }
  for (const family of families.values()) checkFamily(family);
  return families;
}

function checkFamily(family: Family): void {
  assert.notEqual(family.type, 'untyped', `${family.name} has no TYPE`);
  if (family.type === 'counter') {
    assert.ok(family.name.endsWith('_total'), `counter ${family.name} ends in _total`);
    for (const s of family.samples) assert.ok(s.value >= 0, `${family.name} is not negative`);
  }
  if (family.type === 'histogram') {
    const buckets = family.samples.filter((s) => s.name.endsWith('_bucket'));
    assert.ok(buckets.length > 1, `${family.name} has buckets`);
    let previous = -1;
    let bound = -Infinity;
    for (const b of buckets) {
      const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
      assert.ok(le > bound, `${family.name} buckets ascend`);
      assert.ok(b.value >= previous, `${family.name} buckets are cumulative`);
      bound = le;
      previous = b.value;
    }
    assert.equal(bound, Infinity, `${family.name} ends with le="+Inf"`);
    const count = family.samples.find((s) => s.name === `${family.name}_count`);
    assert.equal(count?.value, previous, `${family.name}_count equals the +Inf bucket`);
    assert.ok(
      family.samples.some((s) => s.name === `${family.name}_sum`),
      `${family.name}_sum present`,
    );
  }
}

/** The value of an unlabelled counter or gauge; fails when it is not exposed. */
export function valueOf(families: Map<string, Family>, name: string): number {
  const family = families.get(name);
  assert.ok(family !== undefined, `${name} is exposed`);
  const sample = family.samples.find((s) => s.name === name);
  assert.ok(sample !== undefined, `${name} has a value`);
  return sample.value;
}

/** The `_count` of a histogram. */
export function histogramCount(families: Map<string, Family>, name: string): number {
  const family = families.get(name);
  assert.ok(family !== undefined && family.type === 'histogram', `${name} is an exposed histogram`);
  return family.samples.find((s) => s.name === `${name}_count`)!.value;
}
