/**
 * The `## Hub benchmarks` section of docs/BENCHMARKS.md, rendered from a
 * results file, and its insertion between markers so the rest of the
 * document (the protocol micro-benchmark) is left as it is.
 */
import type { BenchResults } from '../results.ts';
import { formatBytes } from '../summary.ts';
import {
  crossNodeTable,
  fanoutTables,
  handshakeTable,
  idleTable,
  manyRoomsTable,
  slowTable,
} from './markdown.ts';
import { generatorTable } from './generator.ts';
import { verdictWord, verdicts } from './verdict.ts';

export const START_MARKER = '<!-- hub-benchmarks:start -->';
export const END_MARKER = '<!-- hub-benchmarks:end -->';

/** All scenario tables, each under a `###` heading (the part run.ts prints too). */
export function renderTables(results: BenchResults): string {
  const sections: Array<[string, string]> = [
    ['Load generator capacity (self-test against the line-rate peer)', generatorTable(results)],
    ['Fan-out (one room, one publisher)', fanoutTables(results)],
    ['Many rooms', manyRoomsTable(results)],
    ['Idle memory', idleTable(results)],
    ['Handshakes (64 concurrent connectors)', handshakeTable(results)],
    ['Slow consumers (5% of subscribers stop reading)', slowTable(results)],
    [
      'Scale-out: one node against two nodes through Redis and NATS (half the subscribers on each node, publisher on the first)',
      crossNodeTable(results),
    ],
  ];
  return sections
    .filter(([, body]) => body !== '')
    .map(([title, body]) => `### ${title}\n\n${body}`)
    .join('\n\n');
}

/** The verdict list against the issue's targets. */
export function renderVerdicts(results: BenchResults): string {
  return verdicts(results)
    .map((v) => `- **${v.target}** — ${verdictWord(v.met)}: ${v.detail}.`)
    .join('\n');
}

/** The whole hub-benchmarks section, markers excluded; `chartPath` is relative to the document. */
export function renderSection(results: BenchResults, chartPath = 'bench-fanout.svg'): string {
  const m = results.machine;
  const errors =
    results.errors.length === 0
      ? ''
      : `\n\nMeasurements that failed in this run:\n\n${results.errors.map((e) => `- ${e.scenario} / ${e.target}: ${e.message.split('\n')[0]}`).join('\n')}`;
  const notes =
    results.notes.length === 0
      ? ''
      : `\n\nNotes from the run:\n\n${results.notes.map((n) => `- ${n}`).join('\n')}`;
  return `## Hub benchmarks

What it measures: whole servers over loopback TCP, each implementing the
same semantics (\`ws://127.0.0.1:PORT/ws?room=NAME\`, every message goes to
every member of its room, sender included), driven by the load generator in
\`bench/loadgen/\` (raw \`node:net\` clients in worker processes, open-loop
publishing with latency measured from each message's scheduled send time;
in the fan-out scenario on plain WebSocket targets the subscribers are read
by the Go receiver, \`bench/loadgen/go/receiver\`, unless \`--generator node\`:
the table's "Receive path" column says which).
${m.pinned ? 'Each server runs pinned to CPU 0 and the generator to CPU 1 (`taskset`).' : 'taskset was not available: servers and generator shared the CPUs.'}
Server CPU and RSS are read from \`/proc\`; CPU is counted inside each
measurement window only. Cells show the median of ${results.runs} run${results.runs === 1 ? '' : 's'}
with the min–max range in parentheses; ⚠ marks a run in which the load
generator used more than 90% of its core (the figure may be the generator's
limit, not the server's). "Max sustainable" is the highest publish rate × members
with p99 < 100 ms, no loss and every connection made, found by a rate search;
it is "server-bound" when the generator used at most a third of its core in
the step that failed just above it (3× headroom), "generator-bound" (a lower
bound) otherwise, and ratios are only given between server-bound maxima.
Socket.IO is driven through a minimal Engine.IO v4 client with text payloads.

Command:

\`\`\`sh
${results.command}
\`\`\`

Machine: ${m.cpuModel}, ${m.cores} cores, ${formatBytes(m.ramBytes)} RAM; Node ${m.node}; ${m.kernel};
${results.startedAt.slice(0, 10)}; ${Math.round(results.durationSec)} s in total; load average ${m.loadBefore.toFixed(2)} before, ${m.loadAfter.toFixed(2)} after${results.quick ? '; **quick mode** (development figures: N = 1,000 only, one run, short steps)' : ''}.

![Fan-out: maximum sustainable deliveries/s per target](${chartPath})

${renderTables(results)}

### Verdict against the targets

${renderVerdicts(results)}${errors}${notes}
`;
}

/**
 * Replaces the text between the markers in `doc` with `section`; appends
 * the markers and the section when the document has none yet.
 */
export function replaceSection(doc: string, section: string): string {
  const block = `${START_MARKER}\n\n${section.trim()}\n\n${END_MARKER}`;
  const start = doc.indexOf(START_MARKER);
  const end = doc.indexOf(END_MARKER);
  if (start >= 0 && end > start) return doc.slice(0, start) + block + doc.slice(end + END_MARKER.length);
  return `${doc.trimEnd()}\n\n${block}\n`;
}
