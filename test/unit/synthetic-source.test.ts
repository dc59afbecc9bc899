import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import sharp, { type Sharp } from 'sharp';
import type { Frame, FrameSink } from '../../src/camera/frame.js';
import { FRAMES_PER_COLOUR, SyntheticSource, colourForFrame } from '../../src/camera/synthetic-source.js';
import type { SyntheticSourceConfig } from '../../src/config/schema.js';
import { DEMO_PALETTE } from '../../src/camera/palette.js';
import { createSystemClock } from '../../src/core/clock.js';
import { cameraSourceContract } from '../contracts/camera-source.contract.js';

class RecordingSink implements FrameSink {
  frames: Frame[] = [];
  errors: Error[] = [];
  restarting(): void {}
  push(frame: Frame): void {
    this.frames.push(frame);
  }
  whenIdle(): Promise<void> {
    return Promise.resolve();
  }
  captureError(err: Error): void {
    this.errors.push(err);
  }
  end(): void {
    throw new Error('a camera never ends');
  }
}

// What the demo model does: nearest palette colour after ImageNet normalization.
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
function nearestPaletteName(rgb: number[]): string {
  let best = '';
  let bestDistance = Infinity;
  for (const colour of DEMO_PALETTE) {
    const d = [0, 1, 2].reduce((sum, c) => {
      const diff = (rgb[c]! / 255 - MEAN[c]!) / STD[c]! - (colour.rgb[c]! / 255 - MEAN[c]!) / STD[c]!;
      return sum + diff * diff;
    }, 0);
    if (d < bestDistance) [best, bestDistance] = [colour.name, d];
  }
  return best;
}

async function meanRgb(image: Sharp): Promise<number[]> {
  const stats = await image.stats();
  return stats.channels.slice(0, 3).map((c) => c.mean);
}

const sources: SyntheticSource[] = [];
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.stop()));
});

async function capture(config: SyntheticSourceConfig, count: number): Promise<RecordingSink> {
  const sink = new RecordingSink();
  const source = new SyntheticSource({
    camera: 'demo',
    config,
    logger: pino({ level: 'silent' }),
    clock: createSystemClock(),
    sink,
  });
  sources.push(source);
  await source.start();
  const deadline = Date.now() + 15_000;
  while (sink.frames.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await source.stop();
  return sink;
}

cameraSourceContract('synthetic', {
  make: ({ camera, sink }) => new SyntheticSource({ camera, sink, config: { type: 'synthetic', width: 32, height: 24, fps: 50 }, logger: pino({ level: 'silent' }), clock: createSystemClock() }),
  // A frame that cannot be encoded (sharp refuses an empty image): the path an encoder failure takes.
  failing: ({ camera, sink }) => new SyntheticSource({ camera, sink, config: { type: 'synthetic', width: 0, height: 0, fps: 10 }, logger: pino({ level: 'silent' }), clock: createSystemClock() }),
  finite: 'never',
  program: 'in-process',
});

describe('SyntheticSource', () => {
  it('emits JPEGs of the configured size, cycling through the palette', async () => {
    const count = DEMO_PALETTE.length * FRAMES_PER_COLOUR + 1; // one full cycle, and wraps
    const sink = await capture({ type: 'synthetic', width: 160, height: 120, fps: 100 }, count);
    expect(sink.errors).toEqual([]);
    expect(sink.frames.length).toBeGreaterThanOrEqual(count);

    const names: string[] = [];
    for (const frame of sink.frames.slice(0, count)) {
      const meta = await sharp(frame.data).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 160, 120]);
      const name = frame.source.replace(/^synthetic:/, '');
      expect(name).toBe(colourForFrame(frame.seq).name);
      names.push(name);

      // The whole frame, and the centre crop the imagenet preset feeds the model (224/256 of
      // the short side), both classify as the named colour.
      expect(nearestPaletteName(await meanRgb(sharp(frame.data)))).toBe(name);
      const side = Math.round((120 * 224) / 256);
      const crop = sharp(frame.data).extract({ left: (160 - side) >> 1, top: (120 - side) >> 1, width: side, height: side });
      expect(nearestPaletteName(await meanRgb(crop))).toBe(name);
    }
    expect(sink.frames.slice(0, count).map((f) => f.seq)).toEqual([...Array(count).keys()].map((i) => i + 1));
    expect(new Set(names)).toEqual(new Set(DEMO_PALETTE.map((c) => c.name)));
    expect(names[0]).toBe(names[count - 1]); // wrapped around to the first colour
    expect(sink.frames[0]!.camera).toBe('demo');
  });

  it('paints a scene, not a flat fill', async () => {
    const sink = await capture({ type: 'synthetic', width: 64, height: 48, fps: 100 }, 1);
    const stats = await sharp(sink.frames[0]!.data).stats();
    for (const channel of stats.channels.slice(0, 3)) expect(channel.stdev).toBeGreaterThan(5);
  });

  it('paces at fps', async () => {
    const sink = await capture({ type: 'synthetic', width: 32, height: 32, fps: 10 }, 3);
    const times = sink.frames.map((f) => f.capturedAt);
    expect(times[2]! - times[0]!).toBeGreaterThanOrEqual(190);
  });
});
