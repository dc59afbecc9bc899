import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigSchema, DEFAULT_HTTP_PORT } from '../config/schema.js';
import type { PredictionPayload } from '../mqtt/payloads.js';
import { colourModel, defaultDemoDir, DEMO_MODELS, resnet50Model, type DemoModel, type DemoModelName } from './demo-models.js';
import { runDaemon } from './run.js';
import { UsageError, parseCliArgs, type CliContext } from './context.js';

export const DEMO_USAGE = `demo [--model colours|resnet50] [--port P] [--http-port P] [--fps 2] [--frames N] [--models-dir DIR]
  Runs the whole daemon with no hardware and no download: an embedded MQTT broker, a
  synthetic camera and a generated model. Prints each prediction; the live
  preview page is at http://127.0.0.1:8089/ (or the next free port).
  --model colours (default): a nearest-colour classifier; its 8 labels mean what they say.
  --model resnet50: the synthetic ResNet50 int8 (a real model's size and speed, generated once
  into --models-dir, default models/demo/); its 1000 labels are meaningless.`;

function availablePort(preferred: number): Promise<number> {
  const tryListen = (port: number): Promise<number | undefined> =>
    new Promise((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(undefined));
      srv.listen(port, '127.0.0.1', () => {
        const bound = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(bound));
      });
    });
  return tryListen(preferred).then((p) => p ?? tryListen(0).then((q) => q ?? preferred));
}

async function demoModel(name: DemoModelName, dir: string | undefined, say: (line: string) => void): Promise<DemoModel> {
  if (name === 'colours') return colourModel(dir ?? defaultDemoDir());
  if (dir) return resnet50Model(dir, say);
  // The install directory may be read-only (/opt): the temporary directory then serves.
  return resnet50Model(defaultDemoDir(), say).catch(() => resnet50Model(join(tmpdir(), 'edge-classifier-demo'), say));
}

const BANNER: Record<DemoModelName, string[]> = {
  colours: [
    'edge-classifier demo: a synthetic camera paints scenes dominated by one colour; the model is a',
    'generated nearest-colour classifier (8 colour labels), NOT an ImageNet model. It shows the',
    'pipeline end to end: camera -> sharp preprocessing -> onnxruntime worker -> MQTT.',
  ],
  resnet50: [
    'edge-classifier demo: a synthetic camera paints scenes dominated by one colour; the model is a',
    'SYNTHETIC ResNet50 v1.5 int8 with seeded random weights: the size and speed of a real one, but',
    'NOT trained, so its 1000 labels ("synthetic class N") and scores are MEANINGLESS. It shows the',
    'pipeline end to end at a realistic load: camera -> sharp -> onnxruntime worker -> MQTT.',
  ],
};

function line(p: PredictionPayload): string {
  const [best, second] = p.top;
  const alt = second ? `  (next: ${second.label} ${second.score.toFixed(2)})` : '';
  return `${p.camera} #${String(p.seq).padStart(4)}  ${p.frame.source.padEnd(18)} -> ${best?.label ?? '?'} ${best?.score.toFixed(2) ?? ''}${alt}  inference ${p.latency_ms.inference.toFixed(2)} ms`;
}

export async function demoCommand(
  argv: string[],
  ctx: CliContext,
  /** SIGTERM, SIGINT or SIGHUP: the demo runs in a terminal and ends with it (no config to reload). */
  shutdown: Promise<string>,
): Promise<number> {
  const { values } = parseCliArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      'http-port': { type: 'string' },
      fps: { type: 'string', default: '2' },
      frames: { type: 'string' },
      model: { type: 'string', default: 'colours' },
      'models-dir': { type: 'string' },
    },
  }, DEMO_USAGE);
  const modelName = DEMO_MODELS.find((m) => m === values.model);
  if (!modelName) throw new UsageError(`--model must be ${DEMO_MODELS.join(' or ')}, not ${values.model}`);
  // 1883 unless taken (a system mosquitto, say): then any free port, announced below.
  const port = values.port !== undefined ? Number(values.port) : await availablePort(1883);
  const httpPort = values['http-port'] !== undefined ? Number(values['http-port']) : await availablePort(DEFAULT_HTTP_PORT);
  const fps = Number(values.fps);
  const frames = values.frames ? Number(values.frames) : undefined;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be a TCP port');
  if (!Number.isInteger(httpPort) || httpPort < 0 || httpPort > 65535) throw new UsageError('--http-port must be a TCP port');
  if (!(fps > 0)) throw new UsageError('--fps must be positive');
  if (frames !== undefined && !(Number.isInteger(frames) && frames > 0)) throw new UsageError('--frames must be a positive integer');

  const dir = values['models-dir'] !== undefined ? resolve(values['models-dir']) : undefined;
  const { modelPath, labelsPath } = await demoModel(modelName, dir, ctx.stdout);
  const config = ConfigSchema.parse({
    device_id: 'demo',
    model: { path: modelPath, labels: labelsPath, preset: 'imagenet', execution_providers: ['cpu'] },
    cameras: [{ id: 'synthetic', source: { type: 'synthetic', fps, width: 640, height: 480 } }],
    mqtt: { url: 'embedded', embedded: { host: '127.0.0.1', port } },
    publish: { top_k: 3 },
    http: { port: httpPort },
    log: { level: 'warn' },
  });
  for (const l of BANNER[modelName]) ctx.stdout(l);
  ctx.stdout(`MQTT: embedded broker on 127.0.0.1:${port}; try: mosquitto_sub -p ${port} -t 'edge-classifier/#' -v`);
  ctx.stdout(`Preview: http://127.0.0.1:${httpPort}/ (the frames and what the model thinks; /metrics, /healthz)`);
  ctx.stdout('Ctrl-C stops it.\n');

  let seen = 0;
  let finish: (reason: string) => void = () => {};
  const done = new Promise<string>((resolve) => (finish = resolve));
  return runDaemon({
    config,
    ctx,
    shutdown,
    done,
    onPrediction: (p) => {
      // Frames already in flight when the count is reached still finish: not printed.
      if (frames !== undefined && seen >= frames) return;
      ctx.stdout(line(p));
      if (frames !== undefined && ++seen >= frames) finish(`--frames ${frames} reached`);
    },
  });
}
