import sharp from 'sharp';
import type { SyntheticSourceConfig } from '../config/schema.js';
import { DEMO_PALETTE, type PaletteColour } from './palette.js';
import { LoopSource } from './loop-source.js';
import type { SourceDeps } from './frame.js';

/** Consecutive frames showing the same colour, so a viewer sees a stable label for a moment. */
export const FRAMES_PER_COLOUR = 3;
const JPEG_QUALITY = 85;

// Scene parameters, in 0-255 units. Every perturbation is (close to) zero-mean over the frame
// and over the model's centre crop, so the mean colour, which the demo model classifies, stays
// within a few units of the palette colour. The closest palette pair (orange/yellow) is ~70
// units apart in green, so this leaves a wide margin.
const GRADIENT = 24; // top +24 ... bottom -24: "sky" and "ground"
const NOISE = 12; // uniform in [-12, 12]
const DISC_MIX = 0.3; // the disc is the colour mixed 30% towards white (dark colours) or black

/**
 * The demo camera: needs no hardware. Each frame is a JPEG scene dominated by one DEMO_PALETTE
 * colour (cycling through the palette), with a vertical gradient, a moving disc and noise so it
 * exercises decoding and resizing like a photo would, not like a flat fill.
 */
export class SyntheticSource extends LoopSource<SourceDeps<SyntheticSourceConfig>> {
  private seq = 0;
  private pixels: Buffer | undefined;

  protected get label(): string {
    return 'synthetic source';
  }

  protected async run(signal: AbortSignal): Promise<void> {
    const { config, clock, sink, camera } = this.deps;
    const intervalMs = 1000 / config.fps;
    while (!signal.aborted) {
      const startedAt = clock.monotonic();
      const seq = this.seq + 1;
      const colour = colourForFrame(seq);
      const capturedAt = clock.now();
      try {
        const data = await this.render(colour, seq);
        if (signal.aborted) return;
        this.seq = seq;
        sink.push({ camera, seq, capturedAt, source: `synthetic:${colour.name}`, data });
      } catch (err) {
        sink.captureError(new Error(`synthetic frame (${colour.name}) failed to encode: ${(err as Error).message}`, { cause: err }));
      }
      await clock.sleep(startedAt + intervalMs - clock.monotonic(), signal);
    }
  }

  private async render(colour: PaletteColour, seq: number): Promise<Buffer> {
    const { width, height } = this.deps.config;
    // One buffer, refilled every frame: sharp has finished reading it once toBuffer() resolves.
    this.pixels ??= Buffer.allocUnsafe(width * height * 3);
    fillScene(this.pixels, width, height, colour.rgb, seq);
    return sharp(this.pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: JPEG_QUALITY }).toBuffer();
  }

}

/** The palette colour frame `seq` (1-based) shows. */
export function colourForFrame(seq: number): PaletteColour {
  const index = Math.floor((seq - 1) / FRAMES_PER_COLOUR) % DEMO_PALETTE.length;
  return DEMO_PALETTE[index]!;
}

/** Paints one scene into `out` (RGB, row-major); integer maths only, no per-pixel allocation. */
export function fillScene(
  out: Buffer,
  width: number,
  height: number,
  rgb: readonly [number, number, number],
  seq: number,
): void {
  const [r, g, b] = rgb;
  const towards = (r + g + b) / 3 < 128 ? 255 : 0;
  const discR = Math.round(r + (towards - r) * DISC_MIX);
  const discG = Math.round(g + (towards - g) * DISC_MIX);
  const discB = Math.round(b + (towards - b) * DISC_MIX);

  // The disc drifts left to right across frames, vertically centred, fully inside the frame.
  const radius = Math.max(2, Math.floor(Math.min(width, height) / 6));
  const span = Math.max(1, width - 2 * radius);
  const cx = radius + ((seq * 37) % span);
  const cy = Math.floor(height / 2);
  const r2 = radius * radius;

  // xorshift32, seeded per frame: a different but reproducible grain on every frame.
  let state = (seq * 0x9e3779b1) | 0 || 1;
  const noiseSpan = 2 * NOISE + 1;
  const shade = height > 1 ? (2 * GRADIENT) / (height - 1) : 0;

  let i = 0;
  for (let y = 0; y < height; y += 1) {
    const offset = Math.round(GRADIENT - y * shade);
    const dy = y - cy;
    const dy2 = dy * dy;
    for (let x = 0; x < width; x += 1) {
      const dx = x - cx;
      const inDisc = dx * dx + dy2 <= r2;
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      // One random draw shared by the three channels: luminance grain, no colour speckle.
      const n = ((state >>> 0) % noiseSpan) - NOISE + offset;
      out[i] = clamp((inDisc ? discR : r) + n);
      out[i + 1] = clamp((inDisc ? discG : g) + n);
      out[i + 2] = clamp((inDisc ? discB : b) + n);
      i += 3;
    }
  }
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}
