// Turns the verdicts of the last conformance run (artifacts/conformance.json,
// written by test/conformance/conformance.test.ts) into docs/CONFORMANCE.md.
//
//   npm run test:conformance
//   node --import tsx scripts/conformance-report.ts
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { format, resolveConfig } from 'prettier';
import type { CaseResult, Verdict } from '../test/conformance/evaluate.ts';

interface ConformanceRun {
  generatedAt: string;
  target: string;
  machine: { node: string; platform: string; cpu: string; memoryGiB: number };
  durationMs: number;
  sections: Record<string, string>;
  results: CaseResult[];
}

const INPUT = fileURLToPath(new URL('../artifacts/conformance.json', import.meta.url));
const OUTPUT = fileURLToPath(new URL('../docs/CONFORMANCE.md', import.meta.url));
const VERDICTS: Verdict[] = ['OK', 'NON-STRICT', 'FAILED'];

/** Escapes a value for a Markdown table cell. */
function cell(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** Renders the whole document from one run. */
export function renderReport(run: ConformanceRun): string {
  const counts = new Map<Verdict, number>(VERDICTS.map((v) => [v, 0]));
  for (const r of run.results) counts.set(r.verdict, (counts.get(r.verdict) ?? 0) + 1);
  const notPassed = run.results.filter((r) => !r.passed);
  const acceptedNonStrict = run.results.filter((r) => r.verdict === 'NON-STRICT' && r.passed);
  const date = run.generatedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');

  const out: string[] = [];
  out.push('# RFC 6455 conformance', '');
  out.push(
    'wshub has its own protocol conformance suite in `test/conformance/`. It is modelled on the case list of',
    'the public Autobahn|Testsuite (sections 1–7, 9 with reduced sizes, 10, and 12–13 for permessage-deflate',
    '(RFC 7692) with 10 messages per case instead of 1,000): a case that corresponds to an Autobahn case',
    'carries the same number, and cases marked † have no Autobahn counterpart (they cover promises of this',
    'server such as the 16 MiB read limit, fail-fast UTF-8 checks inside a frame, strict length encoding,',
    'declined extension offers and decompression bombs). All code and wording are our own.',
    '',
    'The permessage-deflate cases offer the extension in the handshake, compress what they send as agreed',
    '(with context takeover unless `client_no_context_takeover` was agreed) and inflate every compressed',
    'echo with a fresh inflater of exactly the window the server agreed to, so a server that kept context',
    'or used a larger window fails. Messages from the echo threshold (128 B) up must come back compressed,',
    'smaller ones plain.',
    '',
    'Each case opens a fresh connection to `wshub echo` with a minimal raw-socket client',
    '(`test/conformance/raw-client.ts`) that can write any bytes: reserved bits and opcodes, unmasked frames,',
    'non-minimal lengths, frames cut into arbitrary TCP writes. A shared evaluator',
    '(`test/conformance/evaluate.ts`) reads the server’s frames and TCP state and gives a verdict:',
    '',
    '- **OK** — exactly the expected behaviour: the right echo, or the right close code followed by the server',
    '  closing TCP.',
    '- **NON-STRICT** — allowed by RFC 6455 but not the strictest behaviour, e.g. invalid UTF-8 detected only',
    '  after more bytes than necessary, TCP dropped without a close frame, or a time target missed. A case',
    '  passes with NON-STRICT only where it says why that is acceptable.',
    '- **FAILED** — anything else, including a case running out of time.',
    '',
    '## Running it',
    '',
    '```sh',
    'npm run test:conformance                   # one echo server, every case as its own test',
    'node --import tsx scripts/conformance-report.ts   # artifacts/conformance.json -> docs/CONFORMANCE.md',
    '```',
    '',
    'Set `WSHUB_CONFORMANCE_TARGET=ws://HOST:PORT` to run the same cases against another echo server.',
    '',
    '## Last run',
    '',
    `${date} · target: ${run.target} · Node ${run.machine.node} · ${run.machine.platform} · ${run.machine.cpu} · ` +
      `${run.machine.memoryGiB} GiB RAM · ${(run.durationMs / 1000).toFixed(1)} s`,
    '',
    '| verdict | cases |',
    '| --- | ---: |',
    ...VERDICTS.map((v) => `| ${v} | ${counts.get(v) ?? 0} |`),
    `| **total** | **${run.results.length}** |`,
    '',
  );
  if (notPassed.length > 0) {
    out.push(`Cases that did not pass: ${notPassed.map((r) => `${r.id} (${r.verdict})`).join(', ')}.`, '');
  } else {
    out.push('Every case passed.', '');
  }
  if (acceptedNonStrict.length > 0) {
    out.push('Accepted NON-STRICT verdicts:', '');
    for (const r of acceptedNonStrict) out.push(`- ${r.id}: ${r.acceptNonStrict ?? ''}`);
    out.push('');
  }

  const sections = [...new Set(run.results.map((r) => r.section))].sort((a, b) => a - b);
  for (const section of sections) {
    out.push(`## ${section}. ${run.sections[String(section)] ?? ''}`, '');
    out.push('| case | description | expected | observed | verdict |', '| --- | --- | --- | --- | --- |');
    for (const r of run.results.filter((x) => x.section === section)) {
      const verdict = r.verdict === 'OK' ? 'OK' : `**${r.verdict}**`;
      out.push(
        `| ${r.id}${r.extra ? ' †' : ''} | ${cell(r.description)} | ${cell(r.expected)} | ${cell(r.observed)} | ${verdict} |`,
      );
    }
    out.push('');
  }
  return out.join('\n');
}

const run = JSON.parse(await readFile(INPUT, 'utf8')) as ConformanceRun;
// Formatted like every other file so `prettier --check .` stays green.
const options = (await resolveConfig(OUTPUT)) ?? {};
await writeFile(OUTPUT, await format(renderReport(run), { ...options, filepath: OUTPUT }));
console.log(`wrote ${OUTPUT} (${run.results.length} cases)`);
