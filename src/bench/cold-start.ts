import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect as mqttConnect } from 'mqtt';
import { EmbeddedBroker } from '../mqtt/embedded-broker.js';
import type { BenchSettings } from './settings.js';
import { percentile } from './stats.js';

export interface ColdStartDeps {
  settings: BenchSettings;
  /** The CLI entry (bin/edge-classifier), started as a fresh `run` process. */
  cliEntry: URL;
  /** For the config file and the daemon's state directory. */
  scratch: string;
  labelsPath: string;
  /** The preset the bench preprocesses with. */
  preset: string;
}

/** A synthetic camera faster than any CPU model here: the first frame is never the wait. */
const CAMERA_FPS = 30;
const TIMEOUT_MS = 120_000;
/** How long the daemon's memory is watched after its first prediction. */
const RSS_WINDOW_MS = 3_000;
const RSS_INTERVAL_MS = 100;

export interface ColdStartResult {
  /** Spawn -> first prediction received. */
  startup_ms: number;
  /**
   * The daemon process's resident memory (main thread, inference worker, onnxruntime, camera)
   * over the few seconds after its first prediction, one camera at 30 fps; null where
   * /proc/PID/status cannot be read (not Linux).
   */
  rss_mb: { peak: number; steady: number } | null;
}

/**
 * The start-up figure: from spawning a fresh `edge-classifier run` (node's own start,
 * module loading, config, broker connection, model load and warm-up, the first frame) to its
 * first prediction arriving at an MQTT subscriber. The daemon publishes to a broker started
 * here, subscribed to before the spawn, so no prediction can slip by unseen. Then the real
 * daemon's memory with one camera, which the bench's own RSS (three phases, two sessions in one
 * process) overstates.
 */
export async function measureColdStart(deps: ColdStartDeps): Promise<ColdStartResult> {
  const s = deps.settings;
  const broker = new EmbeddedBroker({ logger: s.logger.child({ module: 'bench-cold-broker' }), config: { host: '127.0.0.1', port: 0 } });
  await broker.start();
  const client = mqttConnect(broker.url, { reconnectPeriod: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    // Everything: the topic prefix is the daemon's default, whatever that is.
    await client.subscribeAsync('#', { qos: 0 });
    const configPath = join(deps.scratch, 'cold-start.json');
    // YAML is a superset of JSON: `run --config` reads this as is.
    await writeFile(
      configPath,
      JSON.stringify({
        device_id: 'bench-cold-start',
        model: {
          path: s.modelPath,
          labels: deps.labelsPath,
          preset: deps.preset,
          execution_providers: s.providers,
          intra_op_threads: s.threads,
          intra_op_spinning: s.spinning,
        },
        cameras: [{ id: 'bench', source: { type: 'synthetic', width: 640, height: 480, fps: CAMERA_FPS } }],
        // Our broker is aedes, MQTT 3.1.1 only (as the daemon's embedded one).
        mqtt: { url: broker.url, protocol_version: 4 },
        http: { enabled: false },
        state_dir: join(deps.scratch, 'state'),
        log: { level: 'warn' },
      }),
    );
    const first = new Promise<void>((resolve) => client.on('message', (topic) => topic.endsWith('/bench/prediction') && resolve()));
    const startedAt = s.clock.monotonic();
    const child = spawn(process.execPath, [fileURLToPath(deps.cliEntry), 'run', '--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let timer: NodeJS.Timeout | undefined;
    try {
      const outcome = await Promise.race([
        first.then(() => 'prediction' as const),
        exited.then((code) => `exit ${code}` as const),
        new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), TIMEOUT_MS))),
      ]);
      const elapsed = s.clock.monotonic() - startedAt;
      if (outcome !== 'prediction') {
        throw new Error(`the cold-start daemon published no prediction (${outcome} after ${Math.round(elapsed)} ms): ${stderr.trim().split('\n').slice(-5).join(' | ')}`);
      }
      return { startup_ms: elapsed, rss_mb: await watchRss(child.pid, s.clock) };
    } finally {
      clearTimeout(timer);
      await stopChild(child, exited);
    }
  } finally {
    await client.endAsync();
    await broker.stop();
  }
}

async function watchRss(pid: number | undefined, clock: BenchSettings['clock']): Promise<ColdStartResult['rss_mb']> {
  if (pid === undefined) return null;
  const samples: number[] = [];
  for (let waited = 0; waited < RSS_WINDOW_MS; waited += RSS_INTERVAL_MS) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    if (kb === undefined) break;
    samples.push(Number(kb) / 1024);
    await clock.sleep(RSS_INTERVAL_MS);
  }
  if (samples.length === 0) return null;
  return { peak: Math.max(...samples), steady: percentile(samples.slice(Math.floor(samples.length / 2)), 50) };
}

/** SIGTERM, and SIGKILL if it has not exited 10 s later. */
async function stopChild(child: ReturnType<typeof spawn>, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), 10_000))),
  ]);
  clearTimeout(timer);
  if (killed) {
    child.kill('SIGKILL');
    await exited;
  }
}
