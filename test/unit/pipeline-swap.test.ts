import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Pipeline, type ClassifiedFrame, type FrameClassifier } from '../../src/daemon/pipeline.js';
import { createSystemClock } from '../../src/core/clock.js';

/** A classifier that tags its results with its name and takes `ms` per inference. */
function model(name: string, ms: number, log: string[]): FrameClassifier {
  return {
    prepare: (data) => {
      log.push(`${name}:prepare:${data.readUInt8(0)}`);
      return Promise.resolve({ data: new Float32Array(1), dims: [1], width: data.readUInt8(0), height: 1 });
    },
    classify: async (tensor) => {
      log.push(`${name}:classify:${tensor.width}`);
      await new Promise((r) => setTimeout(r, ms));
      return { top: [{ index: 0, label: name, score: 1 }], inferenceMs: ms, scores: [] };
    },
  };
}

describe('Pipeline.setClassifier (hot swap)', () => {
  it('switches between two frames: no frame fails or is lost, frames in flight finish on the old model', async () => {
    const log: string[] = [];
    const results: ClassifiedFrame[] = [];
    const pipeline = new Pipeline({
      logger: pino({ level: 'silent' }),
      clock: createSystemClock(),
      classifier: model('old', 30, log),
      topK: () => 1,
      publish: (r) => results.push(r),
    });
    await pipeline.start();
    const sink = pipeline.sink('cam');
    const push = async (seq: number): Promise<void> => {
      await sink.whenIdle();
      sink.push({ camera: 'cam', seq, capturedAt: Date.now(), source: 's', data: Buffer.from([seq]) });
    };
    await push(1);
    await push(2); // prepared while 1 is in inference
    const swapped = pipeline.setClassifier(model('new', 5, log));
    await push(3);
    await swapped;
    await push(4);
    await new Promise((r) => setTimeout(r, 100));
    await pipeline.stop();
    expect(results.map((r) => [r.frame.seq, r.top[0]?.label])).toEqual([
      [1, 'old'],
      [2, 'old'],
      [3, 'new'],
      [4, 'new'],
    ]);
    // Frame 3 was prepared by the new model, never by the old one.
    expect(log).not.toContain('old:prepare:3');
    expect(pipeline.counters().cam).toMatchObject({ classified: 4, dropped: 0, inferenceErrors: 0, decodeErrors: 0 });
  });
});
