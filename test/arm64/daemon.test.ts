import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { tempDir } from '../helpers/fixtures.js';
import { schemaErrors } from '../helpers/schemas.js';
import { classifyArgs, requireShared, sharedPath } from '../real/shared.js';
import { arm64Command, assertEmulationWorks, failure, killAllArm64, runArm64, startArm64 } from './emulator.js';

// The arm64 daemon (Pi 4 under qemu) end to end: a real mosquitto on the host, a directory
// camera of the shared photos, MobileNetV2 int8. One prediction per photo, each with the same
// top-1 as the arm64 `classify` gives (the same CPU, so the same kernels: exact), then SIGTERM:
// exit 0 and a retained `stopped` status. The config is a Pi user's: [tensorrt, cuda, cpu]
// falls back to the CPU provider on arm64. shutdown_timeout_ms is raised because everything is
// 10-100x slower under emulation; no timing is asserted.

interface Prediction {
  camera: string;
  seq: number;
  frame: { source: string };
  top: { index: number; label: string; score: number }[];
  model: { name: string };
  latency_ms: { inference: number; total: number };
}

describe('arm64 (Pi 4 under qemu): the daemon on ../shared photos over MQTT', () => {
  let broker: Mosquitto | undefined;
  const cleanup: string[] = [];

  beforeAll(async () => {
    requireShared();
    await assertEmulationWorks();
    broker = await Mosquitto.start();
  });
  afterAll(async () => {
    await killAllArm64();
    await broker?.stop();
    for (const d of cleanup) rmSync(d, { recursive: true, force: true });
  });

  it('publishes one prediction per photo with the same top-1 as arm64 classify, and stops cleanly on SIGTERM', async () => {
    const model = sharedPath('models', 'mobilenetv2-12-int8.onnx');
    const labels = sharedPath('labels', 'synset.txt');
    const photos = sharedPath('images', 'photos');
    const files = readdirSync(photos).filter((f) => !f.startsWith('.')).sort();

    const c = await runArm64(arm64Command(classifyArgs('mobilenetv2-12-int8.onnx', 'imagenet', 'photos', 1)), { timeoutMs: 600_000 });
    if (c.code !== 0) throw new Error(failure('arm64 classify', c));
    const expected = new Map(
      c.stdout.trim().split('\n').map((l) => {
        const j = JSON.parse(l) as { file: string; top: { index: number }[] };
        return [j.file, j.top[0]!.index] as const;
      }),
    );
    expect(expected.size).toBe(files.length);
    console.log(`arm64 classify of ${files.length} photos: ${(c.wallMs / 1000).toFixed(1)} s under emulation (means nothing)`);

    const dir = tempDir('ec-arm64-');
    cleanup.push(dir);
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `device_id: pi4-01
state_dir: ${join(dir, 'state')}
shutdown_timeout_ms: 60000
model:
  path: ${model}
  labels: ${labels}
  preset: imagenet
  execution_providers: [tensorrt, cuda, cpu]
cameras:
  - id: photos
    source: { type: directory, path: ${photos}, fps: 10, loop: false }
mqtt:
  url: ${broker!.url}
  base_topic: edge-classifier
publish: { top_k: 5 }
`,
    );
    const base = 'edge-classifier/pi4-01';
    const sub = await MqttCollector.connect(broker!.url, [`${base}/photos/prediction`, `${base}/status`]);
    const t0 = performance.now();
    const daemon = startArm64(arm64Command(['run', '--config', config]));
    let stopped = false;
    try {
      const died = daemon.finished.then((f) => {
        if (!stopped) throw new Error(failure('the arm64 daemon exited before it was stopped', f));
      });
      died.catch(() => undefined); // seen by the race below; later, a stop is expected
      await Promise.race([sub.waitFor((m) => m.filter((x) => x.topic.endsWith('/prediction')).length >= files.length, 600_000, 'one prediction per photo'), died]);
      const wallS = (performance.now() - t0) / 1000;
      await new Promise((r) => setTimeout(r, 2000)); // nothing beyond one per photo arrives
      const preds = sub.on(`${base}/photos/prediction`).map((m) => m.json as Prediction);
      expect(preds).toHaveLength(files.length);
      expect(preds.map((p) => p.frame.source)).toEqual(files);
      for (const p of preds) {
        expect(schemaErrors.prediction(p)).toEqual([]);
        expect(p.top).toHaveLength(5);
        expect(p.model.name).toBe('mobilenetv2-12-int8');
        expect(p.top[0]?.index, p.frame.source).toBe(expected.get(p.frame.source));
      }
      const online = sub.on(`${base}/status`).map((m) => m.json as { state: string; execution_provider?: string | null });
      expect(online.some((s) => s.state === 'online')).toBe(true);
      const inf = preds.map((p) => p.latency_ms.inference).sort((a, b) => a - b);
      console.log(
        `arm64 daemon: ${preds.length} predictions over MQTT, top-1 identical to arm64 classify; start to last prediction ${wallS.toFixed(1)} s, ` +
          `inference median ${inf[inf.length >> 1]?.toFixed(0)} ms, provider ${online.at(-1)?.execution_provider ?? '?'} (under emulation: means nothing)`,
      );

      stopped = true;
      const f = await daemon.stop(90_000);
      expect(f.code, failure('arm64 daemon exit after SIGTERM', f)).toBe(0);
      await sub.waitFor((m) => m.some((x) => x.topic === `${base}/status` && (x.json as { state?: string }).state === 'stopped'), 10_000, 'retained stopped status');
      const last = sub.on(`${base}/status`).at(-1)!;
      expect(schemaErrors.status(last.json)).toEqual([]);
      expect((last.json as { state: string }).state).toBe('stopped');
    } finally {
      stopped = true;
      await daemon.stop(30_000);
      await sub.close();
    }
  });
});
