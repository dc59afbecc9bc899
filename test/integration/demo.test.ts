import { describe, expect, it } from 'vitest';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/fixtures.js';
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

  it('--model resnet50: generates the synthetic ResNet50 once, reuses it, and says its labels are meaningless', async () => {
    const dir = tempDir('ec-demo-models-');
    const args = ['demo', '--model', 'resnet50', '--models-dir', dir, '--fps', '20', '--frames', '3'];
    // The first run generates the model (~10 s on the 2-core VM when idle, 3x that under load).
    const first = await startCli([...args, '--port', String(await freePort())]).finished;
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/Generating the synthetic ResNet50 int8 once/);
    expect(first.stdout).toMatch(/MEANINGLESS/);
    const model = readdirSync(dir).find((f) => /^resnet50-int8-seed1-v\d+\.onnx$/.test(f));
    expect(model).toBeDefined();
    // Nothing half-written is left behind.
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const written = statSync(join(dir, model!));
    const lines = (out: string): string[] => out.split('\n').filter((l) => l.startsWith('synthetic #'));
    expect(lines(first.stdout)).toHaveLength(3);
    for (const l of lines(first.stdout)) expect(l).toMatch(/-> synthetic class \d+ /);

    const second = await startCli([...args, '--port', String(await freePort())]).finished;
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/Using the synthetic ResNet50 generated earlier/);
    expect(second.stdout).not.toMatch(/Generating/);
    expect(statSync(join(dir, model!)).mtimeMs).toBe(written.mtimeMs);
    expect(lines(second.stdout)).toHaveLength(3);
  }, 180_000);

  it('rejects an unknown model with a usage error', async () => {
    const r = await startCli(['demo', '--model', 'vgg16', '--port', String(await freePort())]).finished;
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('--model must be colours or resnet50');
  });
});
