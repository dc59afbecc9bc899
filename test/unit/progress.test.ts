import { describe, expect, it } from 'vitest';
import { framesInPipeline, judgeInference, judgeProgress, readyReason, type PipelineSample } from '../../src/service/progress.js';
import { statusLine } from '../../src/service/status-line.js';

// Samples one watchdog interval (500 ms) apart: prev at 1000, now at 1500.
function sample(at: number, s: Partial<PipelineSample> = {}): PipelineSample {
  return { at, captured: 0, classified: 0, discarded: 0, decodingSince: undefined, inferringSince: undefined, ...s };
}

describe('judgeInference', () => {
  it('inferences that all failed in the interval: failing, with the count', () => {
    const prev = sample(1000, { captured: 10, classified: 4, discarded: 2, inferenceErrors: 2 });
    const now = sample(1500, { captured: 15, classified: 4, discarded: 7, inferenceErrors: 7 });
    expect(judgeInference(prev, now)).toBe('every inference failed for 0.5 s (5 errors, none classified)');
    expect(judgeProgress(prev, now).progress, 'not stuck: the pings go on').toBe(true);
  });

  it('one success, or no failure, in the interval: not failing', () => {
    expect(judgeInference(sample(1000, { inferenceErrors: 2, classified: 4 }), sample(1500, { inferenceErrors: 5, classified: 5 }))).toBeUndefined();
    expect(judgeInference(sample(1000, { inferenceErrors: 2 }), sample(1500, { inferenceErrors: 2 }))).toBeUndefined();
    expect(judgeInference(sample(1000), sample(1500, { inferenceErrors: 1 }))).toBe('every inference failed for 0.5 s (1 error, none classified)');
  });
});

describe('judgeProgress', () => {
  it('a classified frame is progress, even with an inference running since before the previous check', () => {
    const v = judgeProgress(sample(1000, { captured: 5, classified: 3 }), sample(1500, { captured: 7, classified: 4, inferringSince: 900 }));
    expect(v).toEqual({ progress: true, why: 'classifying' });
  });

  it('an inference that spans the whole interval is not progress (a wedged worker), whatever the cameras do', () => {
    // The camera keeps delivering: frames replace each other in the slot (discarded grows).
    const prev = sample(1000, { captured: 10, classified: 4, discarded: 4, inferringSince: 990 });
    const now = sample(1500, { captured: 14, classified: 4, discarded: 8, inferringSince: 990 });
    expect(judgeProgress(prev, now)).toEqual({ progress: false, why: 'inference running for 0.5 s' });
  });

  it('an inference that started within the interval is not (yet) stuck', () => {
    const prev = sample(1000, { captured: 3, classified: 2 });
    const now = sample(1500, { captured: 3, classified: 2, inferringSince: 1001 });
    expect(judgeProgress(prev, now)).toEqual({ progress: true, why: 'waiting' });
  });

  it('an inference starting exactly at the previous check has spanned the interval', () => {
    expect(judgeProgress(sample(1000), sample(1500, { captured: 1, inferringSince: 1000 })).progress).toBe(false);
  });

  it('a decode that spans the interval is not progress (sharp stuck on the libuv pool)', () => {
    const v = judgeProgress(sample(1000, { captured: 2, decodingSince: 200 }), sample(1500, { captured: 2, decodingSince: 200 }));
    expect(v).toEqual({ progress: false, why: 'frame decode running for 1.3 s' });
  });

  it('frames waiting at both checks with nothing running and nothing moving are not progress', () => {
    const prev = sample(1000, { captured: 3, classified: 1 });
    const now = sample(1500, { captured: 3, classified: 1 });
    expect(judgeProgress(prev, now)).toEqual({ progress: false, why: '2 frame(s) waiting for 0.5 s with nothing running' });
  });

  it('a frame that arrived just now with nothing running yet is not stuck', () => {
    expect(judgeProgress(sample(1000, { captured: 3, classified: 3 }), sample(1500, { captured: 4, classified: 3 })).progress).toBe(true);
  });

  it('cameras that deliver nothing (offline, backoff, paused, ended) are an honest wait', () => {
    expect(judgeProgress(sample(1000, { captured: 7, classified: 7 }), sample(1500, { captured: 7, classified: 7 }))).toEqual({
      progress: true,
      why: 'waiting',
    });
  });

  it('a camera slower than the interval is an honest wait between its frames', () => {
    // One frame every few seconds: classified in an earlier interval, none since.
    expect(judgeProgress(sample(1000, { captured: 2, classified: 2 }), sample(1500, { captured: 2, classified: 2 })).progress).toBe(true);
  });

  it('frames that fail fast (undecodable, inference errors) keep the pings: nothing is wedged', () => {
    const prev = sample(1000, { captured: 10, classified: 0, discarded: 9, decodingSince: 999 });
    const now = sample(1500, { captured: 20, classified: 0, discarded: 19, decodingSince: 1499 });
    expect(judgeProgress(prev, now)).toEqual({ progress: true, why: 'waiting' });
  });

  it('a camera removed between checks (its counters vanish) does not read as stuck', () => {
    const prev = sample(1000, { captured: 30, classified: 20, discarded: 8 });
    const now = sample(1500, { captured: 12, classified: 9, discarded: 3 });
    expect(judgeProgress(prev, now).progress).toBe(true);
  });

  it('counts frames in the pipeline from the counters', () => {
    expect(framesInPipeline(sample(0, { captured: 10, classified: 6, discarded: 3 }))).toBe(1);
    expect(framesInPipeline(sample(0, { captured: 1, classified: 1, discarded: 1 }))).toBe(0);
  });
});

describe('readyReason', () => {
  it('is ready once a frame is classified', () => {
    expect(readyReason(sample(0, { captured: 2, classified: 1 }), ['online', 'starting'])).toBe('first frame classified');
  });

  it('waits while the first frame is in the pipeline', () => {
    expect(readyReason(sample(0, { captured: 1, inferringSince: 0 }), ['online'])).toBeUndefined();
  });

  it('waits while a camera is still starting (connecting, first frame on its way)', () => {
    expect(readyReason(sample(0), ['starting', 'offline'])).toBeUndefined();
  });

  it('is ready when no camera has a frame and all are waiting: an unplugged camera does not fail the start', () => {
    expect(readyReason(sample(0), ['offline', 'disabled', 'ended'])).toBe('no camera has a frame yet');
  });

  it('is ready when frames came but all failed, so garbage from a camera does not fail the start', () => {
    expect(readyReason(sample(0, { captured: 3, discarded: 3 }), ['online'])).toBe('cameras deliver frames but none could be classified yet');
  });
});

describe('statusLine', () => {
  const model = { name: 'resnet50', version: '1.2.0' };

  it('says what a healthy daemon does, in one short line', () => {
    expect(statusLine({ fps: 11.84, model, mqttConnected: true, cameras: { cam1: { state: 'online', lastError: null } } })).toBe(
      'classifying 11.8 fps, model resnet50 1.2.0, mqtt connected',
    );
  });

  it('lists cameras that are not online, with their error', () => {
    const line = statusLine({
      fps: 0,
      model,
      mqttConnected: false,
      cameras: { cam1: { state: 'offline', lastError: 'Connection refused' }, cam2: { state: 'disabled', lastError: null } },
    });
    expect(line).toBe('waiting for cameras, model resnet50 1.2.0, mqtt disconnected; cam1 offline (Connection refused), cam2 disabled');
  });

  it('leads with the stall while watchdog pings are withheld, and stays short', () => {
    const line = statusLine({
      fps: 0,
      model: undefined,
      mqttConnected: true,
      cameras: { cam1: { state: 'offline', lastError: 'x'.repeat(500) } },
      stalled: 'inference running for 12.0 s',
    });
    expect(line.startsWith('stalled: inference running for 12.0 s, no model, mqtt connected; cam1 offline (xxx')).toBe(true);
    expect(line.length).toBeLessThanOrEqual(400);
    expect(line).not.toContain('\n');
  });
});
