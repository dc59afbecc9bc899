/**
 * `bench --chart FILE`: per-frame latency over time, as one self-contained SVG (no script, no
 * external font or stylesheet), so it opens in any browser and embeds in a README as is.
 * Written by hand: a chart library would be a dependency for ~200 lines of output.
 */

/** One frame: when it finished (ms since its phase's measured window began) and what it took. */
export interface TimedSample {
  t_ms: number;
  ms: number;
}

export interface ChartSeries {
  /** Legend text, e.g. "pipeline: capture -> publish". */
  label: string;
  colour: string;
  samples: readonly TimedSample[];
  /** Dashed line: a reference (the limit) rather than a measured path. */
  dashed?: boolean;
}

export interface ChartInput {
  title: string;
  /** One line under the title: model, source, threads, machine. */
  subtitle: string;
  series: readonly ChartSeries[];
}

const WIDTH = 1000;
const HEIGHT = 580;
const PLOT = { left: 72, right: 24, top: 78, bottom: 58 + 18 * 4 + 8 };
const PLOT_W = WIDTH - PLOT.left - PLOT.right;
const PLOT_H = HEIGHT - PLOT.top - PLOT.bottom;
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Nearest-rank percentile of unsorted values; 0 when empty. */
function pct(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The smallest "nice" step (1, 2 or 5 times a power of ten) that splits `span` into <= `maxTicks`. */
export function niceStep(span: number, maxTicks: number): number {
  if (!(span > 0)) return 1;
  const raw = span / maxTicks;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

/**
 * The y axis top. One preemption by another process can take 10x the usual time; scaling to
 * the maximum would flatten everything else into a line at the bottom. So the axis covers the
 * largest p99 with some room, and the few samples above it are drawn clipped at the top edge
 * (and counted in the caption).
 */
function yTop(series: readonly ChartSeries[]): number {
  const p99 = Math.max(1, ...series.map((s) => pct(s.samples.map((x) => x.ms), 99)));
  const step = niceStep(p99 * 1.25, 6);
  return Math.ceil((p99 * 1.25) / step) * step;
}

/**
 * Min-max decimation: with more samples than pixel columns, each column keeps its lowest and
 * highest sample, so the outline (and every spike) survives while the file stays small.
 */
function decimate(points: [number, number][]): [number, number][] {
  if (points.length <= PLOT_W * 2) return points;
  const out: [number, number][] = [];
  let col = -1;
  let lo: [number, number] | undefined;
  let hi: [number, number] | undefined;
  const flush = (): void => {
    if (!lo || !hi) return;
    if (lo === hi) out.push(lo);
    else out.push(...(lo[0] <= hi[0] ? [lo, hi] : [hi, lo]));
  };
  for (const p of points) {
    const c = Math.floor(p[0]);
    if (c !== col) {
      flush();
      col = c;
      lo = p;
      hi = p;
    } else {
      // SVG y grows downwards: the highest latency has the smallest y.
      if (p[1] > lo![1]) lo = p;
      if (p[1] < hi![1]) hi = p;
    }
  }
  flush();
  return out;
}

const fmt = (v: number): string => (Math.round(v * 10) / 10).toString();

export function renderLatencyChart(input: ChartInput): string {
  const series = input.series.filter((s) => s.samples.length > 0);
  const top = yTop(series);
  const xMaxMs = Math.max(1, ...series.flatMap((s) => s.samples.map((x) => x.t_ms)));
  const xMax = xMaxMs / 1000;
  const xStep = niceStep(xMax, 10);
  const yStep = niceStep(top, 6);
  const x = (s: number): number => PLOT.left + (s / xMax) * PLOT_W;
  const y = (ms: number): number => PLOT.top + PLOT_H - (Math.min(ms, top) / top) * PLOT_H;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ${FONT} font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${PLOT.left}" y="28" font-size="17" font-weight="bold">${escapeXml(input.title)}</text>`,
    `<text x="${PLOT.left}" y="50" fill="#444">${escapeXml(input.subtitle)}</text>`,
  );

  // Grid and tick labels.
  out.push('<g stroke="#e3e3e3" stroke-width="1">');
  for (let v = 0; v <= top + 1e-9; v += yStep) out.push(`<line x1="${PLOT.left}" x2="${PLOT.left + PLOT_W}" y1="${fmt(y(v))}" y2="${fmt(y(v))}"/>`);
  for (let s = 0; s <= xMax + 1e-9; s += xStep) out.push(`<line x1="${fmt(x(s))}" x2="${fmt(x(s))}" y1="${PLOT.top}" y2="${PLOT.top + PLOT_H}"/>`);
  out.push('</g>', '<g fill="#333" font-size="11">');
  for (let v = 0; v <= top + 1e-9; v += yStep) out.push(`<text x="${PLOT.left - 6}" y="${fmt(y(v) + 4)}" text-anchor="end">${fmt(v)}</text>`);
  for (let s = 0; s <= xMax + 1e-9; s += xStep) out.push(`<text x="${fmt(x(s))}" y="${PLOT.top + PLOT_H + 16}" text-anchor="middle">${fmt(s)}</text>`);
  out.push('</g>');
  out.push(
    `<rect x="${PLOT.left}" y="${PLOT.top}" width="${PLOT_W}" height="${PLOT_H}" fill="none" stroke="#888"/>`,
    `<text x="${PLOT.left + PLOT_W / 2}" y="${PLOT.top + PLOT_H + 36}" text-anchor="middle">time since the phase's measured window began (s)</text>`,
    `<text transform="translate(20 ${PLOT.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle">latency per frame (ms)</text>`,
  );

  // The lines.
  let clipped = 0;
  for (const s of series) {
    clipped += s.samples.filter((p) => p.ms > top).length;
    const pts = decimate(s.samples.map((p): [number, number] => [x(p.t_ms / 1000), y(p.ms)]));
    const dash = s.dashed ? ' stroke-dasharray="5 3"' : '';
    out.push(
      `<polyline class="series" data-label="${escapeXml(s.label)}" fill="none" stroke="${s.colour}" stroke-width="1.3" stroke-opacity="0.85" stroke-linejoin="round"${dash} points="${pts.map(([a, b]) => `${fmt(a)},${fmt(b)}`).join(' ')}"/>`,
    );
  }

  // Legend below the plot: one row per series with its own p50/p99, so the figures read
  // without the table.
  const legendTop = PLOT.top + PLOT_H + 58;
  series.forEach((s, i) => {
    const lx = PLOT.left;
    const ly = legendTop + i * 18;
    const ms = s.samples.map((p) => p.ms);
    const dash = s.dashed ? ' stroke-dasharray="5 3"' : '';
    out.push(
      `<line x1="${lx}" x2="${lx + 26}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.colour}" stroke-width="2.5"${dash}/>`,
      `<text x="${lx + 34}" y="${ly}">${escapeXml(s.label)}: p50 ${fmt(pct(ms, 50))} ms, p99 ${fmt(pct(ms, 99))} ms, ${ms.length} frames</text>`,
    );
  });
  if (clipped > 0) {
    out.push(
      `<text x="${PLOT.left + PLOT_W}" y="${PLOT.top - 8}" text-anchor="end" fill="#a33" font-size="11">${clipped} sample${clipped === 1 ? '' : 's'} above ${fmt(top)} ms drawn at the top edge</text>`,
    );
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
