import { describe, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';
import { freePort, waitForPort } from '../helpers/ports.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { schemaErrors } from '../helpers/schemas.js';

// The README's first command: the daemon on embedded defaults (in-process broker, synthetic
// camera, generated colour model), with no hardware and no download.

describe('demo', () => {
  it('runs end to end: the embedded broker serves real clients and predictions match the scenes', async () => {
    const port = await freePort();
    const demo = startCli(['demo', '--port', String(port), '--fps', '10', '--frames', '12']);
    await waitForPort(port, 30_000);
    const sub = await MqttCollector.connect(`mqtt://127.0.0.1:${port}`, ['edge-classifier/demo/#']);
    const done = await demo.finished;
    await sub.close().catch(() => {});
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/NOT an ImageNet model/);
    const lines = done.stdout.split('\n').filter((l) => l.startsWith('synthetic #'));
    expect(lines).toHaveLength(12);
    for (const l of lines) {
      // "synthetic #   3  synthetic:red      -> red 0.99 ..." : the label is the painted colour.
      const m = /synthetic:(\w+)\s+-> (\w+) /.exec(l);
      expect(m?.[2]).toBe(m?.[1]);
    }
    const preds = sub.messages.filter((m) => m.topic === 'edge-classifier/demo/synthetic/prediction');
    expect(preds.length).toBeGreaterThan(0);
    for (const p of preds) expect(schemaErrors.prediction(p.json)).toEqual([]);
    const status = sub.messages.filter((m) => m.topic === 'edge-classifier/demo/status').map((m) => m.json);
    expect(status[0]).toMatchObject({ state: 'online', execution_provider: 'cpu' });
  });
});
