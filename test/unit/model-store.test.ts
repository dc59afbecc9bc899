import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readlinkSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { ModelStore, type ModelFiles } from '../../src/updates/model-store.js';
import { DIED_VALIDATING, type UpdateState } from '../../src/updates/update-state.js';
import type { Clock } from '../../src/core/clock.js';
import { tempDir } from '../helpers/fixtures.js';

const probation = { seconds: 300, max_inference_errors: 5, max_restarts: 3 };

function fakeClock(start = 1_700_000_000_000): Clock & { t: number } {
  const c = {
    t: start,
    now: () => c.t,
    monotonic: () => c.t,
    sleep: () => Promise.resolve(),
  };
  return c;
}

interface Env {
  stateDir: string;
  clock: ReturnType<typeof fakeClock>;
  open(): Promise<ModelStore>;
  files(version: string, opts?: { validation?: boolean }): ModelFiles;
}

function env(stateDir = tempDir('ec-store-')): Env {
  const clock = fakeClock();
  return {
    stateDir,
    clock,
    async open() {
      const store = new ModelStore({ logger: pino({ level: 'silent' }), clock, config: { state_dir: stateDir, keep_versions: 3, probation } });
      await store.start();
      return store;
    },
    // Downloads, as the downloader leaves them in state_dir/tmp.
    files(version, opts = {}) {
      const dir = join(stateDir, 'tmp', `dl-${version}`);
      mkdirSync(dir, { recursive: true });
      const f = (name: string, text: string): string => (writeFileSync(join(dir, name), text), join(dir, name));
      const files: ModelFiles = {
        model: f('model.onnx', `onnx bytes of ${version}`),
        labels: f('labels.txt', 'a\nb\n'),
        modelJson: f('model.json', JSON.stringify({ version })),
        manifest: f('manifest.json', JSON.stringify({ version })),
        sig: f('manifest.json.sig', 'sig'),
      };
      if (opts.validation) {
        mkdirSync(join(dir, 'validation'), { recursive: true });
        writeFileSync(join(dir, 'validation', 'red.jpg'), 'jpeg');
        files.validation = join(dir, 'validation');
      }
      return files;
    },
  };
}

const models = (e: Env): string => join(e.stateDir, 'models');
const state = (e: Env): UpdateState => JSON.parse(readFileSync(join(e.stateDir, 'update-state.json'), 'utf8')) as UpdateState;
const link = (e: Env): string | undefined => (existsSync(join(models(e), 'current')) ? readlinkSync(join(models(e), 'current')) : undefined);

/** A store with v1 active and past probation, v2 installed and active (on probation). */
async function twoVersions(e: Env): Promise<ModelStore> {
  const store = await e.open();
  await store.install('1.0.0', e.files('1.0.0'));
  await store.activate('1.0.0');
  await store.endProbation();
  e.clock.t += 1000;
  await store.install('2.0.0', e.files('2.0.0'));
  await store.activate('2.0.0');
  return store;
}

describe('ModelStore', () => {
  it('installs into models/<version>/ and serves it once activated', async () => {
    const e = env();
    const store = await e.open();
    expect(await store.current()).toBeUndefined();
    const installed = await store.install('1.0.0', e.files('1.0.0', { validation: true }));
    expect(readFileSync(installed.modelPath, 'utf8')).toBe('onnx bytes of 1.0.0');
    expect(readdirSync(join(models(e), '1.0.0')).sort()).toEqual(
      ['.complete', 'labels.txt', 'manifest.json', 'manifest.json.sig', 'model.json', 'model.onnx', 'validation'].sort(),
    );
    const marker = JSON.parse(readFileSync(join(models(e), '1.0.0', '.complete'), 'utf8')) as { files: Record<string, string> };
    expect(Object.keys(marker.files)).toContain('validation/red.jpg');
    expect(await store.current()).toBeUndefined(); // installed is not active
    await store.activate('1.0.0');
    const current = await store.current();
    expect(current).toMatchObject({ version: '1.0.0', modelPath: join(models(e), '1.0.0', 'model.onnx'), modelJson: { version: '1.0.0' } });
    expect(link(e)).toBe('1.0.0');
    expect(state(e)).toMatchObject({ installed: '1.0.0', probation: { version: '1.0.0', restarts: 0, errors: 0 } });
    // Installing again is a no-op; odd version names are refused before they touch the disk.
    await expect(store.install('1.0.0', e.files('1.0.0'))).resolves.toMatchObject({ version: '1.0.0' });
    for (const bad of ['../x', 'current', '1.0.partial', '', '.hidden']) await expect(store.install(bad, e.files('x'))).rejects.toThrow(/invalid/);
  });

  it('keeps the previous version and rolls back to it, refusing the bad one for good', async () => {
    const e = env();
    const store = await twoVersions(e);
    expect(state(e)).toMatchObject({ installed: '2.0.0', previous: '1.0.0' });
    expect(await store.rollback('3 inference errors')).toEqual({ from: '2.0.0', to: '1.0.0' });
    expect((await store.current())?.version).toBe('1.0.0');
    expect(link(e)).toBe('1.0.0');
    expect(store.isRefused('2.0.0')).toBe(true);
    expect(state(e).refused['2.0.0']?.reason).toBe('3 inference errors');
    expect(state(e).probation).toBeUndefined();
    // Also after a restart.
    const again = await e.open();
    expect(again.isRefused('2.0.0')).toBe(true);
    await expect(again.activate('2.0.0')).rejects.toThrow(/refused/);
    await expect(again.install('2.0.0', e.files('2.0.0'))).rejects.toThrow(/refused/);
  });

  it('rolls back to no model (the configured one) when there was none before', async () => {
    const e = env();
    const store = await e.open();
    await store.install('1.0.0', e.files('1.0.0'));
    await store.activate('1.0.0');
    expect(await store.rollback('crash loop')).toEqual({ from: '1.0.0', to: undefined });
    expect(await store.current()).toBeUndefined();
    expect(link(e)).toBeUndefined();
    await expect(store.rollback('again')).rejects.toThrow(/no installed model/);
  });

  it('counts restarts in the state file, so a crash loop trips across processes', async () => {
    const e = env();
    await twoVersions(e);
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const store = await e.open(); // a new process each time
      statuses.push(await store.recordRestart());
    }
    expect(statuses.map((s) => s.restarts)).toEqual([1, 2, 3]);
    expect(statuses[1]?.trip).toBeUndefined();
    expect(statuses[2]?.trip).toBe('3 restarts (crash loop) within 300 s of activating 2.0.0');
    expect(state(e).probation).toMatchObject({ version: '2.0.0', restarts: 3 });
  });

  it('trips on repeated inference errors during probation, and not after it', async () => {
    const e = env();
    const store = await twoVersions(e);
    for (let i = 1; i < 5; i++) expect((await store.recordInferenceError()).trip).toBeUndefined();
    expect((await store.recordInferenceError()).trip).toBe('5 inference errors within 300 s of activating 2.0.0');

    const e2 = env();
    const s2 = await twoVersions(e2);
    await s2.recordInferenceError();
    expect(s2.probationExpired()).toBe(false);
    e2.clock.t += 300_000;
    expect(s2.probationExpired()).toBe(true);
    // Past the window: nothing counts, and the probation is over for good.
    expect(await s2.recordInferenceError()).toEqual({ active: false, restarts: 0, errors: 1 });
    expect(state(e2).probation).toBeUndefined();
    expect(await (await e2.open()).recordRestart()).toEqual({ active: false, restarts: 0, errors: 0 });
  });

  it('prunes old and refused versions, never the installed or previous one', async () => {
    const e = env();
    const store = await e.open();
    for (const v of ['1', '2', '3', '4', '5', '6']) {
      e.clock.t += 1000;
      await store.install(v, e.files(v));
    }
    await store.activate('2'); // an older one serving: still kept
    await store.activate('6');
    await store.refuse('5', 'failed validation');
    expect(await store.prune(3)).toEqual(['5', '3', '1']);
    expect((await store.versions()).map((v) => v.version)).toEqual(['6', '4', '2']);
    expect(readdirSync(models(e)).sort()).toEqual(['2', '4', '6', 'current']);
    await expect(store.remove('2')).rejects.toThrow(/in use/);
    await store.remove('4');
    expect((await store.versions()).map((v) => v.version)).toEqual(['6', '2']);
  });

  it('records the last check', async () => {
    const e = env();
    const store = await e.open();
    await store.recordCheck('up to date', 42);
    expect((await e.open()).snapshot().lastCheck).toEqual({ at: 42, result: 'up to date' });
  });

  describe('the validation marker', () => {
    it('a marker left by a process that died validating refuses that version at the next start, once', async () => {
      const e = env();
      const store = await twoVersions(e);
      await store.beginValidation('3.0.0');
      expect(state(e).validating).toMatchObject({ version: '3.0.0' });
      // SIGKILLed here (out of memory): the next process finds the marker.
      const after = await e.open();
      expect(after.isRefused('3.0.0')).toBe(true);
      expect(after.snapshot().refused['3.0.0']?.reason).toBe(DIED_VALIDATING);
      expect(after.interruptedValidation).toBe('3.0.0');
      expect(state(e).validating).toBeUndefined();
      expect(state(e).lastCheck?.result).toBe(`refused: 3.0.0: ${DIED_VALIDATING}`);
      expect((await after.current())?.version).toBe('2.0.0');
      // Reported once: the process after that one has nothing to say about it.
      expect((await e.open()).interruptedValidation).toBeUndefined();
    });

    it('an ended validation (passed, or stopped by a shutdown) refuses nothing', async () => {
      const e = env();
      const store = await twoVersions(e);
      await store.beginValidation('3.0.0');
      await store.endValidation();
      const after = await e.open();
      expect(after.isRefused('3.0.0')).toBe(false);
      expect(after.interruptedValidation).toBeUndefined();
    });

    it('a refusal or an activation clears the marker in the same write', async () => {
      const e = env();
      const store = await twoVersions(e);
      await store.beginValidation('3.0.0');
      await store.refuse('3.0.0', 'validation failed: too slow');
      expect(state(e).validating).toBeUndefined();
      expect((await e.open()).snapshot().refused['3.0.0']?.reason).toBe('validation failed: too slow');

      await store.beginValidation('4.0.0');
      await store.install('4.0.0', e.files('4.0.0'));
      await store.activate('4.0.0');
      expect(state(e)).toMatchObject({ installed: '4.0.0' });
      expect(state(e).validating).toBeUndefined();
    });

    it('a marker of the version that is installed is dropped, not refused', async () => {
      const e = env();
      await twoVersions(e);
      writeFileSync(join(e.stateDir, 'update-state.json'), JSON.stringify({ ...state(e), validating: { version: '2.0.0', since: 1 } }));
      const after = await e.open();
      expect(after.isRefused('2.0.0')).toBe(false);
      expect(state(e).validating).toBeUndefined();
    });
  });

  describe('start() after a SIGKILL at each point', () => {
    it('drops an install killed while moving files (a .partial dir), keeps tmp downloads', async () => {
      const e = env();
      const store = await twoVersions(e);
      await store.stop();
      mkdirSync(join(models(e), '3.0.0.partial'));
      writeFileSync(join(models(e), '3.0.0.partial', 'model.onnx'), 'half a mod');
      writeFileSync(join(e.stateDir, 'tmp', 'model.onnx.part'), 'resume me');
      const after = await e.open();
      expect(readdirSync(models(e)).sort()).toEqual(['1.0.0', '2.0.0', 'current']);
      expect((await after.current())?.version).toBe('2.0.0');
      expect(readFileSync(join(e.stateDir, 'tmp', 'model.onnx.part'), 'utf8')).toBe('resume me');
    });

    it('drops an install killed after .complete but before the rename', async () => {
      const e = env();
      await twoVersions(e);
      renameSync(join(models(e), '1.0.0'), join(models(e), '3.0.0.partial')); // complete in every other way
      const after = await e.open();
      expect(readdirSync(models(e)).sort()).toEqual(['2.0.0', 'current']);
      expect((await after.versions()).map((v) => v.version)).toEqual(['2.0.0']);
    });

    it('drops a version dir without its .complete marker, and one half deleted', async () => {
      const e = env();
      await twoVersions(e);
      mkdirSync(join(models(e), '9.9.9'));
      writeFileSync(join(models(e), '9.9.9', 'model.onnx'), 'x');
      mkdirSync(join(models(e), '0.1.deleting'));
      expect(readdirSync(models(e))).toContain('9.9.9');
      await e.open();
      expect(readdirSync(models(e)).sort()).toEqual(['1.0.0', '2.0.0', 'current']);
    });

    it('drops a current.tmp link (killed before its rename) and keeps the old current', async () => {
      const e = env();
      await twoVersions(e);
      symlinkSync('1.0.0', join(models(e), 'current.tmp'));
      const after = await e.open();
      expect(existsSync(join(models(e), 'current.tmp'))).toBe(false);
      expect((await after.current())?.version).toBe('2.0.0');
    });

    it('drops a half-written state tmp file', async () => {
      const e = env();
      await twoVersions(e);
      writeFileSync(join(e.stateDir, 'update-state.json.tmp'), '{"installed": "1.0');
      const after = await e.open();
      expect(existsSync(join(e.stateDir, 'update-state.json.tmp'))).toBe(false);
      expect(after.snapshot()).toMatchObject({ installed: '2.0.0', previous: '1.0.0' });
    });

    it('finishes an activation killed between the state write and the link switch (on probation)', async () => {
      const e = env();
      await twoVersions(e);
      // The state already says 2.0.0 (the intent), the link still points at 1.0.0.
      symlinkSync('1.0.0', join(models(e), 'current.tmp'));
      renameSync(join(models(e), 'current.tmp'), join(models(e), 'current'));
      const after = await e.open();
      expect(link(e)).toBe('2.0.0');
      expect((await after.current())?.version).toBe('2.0.0');
      expect(after.snapshot().probation?.version).toBe('2.0.0');
    });

    it('finishes a rollback killed between the state write and the link switch', async () => {
      const e = env();
      const store = await twoVersions(e);
      await store.rollback('crash loop');
      symlinkSync('2.0.0', join(models(e), 'current.tmp'));
      renameSync(join(models(e), 'current.tmp'), join(models(e), 'current'));
      const after = await e.open();
      expect(link(e)).toBe('1.0.0');
      expect((await after.current())?.version).toBe('1.0.0');
      expect(after.isRefused('2.0.0')).toBe(true);
    });

    it('falls back to the previous version when a file of the current one changed', async () => {
      const e = env();
      await twoVersions(e);
      writeFileSync(join(models(e), '2.0.0', 'model.onnx'), 'bit rot');
      const after = await e.open();
      expect((await after.current())?.version).toBe('1.0.0');
      expect(link(e)).toBe('1.0.0');
      expect(existsSync(join(models(e), '2.0.0'))).toBe(false); // re-downloadable, not refused
      expect(after.isRefused('2.0.0')).toBe(false);
      expect(state(e)).toMatchObject({ installed: '1.0.0' });
    });

    it('adopts the link when the state file is missing, and drops a dangling one', async () => {
      const e = env();
      await twoVersions(e);
      renameSync(join(e.stateDir, 'update-state.json'), join(e.stateDir, 'elsewhere.json'));
      expect((await (await e.open()).current())?.version).toBe('2.0.0');

      const e2 = env();
      await twoVersions(e2);
      renameSync(join(e2.stateDir, 'update-state.json'), join(e2.stateDir, 'elsewhere.json'));
      renameSync(join(models(e2), '2.0.0'), join(models(e2), '2.0.0.partial'));
      const after = await e2.open();
      expect(await after.current()).toBeUndefined();
      expect(link(e2)).toBeUndefined();
    });
  });
});
