import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { identifyModel } from '../inference/model-identity.js';
import { loadLabels } from '../vision/labels.js';
import { resolvePreprocess } from '../vision/presets.js';
import { ExecutionProvider, PresetName } from '../config/schema.js';
import { jpegFrames, rawFrames } from '../bench/frames.js';
import { measureLimit } from '../bench/limit.js';
import { measurePipeline } from '../bench/pipeline-run.js';
import { measureNaive } from '../bench/naive.js';
import { buildReport, formatReport } from '../bench/report.js';
import type { BenchSettings } from '../bench/settings.js';
import { UsageError, type CliContext } from './context.js';

export const BENCH_USAGE = `bench --model FILE [--labels FILE] [--frames N] [--source jpeg|raw] [--threads T]
         [--preset imagenet|caffe-bgr] [--providers tensorrt,cuda,cpu] [--json]
  Measures, in one process: bare inference in the worker (the limit), the daemon's pipeline at
  full rate into an embedded MQTT broker, and a naive main-thread loop. Labels default to "class N".`;

/** Distinct frames cycled through: enough to defeat caches, few enough to generate quickly. */
const DISTINCT_FRAMES = 8;
const WARMUP = 5;

/** `bench ...`: prints a table (or JSON) of throughput, latency, event-loop delay and memory. */
export async function benchCommand(argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      labels: { type: 'string' },
      frames: { type: 'string', default: '100' },
      source: { type: 'string', default: 'jpeg' },
      threads: { type: 'string', default: '0' },
      preset: { type: 'string', default: 'imagenet' },
      providers: { type: 'string', default: 'tensorrt,cuda,cpu' },
      json: { type: 'boolean', default: false },
    },
  });
  if (!values.model || positionals.length > 0) throw new UsageError(BENCH_USAGE);
  const frames = Number(values.frames);
  if (!Number.isInteger(frames) || frames < 1) throw new UsageError(`--frames must be a positive integer, not ${values.frames}`);
  const threads = Number(values.threads);
  if (!Number.isInteger(threads) || threads < 0) throw new UsageError(`--threads must be an integer >= 0, not ${values.threads}`);
  const source = values.source === 'jpeg' || values.source === 'raw' ? values.source : undefined;
  if (!source) throw new UsageError(`--source must be jpeg or raw, not ${values.source}`);
  const preset = PresetName.safeParse(values.preset);
  if (!preset.success) throw new UsageError(`--preset must be imagenet or caffe-bgr, not ${values.preset}`);
  const providers = values.providers.split(',').map((p) => {
    const parsed = ExecutionProvider.safeParse(p.trim());
    if (!parsed.success) throw new UsageError(`--providers: unknown provider ${p}`);
    return parsed.data;
  });

  // A missing or empty model is reported before anything starts ("model file not found: ...").
  const identity = await identifyModel(values.model);
  const sizeBytes = (await stat(values.model)).size;
  const spec = resolvePreprocess(preset.data);
  const size = spec.size;
  const settings: BenchSettings = {
    logger: ctx.logger,
    clock: ctx.clock,
    workerUrl: ctx.workerUrl,
    modelPath: values.model,
    spec,
    providers,
    threads,
    frames,
    warmup: WARMUP,
    source,
    data: source === 'jpeg' ? await jpegFrames(DISTINCT_FRAMES) : rawFrames(DISTINCT_FRAMES, size),
    ...(source === 'raw' ? { raw: { width: size, height: size } } : {}),
  };

  // The limit first: it also tells the output size the default labels must match.
  const limit = await measureLimit(settings);
  const scratch = await mkdtemp(join(tmpdir(), 'edge-classifier-bench-'));
  try {
    let labelsPath = values.labels;
    if (!labelsPath) {
      labelsPath = join(scratch, 'labels.txt');
      await writeFile(labelsPath, Array.from({ length: limit.outputSize }, (_, i) => `class ${i}`).join('\n') + '\n');
    }
    const labels = await loadLabels(labelsPath);
    const pipeline = await measurePipeline(settings, labelsPath);
    const naive = await measureNaive(settings, limit.inputType, labels);
    const report = buildReport({
      model: { path: values.model, sha256: identity.sha256, size_bytes: sizeBytes },
      settings: { frames, source, threads },
      limit,
      pipeline,
      naive,
    });
    ctx.stdout(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return 0;
}
