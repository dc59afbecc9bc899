import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { runCli, startCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/fixtures.js';
import { schemaErrors } from '../helpers/schemas.js';
import { requireShared, sharedPath } from './shared.js';

// The daemon on the real photos with MobileNetV2 against mosquitto: one prediction per image,
// with the same top-1 as `classify`.

describe('daemon on ../shared photos', () => {
  let broker: Mosquitto;

  beforeAll(async () => {
    requireShared();
    broker = await Mosquitto.start();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it('publishes one prediction per photo with the same top-1 as classify', async () => {
    const model = sharedPath('models', 'mobilenetv2-12-int8.onnx');
    const labels = sharedPath('labels', 'synset.txt');
    const photos = sharedPath('images', 'photos');
    const files = readdirSync(photos).filter((f) => !f.startsWith('.')).sort();

    const classify = await runCli(['classify', '--model', model, '--labels', labels, '--providers', 'cpu', '--top-k', '1', photos]);
    expect(classify.code, classify.stderr).toBe(0);
    const expected = new Map(
      classify.stdout.trim().split('\n').map((l) => {
        const j = JSON.parse(l) as { file: string; top: { index: number }[] };
        return [j.file, j.top[0]!.index] as const;
      }),
    );

    const config = join(tempDir(), 'config.yaml');
    writeFileSync(
      config,
      `device_id: demo-01
model:
  path: ${model}
  labels: ${labels}
  preset: imagenet
  execution_providers: [tensorrt, cuda, cpu]
cameras:
  - id: photos
    source: { type: directory, path: ${photos}, fps: 10, loop: false }
mqtt:
  url: ${broker.url}
  base_topic: edge-classifier
publish: { top_k: 5 }
`,
    );
    const sub = await MqttCollector.connect(broker.url, ['edge-classifier/demo-01/photos/prediction']);
    const daemon = startCli(['run', '--config', config]);
    try {
      await sub.waitFor((m) => m.length >= files.length, 120_000, 'one prediction per photo');
      await new Promise((r) => setTimeout(r, 500)); // nothing beyond one per photo arrives
      const preds = sub.messages.map((m) => m.json as { frame: { source: string }; top: { index: number }[]; model: { name: string } });
      expect(preds).toHaveLength(files.length);
      expect(preds.map((p) => p.frame.source)).toEqual(files);
      for (const p of preds) {
        expect(schemaErrors.prediction(p)).toEqual([]);
        expect(p.top).toHaveLength(5);
        expect(p.model.name).toBe('mobilenetv2-12-int8');
        expect(p.top[0]?.index, p.frame.source).toBe(expected.get(p.frame.source));
      }
    } finally {
      daemon.proc.kill('SIGTERM');
      expect((await daemon.finished).code).toBe(0);
      await sub.close();
    }
  });
});
