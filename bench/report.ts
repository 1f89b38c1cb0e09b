/**
 * Renders docs/BENCHMARKS.md's hub-benchmarks section and docs/bench-fanout.svg
 * from a results file (default bench/results/latest.json).
 *
 * Run: node --import tsx bench/report.ts [results.json]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResults } from './results.ts';
import { renderSection, replaceSection } from './report/document.ts';
import { fanoutSvg } from './report/svg.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Paths the report writes. */
export const DOC_PATH = join(ROOT, 'docs', 'BENCHMARKS.md');
export const SVG_PATH = join(ROOT, 'docs', 'bench-fanout.svg');

/**
 * Writes the section into `docPath` (between its markers) and the chart to
 * `svgPath`. Returns the rendered section.
 */
export function writeReport(results: BenchResults, docPath = DOC_PATH, svgPath = SVG_PATH): string {
  const section = renderSection(results);
  writeFileSync(docPath, replaceSection(readFileSync(docPath, 'utf8'), section));
  writeFileSync(svgPath, fanoutSvg(results));
  return section;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2] ?? join(ROOT, 'bench', 'results', 'latest.json');
  const results = JSON.parse(readFileSync(file, 'utf8')) as BenchResults;
  writeReport(results);
  process.stdout.write(`wrote ${DOC_PATH} and ${SVG_PATH} from ${file}\n`);
}
