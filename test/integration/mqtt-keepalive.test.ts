import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { startCli, waitForLog } from '../helpers/cli.js';
import { colourImage, tempDir } from '../helpers/fixtures.js';
import { buildSlowModel } from '../../src/modelgen/test-models.js';
import { demoLabels } from '../../src/modelgen/demo-model.js';

// Keepalives keep flowing while the worker is busy: a model whose runs outlast the MQTT
// keepalive (so only PINGREQs keep the session alive between predictions) must not get the
// daemon disconnected by the broker. Also checks the MQTT v5 properties on predictions.

describe('MQTT keepalive during long inference', () => {
  let broker: Mosquitto;
  let config: string;

  beforeAll(async () => {
    broker = await Mosquitto.start();
    const dir = tempDir();
    // ~6-8 s per run on one thread here (0.33 ms per repeat): longer than the 5 s keepalive.
    writeFileSync(join(dir, 'slow.onnx'), buildSlowModel({ repeats: 20_000 }));
    writeFileSync(join(dir, 'labels.txt'), demoLabels());
    mkdirSync(join(dir, 'img'));
    writeFileSync(join(dir, 'img', 'a.jpg'), await colourImage('red'));
    config = join(dir, 'c.yaml');
    writeFileSync(
      config,
      `device_id: ka\nstate_dir: ${join(dir, 'state')}\nmodel: { path: ${dir}/slow.onnx, labels: ${dir}/labels.txt, execution_providers: [cpu], intra_op_threads: 1 }\n` +
        `cameras:\n  - id: cam\n    source: { type: directory, path: ${dir}/img, fps: 10, loop: true }\n` +
        `mqtt: { url: ${broker.url}, base_topic: ka, keepalive: 5, protocol_version: 5 }\npublish: { expiry: 300 }\nstats_interval: 0\n`,
    );
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('stays connected through inference runs longer than the keepalive', async () => {
    const sub = await MqttCollector.connect(broker.url, ['ka/ka/cam/prediction']);
    const v5 = await connectAsync(broker.url, { protocolVersion: 5, clean: true });
    const props: Record<string, unknown>[] = [];
    v5.on('message', (_t, _p, packet) => props.push({ ...(packet.properties ?? {}) }));
    await v5.subscribeAsync('ka/ka/cam/prediction', { qos: 1 });
    const daemon = startCli(['run', '--config', config]);
    try {
      await waitForLog(daemon, (l) => l.msg === 'MQTT connected', 60_000);
      await sub.waitFor((m) => m.length >= 3, 90_000, 'three predictions, each after a run longer than the keepalive');
      const runs = sub.messages.map((m) => (m.json as { latency_ms: { inference: number } }).latency_ms.inference);
      expect(Math.min(...runs)).toBeGreaterThan(5_000);
      // Never dropped by the broker: one connection, no "offline", nothing in mosquitto's log.
      expect(daemon.logs().filter((l) => l.msg === 'MQTT connected')).toHaveLength(1);
      expect(daemon.logs().some((l) => String(l.msg).startsWith('MQTT offline'))).toBe(false);
      expect(broker.log).not.toMatch(/exceeded timeout|has exceeded/i);
      // MQTT v5: JSON content type, and the expiry left (capture time + 300 s).
      expect(props[0]).toMatchObject({ contentType: 'application/json' });
      expect(Number(props[0]?.messageExpiryInterval)).toBeGreaterThan(250);
      expect(Number(props[0]?.messageExpiryInterval)).toBeLessThanOrEqual(300);
    } finally {
      daemon.proc.kill('SIGTERM');
      await daemon.finished;
      await v5.endAsync(true);
      await sub.close();
    }
  });
});
