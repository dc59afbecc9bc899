import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { ModelJsonSchema, describeIssues } from '../../src/updates/manifest.js';
import { PRESETS } from '../../src/vision/presets.js';
import { PreprocessSchema } from '../../src/config/schema.js';

// Preprocessing values that make every model input (and so every output) NaN or Infinity are
// refused where they come in: the config's model.preprocess and a release's model.json.

const config = (preprocess: string): string => `
model: { path: m.onnx, labels: l.txt, preprocess: ${preprocess} }
cameras:
  - id: photos
    source: { type: directory, path: ./photos }
`;

function problems(text: string): string[] {
  try {
    parseConfig(text, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

const modelJson = (preprocess: unknown): unknown => ({
  schema: 1,
  preset: 'imagenet',
  preprocess,
  input: { name: 'input', type: 'float32', shape: [1, 3, 224, 224] },
  output: { classes: 8 },
});

describe('preprocessing bounds', () => {
  it('config: a std of 0 is refused, naming the key path and why', () => {
    const p = problems(config('{ std: [0, 0, 0] }'));
    expect(p).toHaveLength(3);
    expect(p[0]).toMatch(/^model\.preprocess\.std\[0\]: .*at least 0\.001 \(a std of 0 divides by zero/);
    expect(problems(config('{ std: [0.229, 0, 0.225] }'))).toEqual([expect.stringMatching(/^model\.preprocess\.std\[1\]: /)]);
    expect(problems(config('{ std: [-1, 1, 1] }'))[0]).toMatch(/^model\.preprocess\.std\[0\]: /);
  });

  it('config: absurd or non-finite scale, mean and std are refused', () => {
    expect(problems(config('{ scale: 1e308 }'))).toEqual([expect.stringMatching(/^model\.preprocess\.scale: .*at most 1000/)]);
    expect(problems(config('{ scale: 0 }'))).toEqual([expect.stringMatching(/^model\.preprocess\.scale: .*at least 0\.000001/)]);
    expect(problems(config('{ scale: .inf }'))).toEqual([expect.stringMatching(/^model\.preprocess\.scale: /)]);
    expect(problems(config('{ scale: .nan }'))).toEqual([expect.stringMatching(/^model\.preprocess\.scale: /)]);
    expect(problems(config('{ mean: [.inf, 0, 0] }'))).toEqual([expect.stringMatching(/^model\.preprocess\.mean\[0\]: /)]);
    expect(problems(config('{ mean: [1e30, 0, 0] }'))).toEqual([expect.stringMatching(/^model\.preprocess\.mean\[0\]: /)]);
    expect(problems(config('{ std: [1, .nan, 1] }'))).toEqual([expect.stringMatching(/^model\.preprocess\.std\[1\]: /)]);
    expect(problems(config('{ std: [1, 1, 1e9] }'))).toEqual([expect.stringMatching(/^model\.preprocess\.std\[2\]: /)]);
  });

  it('config: real models values pass (torchvision, Caffe, 0-255 inputs, [-1, 1] inputs)', () => {
    for (const p of ['{ scale: 0.00392156862745098 }', '{ scale: 1, mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] }', '{ scale: 0.00784313725490196, mean: [1, 1, 1], std: [1, 1, 1] }']) {
      expect(parseConfig(config(p), 'test.yaml').model.preprocess).toBeDefined();
    }
    for (const preset of Object.values(PRESETS)) expect(PreprocessSchema.safeParse(preset).success).toBe(true);
  });

  it('model.json (releases) refuses the same, naming the key path', () => {
    const zero = ModelJsonSchema.safeParse(modelJson({ std: [0, 0, 0] }));
    expect(zero.success).toBe(false);
    expect(describeIssues(zero.error!)).toMatch(/^preprocess\.std\[0\]: must be at least 0\.001/);
    const huge = ModelJsonSchema.safeParse(modelJson({ scale: 1e308 }));
    expect(huge.success).toBe(false);
    expect(describeIssues(huge.error!)).toMatch(/^preprocess\.scale: must be at most 1000/);
    expect(ModelJsonSchema.safeParse(modelJson({ scale: 1 / 255, std: [0.229, 0.224, 0.225] })).success).toBe(true);
  });
});
