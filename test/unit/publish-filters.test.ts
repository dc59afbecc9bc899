import { describe, expect, it } from 'vitest';
import { ChangeFilter } from '../../src/rules/change-filter.js';
import { LabelWatcher, resolveRules, slugify } from '../../src/rules/label-watch.js';
import type { Clock } from '../../src/core/clock.js';

function handClock(): Clock & { advance(ms: number): void } {
  let t = 0;
  return { now: () => t, monotonic: () => t, sleep: () => Promise.resolve(), advance: (ms) => void (t += ms) };
}

describe('ChangeFilter (only_on_change)', () => {
  it('publishes label changes, score moves beyond the hysteresis, and heartbeats', () => {
    const clock = handClock();
    const f = new ChangeFilter({ clock, config: () => ({ hysteresis: 0.1, heartbeat: 30 }) });
    const seq: [number, number, number][] = [
      [1, 0.8, 0], // first: publish
      [1, 0.85, 1_000], // +0.05: no
      [1, 0.95, 1_000], // +0.15 from the last published: yes
      [2, 0.95, 1_000], // label change: yes
      [2, 0.9, 1_000], // no
      [2, 0.9, 30_000], // heartbeat due: yes
      [2, 0.9, 1_000], // no
    ];
    const out = seq.map(([index, score, dt]) => {
      clock.advance(dt);
      return f.shouldPublish({ index, score });
    });
    expect(out).toEqual([true, false, true, true, false, true, false]);
  });

  it('treats "nothing above min_score" as a state of its own', () => {
    const f = new ChangeFilter({ clock: handClock(), config: () => ({ hysteresis: 0.1, heartbeat: 60 }) });
    expect([f.shouldPublish({ index: 3, score: 0.9 }), f.shouldPublish(undefined), f.shouldPublish(undefined)]).toEqual([true, true, false]);
  });
});

describe('LabelWatcher', () => {
  const labels = ['tench', 'tabby, tabby cat', 'fox', 'person'];

  it('slugs labels for topics', () => {
    expect(slugify('tabby, tabby cat')).toBe('tabby-tabby-cat');
    expect(slugify('  Crème Brûlée!! ')).toBe('creme-brulee');
    expect(slugify('***')).toBe('label');
  });

  it('refuses a label that is not in the labels file, with a hint', () => {
    expect(() => resolveRules([{ label: 'tabby', min_score: 0.5, frames: 2 }], labels)).toThrow(/watch\[0\]\.label: "tabby" .*did you mean "tabby, tabby cat"/);
  });

  it('switches ON and OFF only after K consecutive frames, per camera', () => {
    const rules = resolveRules([{ label: 'fox', min_score: 0.5, frames: 3 }], labels);
    const w = new LabelWatcher(rules);
    const feed = (camera: string, fox: number[]): string[] =>
      fox.flatMap((s) => w.update(camera, (i) => (i === 2 ? s : 0)).map((e) => `${e.camera}:${e.slug}:${e.state}`));
    // Established OFF after 3 quiet frames; a 2-frame flicker does not switch it.
    expect(feed('gate', [0.1, 0.1, 0.1, 0.9, 0.9, 0.1])).toEqual(['gate:fox:OFF']);
    expect(feed('gate', [0.9, 0.9, 0.9])).toEqual(['gate:fox:ON']);
    expect(feed('yard', [0.9, 0.9, 0.9])).toEqual(['yard:fox:ON']);
    expect(feed('gate', [0.2, 0.2, 0.9, 0.2, 0.2, 0.2])).toEqual(['gate:fox:OFF']);
    expect(w.state('yard', 'fox')).toBe(true);
  });

  it('applies camera filters and custom names', () => {
    const rules = resolveRules([{ label: 'person', name: 'Somebody', min_score: 0.3, frames: 1, cameras: ['door'] }], labels);
    const w = new LabelWatcher(rules);
    expect(w.update('garden', () => 1)).toEqual([]);
    expect(w.update('door', () => 0.5)).toEqual([{ camera: 'door', slug: 'somebody', label: 'person', state: 'ON', score: 0.5 }]);
    expect(w.indices).toEqual([3]);
  });
});
