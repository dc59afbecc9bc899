import type { PreprocessSpec, PresetName } from '../config/schema.js';

/**
 * Preprocessing that reproduces each model family's reference accuracy (see ../shared/README.md):
 * resize the short side, center crop, then per-channel (x * scale - mean) / std.
 */
export const PRESETS: Record<PresetName, PreprocessSpec> = {
  // torchvision / ONNX Model Zoo classifiers (MobileNet, ResNet, ShuffleNet, ...).
  imagenet: {
    size: 224,
    resize: 256,
    scale: 1 / 255,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    channel_order: 'rgb',
    layout: 'nchw',
    kernel: 'lanczos3',
  },
  // Caffe/Caffe2 models (SqueezeNet 1.0 from the zoo): BGR, 0-255, mean subtracted, no std.
  'caffe-bgr': {
    size: 224,
    resize: 256,
    scale: 1,
    mean: [103.94, 116.78, 123.68],
    std: [1, 1, 1],
    channel_order: 'bgr',
    layout: 'nchw',
    kernel: 'lanczos3',
  },
};

export function resolvePreprocess(preset: PresetName, overrides?: Partial<PreprocessSpec>): PreprocessSpec {
  const spec = { ...PRESETS[preset], ...(overrides ?? {}) };
  if (spec.resize < spec.size) {
    throw new Error(`preprocess.resize (${spec.resize}) must be at least preprocess.size (${spec.size})`);
  }
  return spec;
}
