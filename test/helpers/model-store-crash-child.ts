/**
 * Child process for test/integration/model-store-crash.test.ts (run as TypeScript with
 * vite-node): installs and activates ~5 MB fake models in a loop, rolling back every third one
 * and pruning, until the test SIGKILLs it.
 *
 *   vite-node model-store-crash-child.ts <state_dir>
 *
 * stdout (pipes are synchronous on Linux, so a printed line was printed before any kill):
 *   ready <current version or ->
 *   H <version> <JSON: relative file path -> sha256>   the files about to be installed
 *   S <version>      a switch (activate or rollback) to <version> starts
 *   C <version>      ... and has returned: <version> is current
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { ModelStore } from '../../src/updates/model-store.js';
import { createSystemClock } from '../../src/core/clock.js';

const [stateDir] = process.argv.slice(2);
if (!stateDir) throw new Error('usage: model-store-crash-child <state_dir>');

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const store = new ModelStore({
  logger: pino({ level: 'warn' }, pino.destination(2)),
  clock: createSystemClock(),
  config: { state_dir: stateDir, keep_versions: 3, probation: { seconds: 300, max_inference_errors: 5, max_restarts: 3 } },
});
await store.start();
await store.recordRestart();
say(`ready ${(await store.current())?.version ?? '-'}`);

for (let n = 1; ; n++) {
  const version = `${process.pid}.${n}`;
  const dir = join(store.tmpDir, version);
  await mkdir(join(dir, 'validation'), { recursive: true });
  const contents: Record<string, Buffer> = {
    'model.onnx': randomBytes(5 * 1024 * 1024),
    'labels.txt': Buffer.from(`label-${version}\n`),
    'model.json': Buffer.from(JSON.stringify({ version })),
    'manifest.json': Buffer.from(JSON.stringify({ version, nonce: randomBytes(8).toString('hex') })),
    'manifest.json.sig': randomBytes(64),
    'validation/a.jpg': randomBytes(20_000),
    'validation/b.jpg': randomBytes(30_000),
  };
  const hashes: Record<string, string> = {};
  for (const [file, data] of Object.entries(contents)) {
    await writeFile(join(dir, file), data);
    hashes[file] = createHash('sha256').update(data).digest('hex');
  }
  say(`H ${version} ${JSON.stringify(hashes)}`);
  const f = (name: string): string => join(dir, name);
  await store.install(version, {
    model: f('model.onnx'),
    labels: f('labels.txt'),
    modelJson: f('model.json'),
    manifest: f('manifest.json'),
    sig: f('manifest.json.sig'),
    validation: f('validation'),
  });
  say(`S ${version}`);
  await store.activate(version);
  say(`C ${version}`);
  await store.recordInferenceError();
  const previous = store.snapshot().previous;
  if (n % 3 === 0 && previous) {
    say(`S ${previous}`);
    await store.rollback('crash test rollback');
    say(`C ${previous}`);
  }
  await store.prune();
}
