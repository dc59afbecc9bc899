import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Classifier } from '../inference/classifier.js';
import { resolvePreprocess } from '../vision/presets.js';
import { PresetName, ExecutionProvider } from '../config/schema.js';
import type { PreparedTensor } from '../vision/preprocess.js';
import { UsageError, parseCliArgs, type CliContext } from './context.js';
import { expandImagePaths } from '../vision/image-files.js';
import { parsePreprocess } from './preprocess-option.js';

export const CLASSIFY_USAGE = `classify --model FILE --labels FILE [--preset imagenet|caffe-bgr] [--preprocess JSON] [--top-k N]
         [--providers tensorrt,cuda,cpu] [--threads N] PATH...
  Prints one JSON line per image: {"file","top":[{"index","label","score"}],"inference_ms"}.`;

/** Classifies image files/directories and prints one JSON line each. Returns the exit status. */
export async function classifyCommand(argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCliArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      labels: { type: 'string' },
      preset: { type: 'string', default: 'imagenet' },
      preprocess: { type: 'string' },
      'top-k': { type: 'string', default: '5' },
      providers: { type: 'string', default: 'tensorrt,cuda,cpu' },
      threads: { type: 'string', default: '0' },
    },
  }, CLASSIFY_USAGE);
  if (!values.model || !values.labels || positionals.length === 0) throw new UsageError(CLASSIFY_USAGE);
  const preset = PresetName.safeParse(values.preset);
  if (!preset.success) throw new UsageError(`--preset must be imagenet or caffe-bgr, not ${values.preset}`);
  const k = Number(values['top-k']);
  if (!Number.isInteger(k) || k < 1) throw new UsageError('--top-k must be a positive integer');
  const providers = values.providers.split(',').map((p) => ExecutionProvider.parse(p.trim()));
  const files = await expandImagePaths(positionals);

  const classifier = new Classifier({
    logger: ctx.logger,
    clock: ctx.clock,
    workerUrl: ctx.workerUrl,
    config: {
      modelPath: values.model,
      labelsPath: values.labels,
      preprocess: resolvePreprocess(preset.data, parsePreprocess(values.preprocess)),
      output: 'auto',
      providers,
      intraOpThreads: Number(values.threads) || 0,
      deviceId: 0,
    },
  });
  await classifier.start();
  let failed = 0;
  try {
    // Decode the next image while the current one is in the worker.
    const prepare = (file: string): Promise<PreparedTensor> => readFile(file).then((b) => classifier.prepare(b));
    let next = files[0] ? prepare(files[0]).catch((e: unknown) => e as Error) : undefined;
    for (let i = 0; i < files.length; i++) {
      const file = files[i]!;
      const current = await next;
      next = files[i + 1] ? prepare(files[i + 1]!).catch((e: unknown) => e as Error) : undefined;
      try {
        if (current instanceof Error || current === undefined) throw current ?? new Error('nothing prepared');
        const { top, inferenceMs } = await classifier.classify(current, k);
        ctx.stdout(JSON.stringify({ file: basename(file), top, inference_ms: Math.round(inferenceMs * 100) / 100 }));
      } catch (err) {
        failed++;
        ctx.stdout(JSON.stringify({ file: basename(file), error: (err as Error).message }));
      }
    }
  } finally {
    await classifier.stop();
  }
  return failed > 0 ? 1 : 0;
}
