// RFC 6455 conformance suite: every case of the table runs as its own test
// against one `wshub echo` process, and all verdicts are written to
// artifacts/conformance.json for scripts/conformance-report.ts.
//
// WSHUB_CONFORMANCE_TARGET=ws://host:port runs the same table against an
// already running echo server instead (handy for comparing implementations).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, platform, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startCli, type RunningCli } from '../helpers/cli.ts';
import { CASES, SECTIONS } from './cases.ts';
import { runCase, type CaseResult, type Target } from './evaluate.ts';

const ARTIFACTS = fileURLToPath(new URL('../../artifacts/', import.meta.url));

let server: RunningCli | undefined;
let target: Target | undefined;
let targetName = 'wshub echo';
const results: CaseResult[] = [];
const suiteStarted = Date.now();

before(async () => {
  const external = process.env['WSHUB_CONFORMANCE_TARGET'];
  if (external) {
    const url = new URL(external);
    target = { host: url.hostname, port: Number(url.port) };
    targetName = `external echo server at ${url.host}`;
  } else {
    server = await startCli(['echo', '--host', '127.0.0.1', '--port', '0']);
    target = { host: server.host, port: server.port };
  }
});

after(async () => {
  await server?.stop();
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const report = {
    generatedAt: new Date().toISOString(),
    target: targetName,
    machine: {
      node: process.version,
      platform: `${platform()} ${release()}`,
      cpu: `${cpu} × ${cpus().length}`,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
    },
    durationMs: Date.now() - suiteStarted,
    sections: SECTIONS,
    results: [...results].sort((a, b) => CASES.indexOf(byId(a.id)) - CASES.indexOf(byId(b.id))),
  };
  await mkdir(ARTIFACTS, { recursive: true });
  await writeFile(`${ARTIFACTS}conformance.json`, `${JSON.stringify(report, null, 2)}\n`);
});

function byId(id: string): (typeof CASES)[number] {
  const found = CASES.find((c) => c.id === id);
  if (!found) throw new Error(`unknown case ${id}`);
  return found;
}

for (const section of [...new Set(CASES.map((c) => c.section))]) {
  describe(`${section}. ${SECTIONS[section] ?? ''}`, () => {
    for (const c of CASES.filter((x) => x.section === section)) {
      test(`${c.id} ${c.description}`, async () => {
        assert.ok(target, 'echo server not started');
        const result = await runCase(c, target);
        results.push(result);
        const detail = `expected: ${result.expected}\nobserved: ${result.observed}`;
        if (result.verdict === 'NON-STRICT') {
          assert.ok(c.acceptNonStrict, `verdict NON-STRICT, which this case does not accept\n${detail}`);
        } else {
          assert.equal(result.verdict, 'OK', `verdict ${result.verdict}\n${detail}`);
        }
      });
    }
  });
}
