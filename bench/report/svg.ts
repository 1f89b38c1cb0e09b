/**
 * A hand-written SVG bar chart of the fan-out maximum sustainable
 * deliveries/s: one group per subscribers × payload cell, one bar per
 * target, with the median printed over each bar and the min–max range as a
 * whisker.
 */
import type { BenchResults } from '../results.ts';
import { formatNumber } from '../summary.ts';
import { payloadLabel, subscribersLabel } from './markdown.ts';

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2'];
const WIDTH = 900;
const HEIGHT = 420;
const MARGIN = { top: 50, right: 20, bottom: 80, left: 80 };

/** Escapes text for SVG content and attributes. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A "nice" axis maximum at or above `value` (1, 2 or 5 × 10^k). */
function niceCeil(value: number): number {
  if (!(value > 0)) return 1;
  const exp = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (m * exp >= value) return m * exp;
  return 10 * exp;
}

/** Renders the fan-out chart of `results` as a standalone SVG document. */
export function fanoutSvg(results: BenchResults): string {
  const targets = [...new Set(results.fanout.map((c) => c.target))];
  const groups = [...new Set(results.fanout.map((c) => `${c.members}|${c.payloadBytes}`))];
  const top = niceCeil(
    Math.max(0, ...results.fanout.map((c) => c.maxSustainable.max).filter(Number.isFinite)),
  );
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const y = (v: number): number => MARGIN.top + plotH - (Math.max(0, v) / top) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<title>Fan-out: maximum sustainable deliveries/s (p99 &lt; 100 ms, no loss)</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="15">Fan-out: maximum sustainable deliveries/s (p99 &lt; 100 ms, no loss)</text>`,
  );
  for (let i = 0; i <= 5; i++) {
    const v = (top * i) / 5;
    const yy = y(v).toFixed(1);
    out.push(
      `<line x1="${MARGIN.left}" y1="${yy}" x2="${WIDTH - MARGIN.right}" y2="${yy}" stroke="#dddddd"/>`,
      `<text x="${MARGIN.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${escapeXml(formatNumber(v))}</text>`,
    );
  }
  const groupW = groups.length > 0 ? plotW / groups.length : plotW;
  const barW = Math.max(4, (groupW * 0.8) / Math.max(1, targets.length));
  groups.forEach((g, gi) => {
    const [members, payload] = g.split('|').map(Number) as [number, number];
    const gx = MARGIN.left + gi * groupW + groupW * 0.1;
    targets.forEach((t, ti) => {
      const cell = results.fanout.find(
        (c) => c.target === t && c.members === members && c.payloadBytes === payload,
      );
      if (!cell || !Number.isFinite(cell.maxSustainable.median)) return;
      const x = gx + ti * barW;
      const h = MARGIN.top + plotH - y(cell.maxSustainable.median);
      const color = COLORS[ti % COLORS.length]!;
      const label = `${formatNumber(cell.maxSustainable.median)}${cell.maxGeneratorBound ? '+' : ''}`;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${y(cell.maxSustainable.median).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${color}"><title>${escapeXml(`${t}: ${label} deliveries/s`)}</title></rect>`,
      );
      if (cell.maxSustainable.max > cell.maxSustainable.min) {
        const cx = (x + (barW - 2) / 2).toFixed(1);
        out.push(
          `<line x1="${cx}" y1="${y(cell.maxSustainable.min).toFixed(1)}" x2="${cx}" y2="${y(cell.maxSustainable.max).toFixed(1)}" stroke="#333333"/>`,
        );
      }
      out.push(
        `<text x="${(x + (barW - 2) / 2).toFixed(1)}" y="${(y(cell.maxSustainable.median) - 4).toFixed(1)}" text-anchor="middle" font-size="10">${escapeXml(label)}</text>`,
      );
    });
    out.push(
      `<text x="${(MARGIN.left + gi * groupW + groupW / 2).toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 18}" text-anchor="middle">${escapeXml(`${subscribersLabel(members)} subscribers × ${payloadLabel(payload)}`)}</text>`,
    );
  });
  targets.forEach((t, ti) => {
    const x = MARGIN.left + ti * 130;
    const yy = HEIGHT - 30;
    out.push(
      `<rect x="${x}" y="${yy - 10}" width="12" height="12" fill="${COLORS[ti % COLORS.length]!}"/>`,
      `<text x="${x + 18}" y="${yy}">${escapeXml(t)}</text>`,
    );
  });
  out.push(
    `<text x="${WIDTH - MARGIN.right}" y="${HEIGHT - 8}" text-anchor="end" font-size="10" fill="#555555">median of runs, whiskers min–max, "+" = generator-bound lower bound</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}
