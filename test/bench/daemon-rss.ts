/**
 * Benchmark: the real daemon's memory over a long run (the "RSS growth over 10,000
 * frames"). Starts `edge-classifier run` (built: `npm run build` first) with one synthetic
 * 640x480 camera against a broker started here, counts its predictions over MQTT, and samples
 * VmRSS from /proc/PID/status every 2 s until FRAMES predictions have arrived.
 *
 *   npx vite-node test/bench/daemon-rss.ts -- --model /tmp/r50-int8.onnx [--frames 10000] [--fps 60]
 *   MALLOC_ARENA_MAX=2 npx vite-node test/bench/daemon-rss.ts -- --model ...   (the daemon inherits it)
 *
 * Not a test (vitest never picks it up); Linux only (/proc). Prints a line every 30 s and the
 * summary: RSS medians of the first and last tenth of the samples, from frame 1,000 on, and the
 * peak. See docs/performance.md#memory.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from 'mqtt';
import { EmbeddedBroker } from '../../src/mqtt/embedded-broker.js';
import { createLogger } from '../../src/core/logger.js';

const { values } = parseArgs({
  options: { model: { type: 'string' }, frames: { type: 'string', default: '10000' }, fps: { type: 'string', default: '60' } },
});
if (!values.model) throw new Error('--model FILE is required');
const frames = Number(values.frames);
const bin = fileURLToPath(new URL('../../bin/edge-classifier', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ec-daemon-rss-'));

const broker = new EmbeddedBroker({ logger: createLogger({ level: 'warn' }), config: { host: '127.0.0.1', port: 0 } });
await broker.start();
const client = connect(broker.url, { reconnectPeriod: 0 });
await new Promise<void>((resolve, reject) => {
  client.once('connect', () => resolve());
  client.once('error', reject);
});
await client.subscribeAsync('#');
let predictions = 0;
client.on('message', (topic) => {
  if (topic.endsWith('/prediction')) predictions++;
});

writeFileSync(join(dir, 'labels.txt'), Array.from({ length: 1000 }, (_, i) => `class ${i}`).join('\n') + '\n');
writeFileSync(
  join(dir, 'config.json'),
  JSON.stringify({
    device_id: 'rss',
    model: { path: values.model, labels: join(dir, 'labels.txt'), execution_providers: ['cpu'] },
    cameras: [{ id: 'cam', source: { type: 'synthetic', width: 640, height: 480, fps: Number(values.fps) } }],
    mqtt: { url: broker.url, protocol_version: 4 },
    http: { enabled: false },
    state_dir: join(dir, 'state'),
    log: { level: 'warn' },
  }),
);
const child = spawn(process.execPath, [bin, 'run', '--config', join(dir, 'config.json')], { stdio: ['ignore', 'inherit', 'inherit'] });
const started = performance.now();
const samples: { s: number; frames: number; mb: number }[] = [];
console.log(`load ${loadavg()[0]!.toFixed(2)}; MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? '(unset)'}`);
console.log('seconds\tpredictions\tRSS MB');
while (predictions < frames && child.exitCode === null) {
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const kb = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) break;
  samples.push({ s: (performance.now() - started) / 1000, frames: predictions, mb: Number(kb) / 1024 });
  if (samples.length % 15 === 0) console.log(`${samples.at(-1)!.s.toFixed(0)}\t${predictions}\t${samples.at(-1)!.mb.toFixed(1)}`);
}
child.kill('SIGTERM');
const median = (xs: number[]): number => xs.slice().sort((a, b) => a - b)[xs.length >> 1] ?? 0;
const mb = samples.map((x) => x.mb);
const tenth = Math.max(1, Math.floor(mb.length / 10));
const after1000 = samples.filter((x) => x.frames >= 1000).map((x) => x.mb);
console.log(
  `${predictions} predictions in ${samples.at(-1)?.s.toFixed(0) ?? 0} s, load ${loadavg()[0]!.toFixed(2)}: RSS first tenth ${median(mb.slice(0, tenth)).toFixed(1)} MB, ` +
    `last tenth ${median(mb.slice(-tenth)).toFixed(1)} MB, from frame 1,000 ${median(after1000.slice(0, tenth)).toFixed(1)} MB, peak ${Math.max(...mb).toFixed(1)} MB`,
);
await client.endAsync();
await broker.stop();
