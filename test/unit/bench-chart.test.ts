import { describe, expect, it } from 'vitest';
import { niceStep, renderLatencyChart, type ChartSeries } from '../../src/bench/chart.js';
import { parseSvg, polylinePoints, xmlText } from '../helpers/svg.js';

const series = (label: string, values: number[], stepMs = 10): ChartSeries => ({
  label,
  colour: '#123456',
  samples: values.map((ms, i) => ({ t_ms: (i + 1) * stepMs, ms })),
});

describe('bench latency chart', () => {
  it('is well-formed SVG with one line and one legend row per series', () => {
    const svg = renderLatencyChart({
      title: 'bench <model & co>',
      subtitle: 'a "quoted" subtitle',
      series: [series('pipeline: capture -> publish', [40, 42, 41]), series('naive', [20, 21, 22]), series('empty', [])],
    });
    const els = parseSvg(svg);
    const lines = els.filter((e) => e.name === 'polyline');
    // An empty series gets neither a line nor a legend row.
    expect(lines.map((l) => xmlText(l.attrs['data-label'] ?? ''))).toEqual(['pipeline: capture -> publish', 'naive']);
    for (const l of lines) expect(polylinePoints(l)).toHaveLength(3);
    const texts = els.filter((e) => e.name === 'text').map((e) => xmlText(e.text));
    expect(texts).toContain('bench <model & co>');
    expect(texts).toContain('a "quoted" subtitle');
    expect(texts).toContain('pipeline: capture -> publish: p50 41 ms, p99 42 ms, 3 frames');
    expect(texts.some((t) => t.startsWith('empty'))).toBe(false);
  });

  it('places points by time and latency: later is further right, slower is higher', () => {
    const svg = renderLatencyChart({ title: 't', subtitle: 's', series: [series('a', [10, 30, 20])] });
    const [p1, p2, p3] = polylinePoints(parseSvg(svg).find((e) => e.name === 'polyline')!);
    expect(p1![0]).toBeLessThan(p2![0]);
    expect(p2![0]).toBeLessThan(p3![0]);
    // SVG y grows downwards.
    expect(p2![1]).toBeLessThan(p3![1]);
    expect(p3![1]).toBeLessThan(p1![1]);
  });

  it('clips rare outliers to the top edge and says how many', () => {
    const values = Array.from({ length: 200 }, (_, i) => (i === 100 ? 5000 : 20 + (i % 5)));
    const svg = renderLatencyChart({ title: 't', subtitle: 's', series: [series('a', values)] });
    const els = parseSvg(svg);
    const ys = polylinePoints(els.find((e) => e.name === 'polyline')!).map((p) => p[1]);
    const top = Math.min(...ys);
    // The axis is scaled to the p99 (24 ms), not to the 5 s outlier, which sits on the top edge.
    expect(ys.filter((y) => y === top)).toHaveLength(1);
    const note = els.find((e) => e.name === 'text' && e.text.includes('drawn at the top edge'));
    expect(note?.text).toMatch(/^1 sample above \d+ ms/);
    const yLabels = els.filter((e) => e.name === 'text' && e.attrs['text-anchor'] === 'end' && /^\d+$/.test(e.text)).map((e) => Number(e.text));
    expect(Math.max(...yLabels)).toBeLessThan(100);
  });

  it('keeps a 10,000-frame run small but keeps its spikes', () => {
    // A 15-21 ms band (axis top 30 ms), one 28 ms spike within the axis and one clipped 90 ms.
    const values = Array.from({ length: 10_000 }, (_, i) => 15 + (i % 7));
    values[5000] = 28;
    values[7777] = 90;
    const svg = renderLatencyChart({ title: 't', subtitle: 's', series: [series('a', values, 1)] });
    const pts = polylinePoints(parseSvg(svg).find((e) => e.name === 'polyline')!);
    expect(pts.length).toBeLessThan(2_000);
    expect(pts.length).toBeGreaterThan(500);
    // Each pixel column keeps its lowest and highest sample: 15 and 21 everywhere, plus the
    // two spikes, so exactly four heights remain and the 28 ms one is there once. (The last
    // sample, at the right edge, is a column of its own: left out.)
    const heights = [...new Set(pts.slice(0, -1).map((p) => p[1]))].sort((a, b) => a - b);
    expect(heights).toHaveLength(4);
    expect(pts.filter((p) => p[1] === heights[1])).toHaveLength(1);
    expect(svg.length).toBeLessThan(100_000);
  });

  it('picks 1-2-5 steps', () => {
    expect(niceStep(100, 10)).toBe(10);
    expect(niceStep(37, 6)).toBe(10);
    expect(niceStep(3.2, 10)).toBe(0.5);
    expect(niceStep(0, 10)).toBe(1);
  });
});
