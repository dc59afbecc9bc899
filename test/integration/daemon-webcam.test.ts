import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { startCli } from '../helpers/cli.js';
import { tempDir, writeColourModel } from '../helpers/fixtures.js';
import { schemaErrors } from '../helpers/schemas.js';
import { ownedProcesses } from '../helpers/leftovers.js';

// The webcam source end to end with the real fswebcam binary and its built-in test image
// (`--device TEST`): no camera hardware, but the same program and flags a USB camera uses.

/** This test's fswebcam processes (another test run on the machine may have its own). */
function fswebcamPids(): number[] {
  return ownedProcesses().filter((p) => (p.argv[0] ?? '').split('/').pop() === 'fswebcam').map((p) => p.pid);
}

describe('daemon with a webcam source (fswebcam TEST)', () => {
  let broker: Mosquitto;
  let config: string;

  beforeAll(async () => {
    broker = await Mosquitto.start();
    const dir = tempDir();
    const { model, labels } = writeColourModel(join(dir, 'm'));
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `device_id: cam-01\nmodel: { path: ${model}, labels: ${labels}, execution_providers: [cpu] }\ncameras:\n  - id: usb\n    source: { type: webcam, device: TEST, width: 320, height: 240, fps: 4 }\nmqtt: { url: ${broker.url}, base_topic: wc }\n`,
    );
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('classifies fswebcam frames, publishes them, and leaves no fswebcam behind', async () => {
    const sub = await MqttCollector.connect(broker.url, ['wc/cam-01/usb/prediction']);
    const daemon = startCli(['run', '--config', config]);
    try {
      await sub.waitFor((m) => m.length >= 3, 30_000, 'webcam predictions');
      const preds = sub.messages.map((m) => m.json as { seq: number; frame: { source: string; width: number; height: number } });
      for (const p of preds) {
        expect(schemaErrors.prediction(p)).toEqual([]);
        expect(p.frame).toEqual({ source: 'TEST', width: 320, height: 240 });
      }
      expect(preds.map((p) => p.seq)).toEqual([...preds.keys()].map((i) => i + 1));
    } finally {
      daemon.proc.kill('SIGTERM');
      const done = await daemon.finished;
      await sub.close();
      expect(done.code).toBe(0);
    }
    expect(fswebcamPids()).toEqual([]);
  });
});
