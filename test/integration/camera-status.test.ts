import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { startCli } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';
import { schemaErrors } from '../helpers/schemas.js';

// Retained per-camera status: a dead camera does not stop the others, a disabled one says so,
// and the retained state survives a broker restart that lost it.

interface CameraStatus {
  camera: string;
  state: string;
  last_error: string | null;
  ended: boolean;
  frames: { captured: number; classified: number };
}

describe('camera status', () => {
  let broker: Mosquitto;
  let config: string;

  beforeAll(async () => {
    broker = await Mosquitto.start();
    const dir = tempDir();
    const { model, labels } = writeColourModel(join(dir, 'm'));
    const images = join(dir, 'images');
    mkdirSync(images);
    writeFileSync(join(images, 'a.jpg'), await colourImage('red'));
    writeFileSync(join(images, 'b.jpg'), await colourImage('blue'));
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `device_id: cs
model: { path: ${model}, labels: ${labels}, execution_providers: [cpu] }
cameras:
  - id: shelf
    source: { type: directory, path: ${images}, fps: 10 }
  - id: unplugged
    source: { type: webcam, device: /dev/video-nope, fps: 2 }
  - id: spare
    enabled: false
    source: { type: synthetic }
  - id: looping
    source: { type: directory, path: ${images}, fps: 4, loop: true }
mqtt: { url: ${broker.url}, base_topic: cs }
`,
    );
  });

  afterAll(async () => {
    await broker?.stop();
  });

  const latest = (sub: MqttCollector, camera: string): CameraStatus | undefined =>
    sub.on(`cs/cs/${camera}/status`).at(-1)?.json as CameraStatus | undefined;

  it('reports each camera on its own retained topic, and republishes after a broker restart', async () => {
    const sub = await MqttCollector.connect(broker.url, ['cs/cs/+/status']);
    const daemon = startCli(['run', '--config', config]);
    try {
      await sub.waitFor(
        () =>
          latest(sub, 'unplugged')?.state === 'offline' &&
          latest(sub, 'spare')?.state === 'disabled' &&
          latest(sub, 'shelf')?.ended === true &&
          latest(sub, 'looping')?.state === 'online',
        30_000,
        'camera states',
      );
      // The dead camera did not stop the others: the replay finished, the loop is classifying.
      expect(latest(sub, 'unplugged')?.last_error).toMatch(/\/dev\/video-nope/);
      expect(latest(sub, 'shelf')).toMatchObject({ state: 'offline', ended: true, last_error: null });
      for (const m of sub.messages) expect(schemaErrors.cameraStatus(m.json), m.topic).toEqual([]);
      await sub.close();
      // A subscriber that arrives later gets the current state of every camera, retained.
      const after = await MqttCollector.connect(broker.url, ['cs/cs/+/status']);
      await after.waitFor((m) => m.length >= 4, 5_000, 'retained camera states');
      expect(after.messages.every((m) => m.retain)).toBe(true);
      expect(new Set(after.messages.map((m) => (m.json as CameraStatus).camera))).toEqual(new Set(['shelf', 'unplugged', 'spare', 'looping']));
      await after.close();

      // mosquitto runs without persistence here: a restart loses every retained message.
      await broker.stop();
      await broker.restart();
      const late = await MqttCollector.connect(broker.url, ['cs/cs/+/status', 'cs/cs/status']);
      await late.waitFor(
        (m) => ['shelf', 'unplugged', 'spare', 'looping'].every((c) => m.some((x) => x.topic === `cs/cs/${c}/status`)) && m.some((x) => x.topic === 'cs/cs/status'),
        30_000,
        'republished retained state',
      );
      expect(latest(late, 'spare')?.state).toBe('disabled');
      expect((late.on('cs/cs/status').at(-1)?.json as { state: string }).state).toBe('online');
      await late.close();
    } finally {
      daemon.proc.kill('SIGTERM');
      expect((await daemon.finished).code).toBe(0);
    }
  });
});
