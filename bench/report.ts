/**
 * Renders docs/BENCHMARKS.md's hub-benchmarks section and docs/bench-fanout.svg
 * from a results file (default bench/results/latest.json), and its
 * channels and cross-node channels sections when the file holds their
 * cells. A file with channel cells only (a run of the channel scenarios
 * alone) leaves the hub section and the chart as they are.
 *
 * Run: node --import tsx bench/report.ts [results.json]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasHubScenarios, type BenchResults } from './results.ts';
import { renderSection, replaceSection } from './report/document.ts';
import { fanoutSvg } from './report/svg.ts';
import { renderChannelSection, replaceChannelSection } from './report/channels.ts';
import { renderClusterSection, replaceClusterSection } from './report/channel-cluster.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Paths the report writes. */
export const DOC_PATH = join(ROOT, 'docs', 'BENCHMARKS.md');
export const SVG_PATH = join(ROOT, 'docs', 'bench-fanout.svg');

/**
 * Writes the sections into `docPath` (each between its markers) and the
 * chart to `svgPath`. Returns the rendered sections ('' for one not written).
 */
export function writeReport(results: BenchResults, docPath = DOC_PATH, svgPath = SVG_PATH): string {
  const hub = hasHubScenarios(results.scenarios);
  const section = hub ? renderSection(results) : '';
  const channels = renderChannelSection(results);
  const cluster = renderClusterSection(results);
  let doc = readFileSync(docPath, 'utf8');
  if (hub) doc = replaceSection(doc, section);
  if (channels !== '') doc = replaceChannelSection(doc, channels);
  if (cluster !== '') doc = replaceClusterSection(doc, cluster);
  writeFileSync(docPath, doc);
  if (hub) writeFileSync(svgPath, fanoutSvg(results));
  return [section, channels, cluster].filter((s) => s !== '').join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2] ?? join(ROOT, 'bench', 'results', 'latest.json');
  const results = JSON.parse(readFileSync(file, 'utf8')) as BenchResults;
  writeReport(results);
  const hub = hasHubScenarios(results.scenarios);
  process.stdout.write(`wrote ${DOC_PATH}${hub ? ` and ${SVG_PATH}` : ''} from ${file}\n`);
}
