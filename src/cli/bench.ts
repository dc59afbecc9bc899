import { access, constants, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { identifyModel } from '../inference/model-identity.js';
import { loadLabels } from '../vision/labels.js';
import { resolvePreprocess } from '../vision/presets.js';
import { ExecutionProvider, ModelSchema, PresetName } from '../config/schema.js';
import { jpegFrames, rawFrames } from '../bench/frames.js';
import { measureLimit } from '../bench/limit.js';
import { measurePipeline } from '../bench/pipeline-run.js';
import { measureNaive } from '../bench/naive.js';
import { measureColdStart } from '../bench/cold-start.js';
import { intraOpThreadsFor } from '../inference/threads.js';
import { buildReport, chartInput, formatReport, type ReportInput } from '../bench/report.js';
import { renderLatencyChart } from '../bench/chart.js';
import type { BenchSettings } from '../bench/settings.js';
import { UsageError, parseCliArgs, type CliContext } from './context.js';

export const BENCH_USAGE = `bench --model FILE [--labels FILE] [--frames N] [--source jpeg|raw] [--threads T] [--spinning on|off] [--rate FPS]
         [--preset imagenet|caffe-bgr] [--providers tensorrt,cuda,cpu] [--json] [--chart FILE.svg]
  Measures, in one process: bare inference in the worker (the limit), the daemon's pipeline at
  full rate into an embedded MQTT broker, and a naive main-thread loop; then the start-up of a
  fresh daemon process to its first prediction. Labels default to "class N".
  --threads and --spinning default to the daemon's model.intra_op_threads and model.intra_op_spinning.
  --rate paces the pipeline's source like a camera (latency and CPU below the limit); default: full rate.
  --chart writes an SVG of every frame's latency over time.`;

/** The daemon's model settings when the config leaves them out: the bench measures those. */
const DAEMON_MODEL = ModelSchema.parse({});

/** bin/edge-classifier, from dist/cli/bench.js: the start-up phase starts a fresh daemon with it. */
const CLI_ENTRY = new URL('../../bin/edge-classifier', import.meta.url);

/** Distinct frames cycled through: enough to defeat caches, few enough to generate quickly. */
const DISTINCT_FRAMES = 8;
const WARMUP = 5;

/** `bench ...`: prints a table (or JSON) of throughput, latency, event-loop delay and memory. */
export async function benchCommand(argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCliArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      labels: { type: 'string' },
      frames: { type: 'string', default: '100' },
      source: { type: 'string', default: 'jpeg' },
      threads: { type: 'string', default: String(DAEMON_MODEL.intra_op_threads) },
      spinning: { type: 'string', default: DAEMON_MODEL.intra_op_spinning ? 'on' : 'off' },
      preset: { type: 'string', default: 'imagenet' },
      providers: { type: 'string', default: 'tensorrt,cuda,cpu' },
      json: { type: 'boolean', default: false },
      chart: { type: 'string' },
      rate: { type: 'string', default: '0' },
    },
  }, BENCH_USAGE);
  if (!values.model || positionals.length > 0) throw new UsageError(BENCH_USAGE);
  const frames = Number(values.frames);
  if (!Number.isInteger(frames) || frames < 1) throw new UsageError(`--frames must be a positive integer, not ${values.frames}`);
  const threads = Number(values.threads);
  if (!Number.isInteger(threads) || threads < 0) throw new UsageError(`--threads must be an integer >= 0, not ${values.threads}`);
  const rate = Number(values.rate);
  if (!(Number.isFinite(rate) && rate >= 0)) throw new UsageError(`--rate must be a number of frames per second >= 0, not ${values.rate}`);
  if (values.spinning !== 'on' && values.spinning !== 'off') throw new UsageError(`--spinning must be on or off, not ${values.spinning}`);
  const spinning = values.spinning === 'on';
  const source = values.source === 'jpeg' || values.source === 'raw' ? values.source : undefined;
  if (!source) throw new UsageError(`--source must be jpeg or raw, not ${values.source}`);
  const preset = PresetName.safeParse(values.preset);
  if (!preset.success) throw new UsageError(`--preset must be imagenet or caffe-bgr, not ${values.preset}`);
  const providers = values.providers.split(',').map((p) => {
    const parsed = ExecutionProvider.safeParse(p.trim());
    if (!parsed.success) throw new UsageError(`--providers: unknown provider ${p}`);
    return parsed.data;
  });

  // A chart that could not be written at the end would waste the run: check its folder now.
  if (values.chart) await checkWritableDir(dirname(resolve(values.chart)), '--chart');
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
    spinning,
    frames,
    rate,
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
    const daemon = await measureColdStart({ settings, cliEntry: CLI_ENTRY, scratch, labelsPath, preset: preset.data });
    const input: ReportInput = {
      model: { path: values.model, sha256: identity.sha256, size_bytes: sizeBytes },
      settings: { frames, source, threads, threads_used: intraOpThreadsFor(threads), spinning, rate },
      limit,
      pipeline,
      naive,
      daemon,
    };
    const report = buildReport(input);
    // The figures first: a chart that cannot be written must not lose them.
    ctx.stdout(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
    if (values.chart) await writeFile(values.chart, renderLatencyChart(chartInput(report, input)));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return 0;
}

async function checkWritableDir(dir: string, option: string): Promise<void> {
  try {
    await access(dir, constants.W_OK);
  } catch (err) {
    throw new UsageError(`${option}: cannot write to ${dir} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}
