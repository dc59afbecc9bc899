/**
 * Runs one camera source in a process of its own, for tests that must kill the daemon's
 * process itself (kill -9) and then check what is left of its children. Started with
 * vite-node: `vite-node test/helpers/source-child.ts '<source config JSON>'`. Prints one JSON
 * line per event on stdout: {"event":"started"}, {"event":"frame","seq":n}, {"event":"error"}.
 */
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { createSource } from '../../src/camera/create-source.js';
import type { Frame, FrameSink } from '../../src/camera/frame.js';
import { SourceSchema } from '../../src/config/schema.js';
import { createSystemClock } from '../../src/core/clock.js';

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

const sink: FrameSink = {
  push: (frame: Frame) => emit({ event: 'frame', seq: frame.seq }),
  whenIdle: () => Promise.resolve(),
  captureError: (err: Error) => emit({ event: 'error', message: err.message }),
  end: () => emit({ event: 'end' }),
  restarting: (reason: string) => emit({ event: 'restarting', reason }),
};

const config = SourceSchema.parse(JSON.parse(process.argv[2] ?? '{}'));
const source = createSource(config, {
  camera: 'child',
  logger: pino({ level: 'silent' }),
  clock: createSystemClock(),
  sink,
  tmpDir: tmpdir(),
  env: process.env,
  modelInput: { size: 224, resize: 256 },
});
await source.start();
emit({ event: 'started', pid: process.pid });
// Runs until killed: the test kills this process with SIGKILL.
setInterval(() => undefined, 60_000);
