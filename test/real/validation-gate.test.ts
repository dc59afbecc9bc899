import { beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { publishRelease } from '../../src/updates/release-publish.js';
import { generateKeyPair } from '../../src/updates/signing.js';
import { ModelJsonSchema, type ModelJson } from '../../src/updates/manifest.js';
import { releaseValidationImages, validateModel, type ValidationRequest } from '../../src/updates/validator.js';
import { listInitializers, tamperInitializer } from '../../src/modelgen/onnx-tamper.js';
import { loadLabels } from '../../src/vision/labels.js';
import { createSystemClock } from '../../src/core/clock.js';
import { currentPlatform } from '../../src/updates/platform.js';
import { tempDir } from '../helpers/fixtures.js';
import { requireShared, sharedPath } from './shared.js';

// The device's validation gate on the real models of ../shared, published on this CPU: the good
// model passes, and every control a broken release stands for is refused, each for a stated
// reason. Cross-CPU pairs (a release published here, validated by an arm64 daemon) are in
// test/arm64/update.test.ts; the margins over all CPU pairs in test/bench/validation-margins.ts.

const workerUrl = new URL('../../dist/inference/worker.js', import.meta.url);
const logger = pino({ level: 'silent' });
const clock = createSystemClock();
const MODELS = [
  { file: 'mobilenetv2-12-int8.onnx', preset: 'imagenet', wrongPreset: 'caffe-bgr', swapped: 'bgr', other: 'shufflenet-v2-12-qdq.onnx' },
  { file: 'shufflenet-v2-12-qdq.onnx', preset: 'imagenet', wrongPreset: 'caffe-bgr', swapped: 'bgr', other: 'mobilenetv2-12-int8.onnx' },
  { file: 'squeezenet1.0-fp16.onnx', preset: 'caffe-bgr', wrongPreset: 'imagenet', swapped: 'rgb', other: 'mobilenetv2-12-int8.onnx' },
] as const;

describe(`the validation gate on the real models (published and validated on ${currentPlatform().kernels})`, () => {
  const dir = tempDir('ec-gate-real-');
  let images: string;
  let truth: string;
  let shuffledLabels: string;

  beforeAll(async () => {
    requireShared();
    // Both image sets in one validation folder, with their truth as label names.
    images = join(dir, 'images');
    mkdirSync(images);
    const labels = await loadLabels(sharedPath('labels', 'synset.txt'));
    const lines: string[] = [];
    for (const set of ['photos', 'imagenet-50']) {
      for (const line of readFileSync(sharedPath('images', `${set}.tsv`), 'utf8').split('\n')) {
        if (!line.trim() || line.startsWith('#')) continue;
        const [file, indices] = line.split('\t');
        copyFileSync(sharedPath('images', set, file!), join(images, file!));
        lines.push(`${file}\t${indices!.split(',').map((i) => labels[Number(i)]).join('|')}`);
      }
    }
    expect(readdirSync(images)).toHaveLength(72);
    truth = join(dir, 'truth.tsv');
    writeFileSync(truth, `${lines.join('\n')}\n`);
    // The same 1000 lines in another order (a permutation: every line moves).
    const synset = readFileSync(sharedPath('labels', 'synset.txt'), 'utf8').trim().split('\n');
    shuffledLabels = join(dir, 'shuffled.txt');
    writeFileSync(shuffledLabels, `${synset.map((_, i) => synset[(i * 7919 + 13) % 1000]).join('\n')}\n`);
  });

  for (const m of MODELS) {
    it(`${m.file}: passes as published, refuses every control`, { timeout: 600_000 }, async () => {
      const out = join(dir, m.file);
      const { privateKey } = generateKeyPair();
      await publishRelease(
        { model: sharedPath('models', m.file), labels: sharedPath('labels', 'synset.txt'), preset: m.preset, version: '1.0.0', privateKeyPem: privateKey, out, channel: 'stable', rolloutPercent: 100, expiresInMs: 86_400_000, minDaemonVersion: '0.1.0', rollback: false, validationDir: images, truthFile: truth },
        { logger, clock, workerUrl, stdout: () => undefined, stderr: () => undefined },
      );
      const modelJson: ModelJson = ModelJsonSchema.parse(JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')));
      expect(modelJson.reference?.kernels).toBe(currentPlatform().kernels);
      const request = (extra: Partial<ValidationRequest>): ValidationRequest => ({
        modelPath: join(out, 'model.onnx'),
        labelsPath: join(out, 'labels.txt'),
        modelJson,
        validationImages: releaseValidationImages(out, modelJson),
        providers: ['cpu'],
        thresholds: { min_top1_agreement: 0.8, max_latency_factor: 100 },
        ...extra,
      });
      const validate = async (name: string, extra: Partial<ValidationRequest>): Promise<string[]> => {
        const r = await validateModel({ logger, clock, workerUrl }, request(extra));
        const set = r.sets[0];
        console.log(`${m.file} ${name.padEnd(16)} distance ${set?.meanDistance?.toFixed(3) ?? '-'}  confident top-1 ${set?.matched ?? '-'}/${set?.total ?? '-'}  accuracy ${set?.correct ?? '-'}/${set?.labelled ?? '-'}  ${r.ok ? 'passes' : `refused: ${r.reasons.join('; ')}`}`);
        return r.reasons;
      };

      expect(await validate('as published', {})).toEqual([]);

      const bytes = readFileSync(join(out, 'model.onnx'));
      const convs = listInitializers(bytes).filter((i) => i.raw && i.dims.length === 4 && (i.dims[0] ?? 0) > 1);
      const write = (name: string, data: Uint8Array): string => {
        const p = join(dir, `${m.file}.${name}.onnx`);
        writeFileSync(p, data);
        return p;
      };
      const mid = convs[Math.floor(convs.length / 2)]!.name;
      const controls: [string, Partial<ValidationRequest>, RegExp][] = [
        ['channel order', { modelJson: { ...modelJson, preprocess: { ...modelJson.preprocess, channel_order: m.swapped } } }, /outputs differ|top-1 agreement/],
        ['wrong preset', { modelJson: { ...modelJson, preset: m.wrongPreset } }, /outputs differ/],
        ['negated layer', { modelPath: write('negate-mid', tamperInitializer(bytes, mid, 'negate')) }, /outputs differ/],
        ['zeroed layer', { modelPath: write('zero-mid', tamperInitializer(bytes, mid, 'zero')) }, /outputs differ|top-1 agreement/],
        ['shuffled labels', { labelsPath: shuffledLabels }, /accuracy \d+\/72 on the labelled images .* below the minimum 50%/],
        ['other model', { modelPath: sharedPath('models', m.other) }, /outputs differ|top-1 agreement/],
        ['truncated', { modelPath: write('truncated', bytes.subarray(0, Math.floor(bytes.length / 2))) }, /^cannot load with cpu/],
        // Infinite inputs: the fp16 model's outputs turn NaN; an int8 model's input quantizer
        // saturates them instead, so its outputs stay finite, but wrong.
        ['infinite input', { modelJson: { ...modelJson, preprocess: { ...modelJson.preprocess, scale: 1e308 } } }, m.file.includes('fp16') ? /non-finite outputs/ : /outputs differ/],
      ];
      for (const [name, extra, why] of controls) {
        const reasons = await validate(name, extra);
        expect(reasons.join('\n'), name).toMatch(why);
      }
    });
  }
});
