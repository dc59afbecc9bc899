import { describe, expect, it } from 'vitest';
import { PredictionRouter } from '../../src/daemon/prediction-router.js';
import { LabelWatcher, resolveRules, type LabelEvent } from '../../src/rules/label-watch.js';
import type { PublishConfig } from '../../src/config/schema.js';
import type { PredictionPayload } from '../../src/mqtt/payloads.js';
import type { ClassifiedFrame } from '../../src/daemon/pipeline.js';
import type { Clock } from '../../src/core/clock.js';

const labels = ['cat', 'dog', 'fox'];

function setup(settings: Partial<PublishConfig> = {}) {
  let t = 0;
  const clock: Clock = { now: () => t, monotonic: () => t, sleep: () => Promise.resolve() };
  const published: PredictionPayload[] = [];
  const events: LabelEvent[] = [];
  const watcher = new LabelWatcher(resolveRules([{ label: 'fox', min_score: 0.5, frames: 1 }], labels));
  const router = new PredictionRouter({
    clock,
    deviceId: 'd',
    settings: () => ({ top_k: 3, min_score: 0, only_on_change: false, expiry: 0, ...settings }),
    watcher,
    model: () => ({ name: 'm', version: '1', sha256: 'a'.repeat(64) }),
    publishPrediction: (p) => published.push(p),
    publishLabel: (e) => events.push(e),
  });
  const frame = (seq: number, scores: [number, number, number]): ClassifiedFrame => ({
    frame: { camera: 'c', seq, capturedAt: 1_000 + seq, source: 's' },
    width: 10,
    height: 10,
    top: scores.map((score, index) => ({ index, label: labels[index]!, score })).sort((a, b) => b.score - a.score),
    scores: [scores[2]],
    latency: { preprocess: 1, inference: 2, total: 3 },
  });
  return { router, published, events, frame, advance: (ms: number) => void (t += ms) };
}

describe('PredictionRouter', () => {
  it('leaves out labels below min_score', () => {
    const { router, published, frame } = setup({ min_score: 0.2 });
    router.handle(frame(1, [0.7, 0.25, 0.05]));
    expect(published[0]?.top.map((t) => t.label)).toEqual(['cat', 'dog']);
  });

  it('publishes on change only, but always the frame a classify command waits for', async () => {
    const { router, published, frame } = setup({ only_on_change: { hysteresis: 0.2, heartbeat: 60 } });
    router.handle(frame(1, [0.8, 0.1, 0.1]));
    router.handle(frame(2, [0.8, 0.1, 0.1]));
    const waiting = router.nextPrediction('c');
    router.handle(frame(3, [0.8, 0.1, 0.1]));
    expect((await waiting).seq).toBe(3);
    router.handle(frame(4, [0.1, 0.8, 0.1]));
    expect(published.map((p) => p.seq)).toEqual([1, 3, 4]);
  });

  it('raises watch events from the watched scores, whatever is published', () => {
    const { router, events, frame } = setup({ min_score: 0.9 });
    router.handle(frame(1, [0.1, 0.1, 0.8]));
    expect(events).toEqual([{ camera: 'c', slug: 'fox', label: 'fox', state: 'ON', score: 0.8 }]);
  });
});
