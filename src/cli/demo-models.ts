import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDemoModel } from '../modelgen/demo-model.js';
import { resnet50Labels, synthesizeResnet50, SYNTH_VERSION } from '../modelgen/synth.js';

/** The demo's models: the nearest-colour classifier (labels that mean something) or the synthetic ResNet50. */
export type DemoModelName = 'colours' | 'resnet50';
export const DEMO_MODELS: readonly DemoModelName[] = ['colours', 'resnet50'];

export interface DemoModel {
  modelPath: string;
  labelsPath: string;
}

/** models/demo/ in the checkout (gitignored). */
export function defaultDemoDir(): string {
  return fileURLToPath(new URL('../../models/demo/', import.meta.url));
}

/**
 * The colour model is rewritten every time (it takes milliseconds). The install directory may be
 * read-only (/opt): then the temporary directory serves.
 */
export function colourModel(dir: string): Promise<DemoModel> {
  return writeDemoModel(dir).catch(() => writeDemoModel(join(tmpdir(), 'edge-classifier-demo')));
}

/**
 * The synthetic ResNet50 int8 (seed 1) takes seconds to generate (~10 s on a 2-core x86 VM, more
 * on a Pi), so it is generated once and reused. The file name carries the generator's version:
 * a newer generator makes a new file rather than reuse a stale one. Write-then-rename, so an
 * interrupted generation never leaves a file that looks complete.
 */
export async function resnet50Model(dir: string, say: (line: string) => void): Promise<DemoModel> {
  const modelPath = join(dir, `resnet50-int8-seed1-v${SYNTH_VERSION}.onnx`);
  const labelsPath = join(dir, 'resnet50.labels.txt');
  const size = await stat(modelPath).then((s) => s.size, () => 0);
  if (size > 0) {
    say(`Using the synthetic ResNet50 generated earlier: ${modelPath}`);
  } else {
    say(`Generating the synthetic ResNet50 int8 once (about 10 s; 20-40 s on a Raspberry Pi) into ${modelPath} ...`);
    const started = performance.now();
    await mkdir(dir, { recursive: true });
    const bytes = await synthesizeResnet50({ precision: 'int8', seed: 1 });
    const tmp = `${modelPath}.${process.pid}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, modelPath);
    say(`... done in ${((performance.now() - started) / 1000).toFixed(1)} s (${(bytes.length / 1e6).toFixed(1)} MB).`);
  }
  await writeFile(labelsPath, resnet50Labels());
  return { modelPath, labelsPath };
}
