import { describe, expect, it } from 'vitest';
import { LabelWatcher, resolveRules, type LabelEvent } from '../../src/rules/label-watch.js';
import { PredictionRouter } from '../../src/daemon/prediction-router.js';
import type { ClassifiedFrame } from '../../src/daemon/pipeline.js';

// Watch rules replaced by a configuration reload.

const LABELS = ['red', 'green', 'blue'];
const rules = (...r: { label: string; frames?: number; cameras?: string[] }[]) => resolveRules(r.map((x) => ({ min_score: 0.5, frames: 1, ...x })), LABELS);

describe('LabelWatcher.setRules / forget', () => {
  it('keeps the state of a rule that stays, drops the others', () => {
    const w = new LabelWatcher(rules({ label: 'red' }, { label: 'blue' }));
    const scores: Record<number, number> = { 0: 0.9, 2: 0.9 };
    expect(w.update('cam', (i) => scores[i]).map((e) => [e.slug, e.state])).toEqual([['red', 'ON'], ['blue', 'ON']]);
    w.setRules(rules({ label: 'red', frames: 3 }, { label: 'green' }));
    expect(w.state('cam', 'red')).toBe(true); // unchanged slug: still ON, no new event for it
    expect(w.state('cam', 'blue')).toBeUndefined();
    expect(w.indices).toEqual([0, 1]);
    expect(w.update('cam', (i) => ({ 0: 0.9, 1: 0.1 })[i]).map((e) => [e.slug, e.state])).toEqual([['green', 'OFF']]);
  });

  it('leaves a rule alone for a frame classified without its label (undefined score)', () => {
    const w = new LabelWatcher(rules({ label: 'red' }));
    expect(w.update('cam', () => undefined)).toEqual([]);
    expect(w.state('cam', 'red')).toBeUndefined();
  });

  it('forgets a removed camera', () => {
    const w = new LabelWatcher(rules({ label: 'red' }));
    w.update('gone', () => 0.9);
    w.update('keep', () => 0.9);
    w.forget('gone');
    expect(w.state('gone', 'red')).toBeUndefined();
    expect(w.state('keep', 'red')).toBe(true);
  });
});

describe('PredictionRouter with rules changed between classification and routing', () => {
  it('scores a frame against the label indices it was classified with', () => {
    const watcher = new LabelWatcher(rules({ label: 'red' }));
    const events: LabelEvent[] = [];
    const router = new PredictionRouter({
      clock: { now: () => 0, monotonic: () => 0, sleep: () => Promise.resolve() },
      deviceId: 'd',
      settings: () => ({ top_k: 3, min_score: 0, only_on_change: false, expiry: 0 }),
      watcher,
      model: () => ({ name: 'm', version: '1', sha256: 'a'.repeat(64) }),
      publishPrediction: () => undefined,
      publishLabel: (e) => events.push(e),
    });
    const frame = (scores: number[], watched: number[]): ClassifiedFrame => ({
      frame: { camera: 'cam', seq: 1, capturedAt: 0, source: 's' },
      width: 1,
      height: 1,
      top: [],
      scores,
      watched,
      latency: { preprocess: 0, inference: 0, total: 0 },
    });
    // Classified while only "red" (index 0) was watched; routed after "blue" (index 2) was added.
    watcher.setRules(rules({ label: 'red' }, { label: 'blue' }));
    router.handle(frame([0.9], [0]));
    expect(events.map((e) => [e.slug, e.state])).toEqual([['red', 'ON']]); // blue: no score, no event
    router.handle(frame([0.9, 0.2], [0, 2]));
    expect(events.map((e) => [e.slug, e.state])).toEqual([['red', 'ON'], ['blue', 'OFF']]);
  });
});
