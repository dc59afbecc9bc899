import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { startCli, type Started } from '../helpers/cli.js';
import { colourImage, tempDir } from '../helpers/fixtures.js';
import { slowModelTaking } from '../helpers/slow-model.js';
import { demoLabels } from '../../src/modelgen/demo-model.js';

// Shutdown with a frame in the worker: a slow model (~0.7 s per run on one thread, sized for
// this machine: a fixed size ran 0.8 s on an idle Xeon, several seconds on a slow or busy one)
// makes "in flight" last long enough to signal into it.

describe('graceful shutdown', () => {
  let broker: Mosquitto;
  let config: string;
  let firstPredictionMs: number;

  beforeAll(async () => {
    broker = await Mosquitto.start();
    const dir = tempDir();
    const slow = await slowModelTaking(700);
    // Start-up, then the warm-up run and the first frame's, with room for a busier machine.
    firstPredictionMs = 20_000 + 4 * slow.expectedRunMs;
    writeFileSync(join(dir, 'slow.onnx'), slow.bytes);
    writeFileSync(join(dir, 'labels.txt'), demoLabels());
    const images = join(dir, 'images');
    mkdirSync(images);
    for (const c of ['red', 'green', 'blue']) writeFileSync(join(images, `${c}.jpg`), await colourImage(c));
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `device_id: sd\nmodel: { path: ${dir}/slow.onnx, labels: ${dir}/labels.txt, execution_providers: [cpu], intra_op_threads: 1 }\ncameras:\n  - id: cam\n    source: { type: directory, path: ${images}, fps: 50, loop: true }\nmqtt: { url: ${broker.url}, base_topic: sd }\n`,
    );
  });

  afterAll(async () => {
    await broker?.stop();
  });

  async function startedDaemon(sub: MqttCollector): Promise<Started> {
    const daemon = startCli(['run', '--config', config]);
    // The first prediction means the loop is running; the next frame is then in the worker.
    await sub.waitFor((m) => m.some((x) => x.topic === 'sd/sd/cam/prediction'), firstPredictionMs, 'first prediction');
    return daemon;
  }

  it('SIGTERM finishes the in-flight frame, publishes "stopped" and exits 0', async () => {
    const sub = await MqttCollector.connect(broker.url, ['sd/#']);
    const daemon = await startedDaemon(sub);
    const before = sub.on('sd/sd/cam/prediction').length;
    daemon.proc.kill('SIGTERM');
    const done = await daemon.finished;
    expect(done.code).toBe(0);
    await sub.waitFor((m) => m.some((x) => (x.json as { state?: string }).state === 'stopped'), 5_000, 'stopped');
    // The frame that was in the worker when the signal came was still published.
    expect(sub.on('sd/sd/cam/prediction').length).toBe(before + 1);
    const stopIdx = sub.messages.findIndex((x) => (x.json as { state?: string }).state === 'stopped');
    const lastPred = sub.messages.map((x) => x.topic).lastIndexOf('sd/sd/cam/prediction');
    expect(lastPred).toBeLessThan(stopIdx);
    await sub.close();
  });

  it('a second signal forces exit without waiting', async () => {
    const sub = await MqttCollector.connect(broker.url, ['sd/#']);
    const daemon = await startedDaemon(sub);
    daemon.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 20));
    daemon.proc.kill('SIGTERM');
    const done = await daemon.finished;
    // Killed by the re-raised signal (a shell reports 143), not a crash or a clean exit.
    expect(done.signal).toBe('SIGTERM');
    expect(done.stderr).toMatch(/second SIGTERM/);
    await sub.close();
  });
});
