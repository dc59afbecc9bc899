import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { startCli, waitForLog } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';
import { schemaErrors } from '../helpers/schemas.js';
import { until } from '../helpers/sse-client.js';

// Issue 12, point 4, against the real daemon: directory sources holding a symlink to /dev/zero,
// FIFOs (named x.jpg, and a symlink to one) and a 1.5 GB sparse .jpg. Before, these grew the
// daemon to gigabytes, or hung the camera for good while it stayed "online" and /healthz said ok.

interface CameraStatus {
  camera: string;
  state: string;
  last_error: string | null;
  stalls_last_hour: number;
  frames: { captured: number; skipped_files: number };
}
interface Stats {
  cameras: Record<string, { captured: number; classified: number; skipped_files: number }>;
}

const vmRssMiB = (pid: number): number => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

describe('directory sources with hostile files, in the daemon', () => {
  let broker: Mosquitto;
  let dir: string;
  let config: string;

  beforeAll(async () => {
    broker = await Mosquitto.start();
    dir = tempDir('ec-dir-hostile-');
    const { model, labels } = writeColourModel(join(dir, 'm'));
    // mixed: good frames between the bad files; bad: nothing but bad files.
    const mixed = join(dir, 'mixed');
    const bad = join(dir, 'bad');
    mkdirSync(mixed);
    mkdirSync(bad);
    writeFileSync(join(mixed, 'a-good.jpg'), await colourImage('red'));
    symlinkSync('/dev/zero', join(mixed, 'b-zero.jpg'));
    execFileSync('mkfifo', [join(mixed, 'c-fifo.jpg')]);
    symlinkSync(join(mixed, 'c-fifo.jpg'), join(mixed, 'd-fifo-link.jpg'));
    writeFileSync(join(mixed, 'e-sparse.jpg'), '');
    truncateSync(join(mixed, 'e-sparse.jpg'), 1536 * 1024 * 1024);
    writeFileSync(join(mixed, 'f-good.jpg'), await colourImage('blue'));
    symlinkSync('/dev/zero', join(bad, 'zero.jpg'));
    execFileSync('mkfifo', [join(bad, '.fifo')]);
    symlinkSync(join(bad, '.fifo'), join(bad, 'x.jpg'));
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `device_id: dh
model: { path: ${model}, labels: ${labels}, execution_providers: [cpu] }
cameras:
  - id: mixed
    source: { type: directory, path: ${mixed}, fps: 8, loop: true }
  - id: bad
    source: { type: directory, path: ${bad}, fps: 8, loop: true }
mqtt: { url: ${broker.url}, base_topic: dh }
http: { port: 0 }
stats_interval: 1
state_dir: ${join(dir, 'state')}
`,
    );
  });

  afterAll(async () => {
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('skips and counts the bad files, the good ones are classified, memory stays flat, /healthz names the camera that makes no progress, shutdown is prompt', async () => {
    const sub = await MqttCollector.connect(broker.url, ['dh/dh/+/status', 'dh/dh/stats']);
    const daemon = startCli(['run', '--config', config]);
    let peakMiB = 0;
    const sampler = setInterval(() => {
      try {
        peakMiB = Math.max(peakMiB, vmRssMiB(daemon.proc.pid!));
      } catch {
        // exited
      }
    }, 50);
    try {
      const url = String((await waitForLog(daemon, (l) => l.msg === 'HTTP server listening', 30_000)).url);
      const status = (camera: string): CameraStatus | undefined => sub.on(`dh/dh/${camera}/status`).at(-1)?.json as CameraStatus | undefined;
      const stats = (): Stats | undefined => sub.on('dh/dh/stats').at(-1)?.json as Stats | undefined;

      // The mixed camera goes on: at least three passes, each skipping the same four files.
      await until(() => (stats()?.cameras.mixed?.skipped_files ?? 0) >= 12 && (stats()?.cameras.mixed?.classified ?? 0) >= 6, 'three passes over the mixed directory');
      expect(status('mixed')).toMatchObject({ state: 'online', last_error: null, stalls_last_hour: 0 });

      // The bad camera makes no progress, and says so in its retained status...
      await until(() => status('bad')?.state === 'offline' && (status('bad')?.stalls_last_hour ?? 0) >= 1, 'bad camera stalled');
      const why = status('bad')!.last_error!;
      expect(why).toMatch(/^directory source .*\/bad makes no progress: no frame from the 2 image file\(s\) of the last pass \(2 skipped or unreadable, e\.g\. x\.jpg: a FIFO, not a regular file\)$/);
      expect(status('bad')!.frames).toMatchObject({ captured: 0, skipped_files: 2 });
      for (const m of sub.messages) {
        expect(m.topic.endsWith('/stats') ? schemaErrors.stats(m.json) : schemaErrors.cameraStatus(m.json), m.topic).toEqual([]);
      }

      // ... and /healthz names it, while /readyz stays ready on the camera that delivers.
      const health = await fetch(`${url}healthz`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ status: 'failing', why: `camera bad makes no progress: ${why}` });
      const ready = (await (await fetch(`${url}readyz`)).json()) as { ready: boolean; cameras: { online: string[] } };
      expect(ready).toMatchObject({ ready: true, cameras: { online: ['mixed'] } });

      // Each bad file is logged once, not once per pass.
      const skippedLines = daemon.logs().filter((l) => l.msg === 'image file skipped');
      expect(skippedLines.filter((l) => l.camera === 'mixed').map((l) => [l.file, l.reason])).toEqual([
        ['b-zero.jpg', 'a character device, not a regular file'],
        ['c-fifo.jpg', 'a FIFO, not a regular file'],
        ['d-fifo-link.jpg', 'a FIFO, not a regular file'],
        ['e-sparse.jpg', '1536.0 MiB, more than max_file_bytes (32.0 MiB)'],
      ]);

      // The old code read /dev/zero into gigabytes and the sparse file whole (1.6 GB peak).
      console.log(`daemon peak VmRSS with /dev/zero, FIFOs and a 1.5 GB sparse file: ${peakMiB.toFixed(0)} MiB`);
      expect(peakMiB).toBeGreaterThan(0);
      expect(peakMiB).toBeLessThan(600);
    } finally {
      clearInterval(sampler);
      const t0 = performance.now();
      daemon.proc.kill('SIGTERM');
      const done = await daemon.finished;
      expect(done.code, done.stderr).toBe(0);
      expect(performance.now() - t0).toBeLessThan(10_000);
      await sub.close();
    }
  });
});
