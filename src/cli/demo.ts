import { parseArgs } from 'node:util';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigSchema } from '../config/schema.js';
import { writeDemoModel } from '../modelgen/demo-model.js';
import type { PredictionPayload } from '../mqtt/payloads.js';
import { runDaemon } from './run.js';
import { UsageError, type CliContext } from './context.js';

export const DEMO_USAGE = `demo [--port P] [--fps 2] [--frames N]
  Runs the whole daemon with no hardware and no download: an embedded MQTT broker, a
  synthetic camera and a generated colour-classifier model. Prints each prediction.`;

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

async function demoModelDir(): Promise<{ modelPath: string; labelsPath: string }> {
  const inRepo = fileURLToPath(new URL('../../models/demo/', import.meta.url));
  // The install directory may be read-only (/opt); the model is small, so tmp is fine too.
  return writeDemoModel(inRepo).catch(() => writeDemoModel(join(tmpdir(), 'edge-classifier-demo')));
}

function line(p: PredictionPayload): string {
  const [best, second] = p.top;
  const alt = second ? `  (next: ${second.label} ${second.score.toFixed(2)})` : '';
  return `${p.camera} #${String(p.seq).padStart(4)}  ${p.frame.source.padEnd(18)} -> ${best?.label ?? '?'} ${best?.score.toFixed(2) ?? ''}${alt}  inference ${p.latency_ms.inference.toFixed(2)} ms`;
}

export async function demoCommand(argv: string[], ctx: CliContext, shutdown: Promise<string>): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { port: { type: 'string' }, fps: { type: 'string', default: '2' }, frames: { type: 'string' } },
  });
  // 1883 unless taken (a system mosquitto, say): then any free port, announced below.
  const port = values.port !== undefined ? Number(values.port) : await availablePort(1883);
  const fps = Number(values.fps);
  const frames = values.frames ? Number(values.frames) : undefined;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be a TCP port');
  if (!(fps > 0)) throw new UsageError('--fps must be positive');
  if (frames !== undefined && !(Number.isInteger(frames) && frames > 0)) throw new UsageError('--frames must be a positive integer');

  const { modelPath, labelsPath } = await demoModelDir();
  const config = ConfigSchema.parse({
    device_id: 'demo',
    model: { path: modelPath, labels: labelsPath, preset: 'imagenet', execution_providers: ['cpu'] },
    cameras: [{ id: 'synthetic', source: { type: 'synthetic', fps, width: 640, height: 480 } }],
    mqtt: { url: 'embedded', embedded: { host: '127.0.0.1', port } },
    publish: { top_k: 3 },
    log: { level: 'warn' },
  });
  ctx.stdout('edge-classifier demo: a synthetic camera paints scenes dominated by one colour; the model is a');
  ctx.stdout('generated nearest-colour classifier (8 colour labels), NOT an ImageNet model. It shows the');
  ctx.stdout('pipeline end to end: camera -> sharp preprocessing -> onnxruntime worker -> MQTT.');
  ctx.stdout(`MQTT: embedded broker on 127.0.0.1:${port}; try: mosquitto_sub -p ${port} -t 'edge-classifier/#' -v`);
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
      ctx.stdout(line(p));
      if (frames !== undefined && ++seen >= frames) finish(`--frames ${frames} reached`);
    },
  });
}
