/**
 * Installed models under state_dir, switched atomically, put on probation and rolled back.
 *
 *   models/<version>/       model.onnx labels.txt model.json manifest.json manifest.json.sig [validation/]
 *                           .complete (JSON: sha256 of every file; written last)
 *   models/current          relative symlink -> <version>: the model the daemon serves
 *   tmp/                    downloads (the downloader's; kept across restarts for resume)
 *   update-state.json       installed, previous, refused, probation, last check
 *
 * Crash safety: what a SIGKILL (or power loss: every step below is fsynced before the next) at
 * any point leaves, and what start() does with it:
 * - install fills `<version>.partial/`, fsyncs each file, writes `.complete` last, fsyncs the dir,
 *   then renames it to `<version>` and fsyncs models/: the rename is the commit. Killed before it:
 *   a `.partial` dir, deleted by start(). A `<version>` dir without a readable `.complete` cannot
 *   come from this order; start() deletes one anyway (manual tampering).
 * - `current` only ever points at a complete dir: a new link `current.tmp` is renamed over it
 *   (rename(2) replaces atomically: old or new link, never none) and models/ is fsynced.
 *   start() deletes a leftover `current.tmp`.
 * - update-state.json is replaced the same way (tmp + fsync + rename + dir fsync).
 * - A switch (activate, rollback) writes its intent to the state file first, then moves the link.
 *   Killed in between, start() sees link != state.installed and finishes the switch, so a new
 *   model never runs without its probation, and a rolled-back one is already refused.
 * - Removal renames `<version>` to `<version>.deleting` first, so a half-deleted dir is never
 *   taken for a complete one; start() finishes the deletion.
 * - start() re-hashes the current version against `.complete` and falls back to the previous
 *   version if a file changed (bit rot, manual edits): the daemon starts on a verified model.
 * - A candidate's validation is recorded in the state (`validating`) before it starts and
 *   cleared when it ends. A marker found by start() means the process died validating it (the
 *   kernel's OOM killer, a crash in onnxruntime): that version is refused for good instead of
 *   being downloaded and validated again at every restart (a crash loop without end).
 *
 * A full disk: a state write that fails with ENOSPC/EDQUOT is adopted in memory, logged,
 * counted (writeStatus(), reported on B/D/model) and retried every `retryMs` until it
 * succeeds, so the daemon starts and serves on a full state_dir whatever the update state, and
 * nothing is lost once there is room (the state on disk is the latest one then). Writes the
 * next step must not run without (the validation marker, an activation) throw instead. A
 * rollback that finds no room first moves `current` back and deletes the refused version
 * (which frees its space), then retries the write.
 */
import { mkdir, readFile, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { UpdatesConfig } from '../config/updates-schema.js';
import { fsyncPath, isValidVersionName, NAMES, readMarker, removeVersionDir, SCRATCH, verifyVersionDir, writeVersionDir, type ModelFiles } from './model-dirs.js';
import { DIED_VALIDATING, isNoSpace, readUpdateState, type ProbationStatus, type UpdateState, type WriteStatus } from './update-state.js';
import { StateWriter } from './state-writer.js';

export type { ModelFiles } from './model-dirs.js';

export interface InstalledModel {
  version: string;
  dir: string;
  modelPath: string;
  labelsPath: string;
  /** model.json as JSON (check it with ModelJsonSchema from manifest.ts; the store does not interpret it). */
  modelJson: unknown;
}

export interface ModelStoreDeps {
  logger: Logger;
  clock: Clock;
  config: Pick<UpdatesConfig, 'keep_versions' | 'probation'> & { state_dir: string };
  /** Retry period of a state write that failed for lack of space; default 5 s. */
  retryMs?: number;
}

export class ModelStore {
  private readonly models: string;
  private readonly stateFile: string;
  private readonly writer: StateWriter;
  private diedValidating: string | undefined;

  constructor(private readonly deps: ModelStoreDeps) {
    this.models = join(deps.config.state_dir, 'models');
    this.stateFile = join(deps.config.state_dir, 'update-state.json');
    this.writer = new StateWriter({ logger: deps.logger, clock: deps.clock, file: this.stateFile, ...(deps.retryMs !== undefined ? { retryMs: deps.retryMs } : {}) });
  }

  private get state(): UpdateState {
    return this.writer.state;
  }

  /** Where the downloader keeps its partial downloads. */
  get tmpDir(): string {
    return join(this.deps.config.state_dir, 'tmp');
  }

  /** A copy of the state (the persisted one, unless a write waits for room: writeStatus()). */
  snapshot(): UpdateState {
    return structuredClone(this.state);
  }

  writeStatus(): WriteStatus {
    return this.writer.status();
  }

  /** Told whenever writeStatus() changes (a write failed for lack of space, or went through later). */
  onWriteStatus(listener: (status: WriteStatus) => void): void {
    this.writer.onStatus(listener);
  }

  /** The version start() refused because the last process died validating it. */
  get interruptedValidation(): string | undefined {
    return this.diedValidating;
  }

  async start(): Promise<void> {
    for (const dir of [this.models, this.tmpDir]) {
      // A full disk must not stop a daemon that has a model to serve (the configured one).
      await mkdir(dir, { recursive: true }).catch((err: unknown) => {
        if (!isNoSpace(err)) throw err;
        this.deps.logger.error({ dir, err: (err as Error).message }, 'cannot create a model store directory: no space left');
      });
    }
    const fresh = await readUpdateState(this.stateFile, this.deps.logger);
    await rm(`${this.stateFile}.tmp`, { force: true });
    await rm(join(this.models, 'current.tmp'), { force: true });
    const entries = await readdir(this.models).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    for (const name of entries) {
      if (name === 'current') continue;
      const scratch = SCRATCH.test(name);
      if (scratch || !(await this.marker(name))) {
        this.deps.logger.warn({ entry: name }, scratch ? 'removing an interrupted install or removal' : 'removing an incomplete model dir');
        await rm(join(this.models, name), { recursive: true, force: true });
      }
    }
    await this.reconcile(fresh);
    await this.refuseInterruptedValidation();
  }

  async stop(): Promise<void> {
    await this.writer.stop();
  }

  /** The served version, or undefined (none installed: the daemon uses its configured model). */
  async current(): Promise<InstalledModel | undefined> {
    const version = this.state.installed;
    if (!version) return undefined;
    return this.describe(version);
  }

  isRefused(version: string): boolean {
    return Object.hasOwn(this.state.refused, version);
  }

  /** Complete versions, newest install first. */
  async versions(): Promise<{ version: string; installedAt: number }[]> {
    const found: { version: string; installedAt: number }[] = [];
    for (const name of await readdir(this.models)) {
      const m = name === 'current' || SCRATCH.test(name) ? undefined : await this.marker(name);
      if (m) found.push({ version: name, installedAt: m.installedAt });
    }
    return found.sort((a, b) => b.installedAt - a.installedAt);
  }

  /** Moves the files into models/<version>/ durably (see the top of the file); the sources are consumed. */
  install(version: string, files: ModelFiles): Promise<InstalledModel> {
    return this.serial(async () => {
      if (!isValidVersionName(version)) throw new Error(`invalid model version "${version}"`);
      if (this.isRefused(version)) throw new Error(`model version ${version} is refused: ${this.state.refused[version]?.reason}`);
      if (!(await this.marker(version))) {
        await writeVersionDir(this.models, version, files, this.deps.clock.now());
        this.deps.logger.info({ version }, 'model installed');
      }
      return this.describe(version);
    });
  }
  /** Serves `version` from now on (and after restarts), on probation; the old one becomes `previous`. */
  activate(version: string): Promise<void> {
    return this.serial(async () => {
      if (this.isRefused(version)) throw new Error(`model version ${version} is refused`);
      if (!(await this.marker(version))) throw new Error(`model version ${version} is not installed`);
      if (this.state.installed === version) return;
      const probation = { version, since: this.deps.clock.now(), restarts: 0, errors: 0 };
      // Required: the link must not move ahead of a state that is not on disk.
      await this.commit({ ...this.state, installed: version, previous: this.state.installed, probation, validating: undefined }, { required: true });
      await this.link(version);
      this.deps.logger.info({ version, previous: this.state.previous }, 'model activated, on probation');
    });
  }

  /** Back to `previous` (or to none: the configured model); the current version is refused for good. */
  rollback(reason: string): Promise<{ from: string; to: string | undefined }> {
    return this.serial(async () => {
      const from = this.state.installed;
      if (!from) throw new Error('no installed model to roll back');
      const prev = this.state.previous;
      const to = prev && (await this.marker(prev)) ? prev : undefined;
      const refused = { ...this.state.refused, [from]: { reason, at: this.deps.clock.now() } };
      const next = { ...this.state, installed: to, previous: undefined, probation: undefined, refused };
      try {
        await this.commit(next, { required: true });
        await this.link(to);
      } catch (err) {
        if (!isNoSpace(err)) throw err;
        // No room for the state: leave the bad version anyway, and delete it, which frees its
        // space for the write and means that even a crash before the write cannot bring it
        // back (start() falls back from a version that is not installed).
        this.deps.logger.error({ from, to, err: (err as Error).message }, 'no space to record the rollback; deleting the rolled-back version to make room');
        await this.link(to);
        await this.removeDir(from).catch((e: unknown) => this.deps.logger.error({ version: from, err: (e as Error).message }, 'cannot delete the rolled-back version'));
        await this.commit(next);
      }
      this.deps.logger.warn({ from, to, reason }, 'model rolled back');
      return { from, to };
    });
  }

  /** Never installs `version` again (a release that failed validation, say). */
  refuse(version: string, reason: string): Promise<void> {
    return this.serial(() => {
      const validating = this.state.validating?.version === version ? undefined : this.state.validating;
      return this.commit({ ...this.state, validating, refused: { ...this.state.refused, [version]: { reason, at: this.deps.clock.now() } } });
    });
  }

  /**
   * Records that `version` is being validated, before the validation starts (see the top of
   * the file). Throws when that cannot be written (a full disk): a validation without the
   * marker could kill the process again and again, so it waits for room instead.
   */
  beginValidation(version: string): Promise<void> {
    return this.serial(() => this.commit({ ...this.state, validating: { version, since: this.deps.clock.now() } }, { required: true }));
  }

  /** The validation ended (passed, or stopped by a shutdown): no refusal at the next start. */
  endValidation(): Promise<void> {
    return this.serial(async () => {
      if (this.state.validating) await this.commit({ ...this.state, validating: undefined });
    });
  }

  /**
   * Call once per daemon start: counted in the state file, so a crash loop is seen across
   * restarts. Every start within the window counts, a planned one too (max_restarts allows for it).
   */
  recordRestart(): Promise<ProbationStatus> {
    return this.count('restarts');
  }

  recordInferenceError(): Promise<ProbationStatus> {
    return this.count('errors');
  }

  /**
   * Wall-clock, since the window must span restarts. A Pi without RTC may jump forward at NTP
   * sync and end a probation early; a backward jump only makes it longer.
   */
  probationExpired(now = this.deps.clock.now()): boolean {
    const p = this.state.probation;
    return p !== undefined && now - p.since >= this.deps.config.probation.seconds * 1000;
  }

  /** The probation window passed without trouble: the version is trusted. */
  endProbation(): Promise<void> {
    return this.serial(async () => {
      if (this.state.probation) await this.commit({ ...this.state, probation: undefined });
    });
  }

  recordCheck(result: string, at = this.deps.clock.now()): Promise<void> {
    return this.serial(() => this.commit({ ...this.state, lastCheck: { at, result } }));
  }

  /** Deletes refused versions and all but the newest `keep`; never the installed or previous one. */
  prune(keep = this.deps.config.keep_versions): Promise<string[]> {
    return this.serial(async () => {
      const s = this.state;
      const guarded = new Set([s.installed, s.previous, s.probation?.version].filter((v): v is string => v !== undefined));
      const removed: string[] = [];
      let kept = guarded.size;
      for (const { version } of await this.versions()) {
        if (guarded.has(version)) continue;
        if (!this.isRefused(version) && kept < keep) kept++;
        else removed.push(version);
      }
      for (const v of removed) await this.removeDir(v);
      return removed;
    });
  }

  /** Deletes one version that is neither installed nor previous (a candidate that failed validation). */
  remove(version: string): Promise<void> {
    return this.serial(async () => {
      if (version === this.state.installed || version === this.state.previous) throw new Error(`model version ${version} is in use`);
      await this.removeDir(version);
    });
  }

  private count(what: 'restarts' | 'errors'): Promise<ProbationStatus> {
    return this.serial(async () => {
      const p = this.state.probation;
      if (!p) return { active: false, restarts: 0, errors: 0 };
      if (this.probationExpired()) {
        await this.commit({ ...this.state, probation: undefined });
        return { active: false, restarts: p.restarts, errors: p.errors };
      }
      const next = { ...p, [what]: p[what] + 1 };
      await this.commit({ ...this.state, probation: next });
      const { probation } = this.deps.config;
      const limit = what === 'restarts' ? probation.max_restarts : probation.max_inference_errors;
      const status: ProbationStatus = { active: true, restarts: next.restarts, errors: next.errors };
      if (next[what] >= limit) {
        const within = `within ${probation.seconds} s of activating ${p.version}`;
        status.trip = what === 'restarts' ? `${next.restarts} restarts (crash loop) ${within}` : `${next.errors} inference errors ${within}`;
      }
      return status;
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.writer.serial(fn);
  }

  private commit(next: UpdateState, opts: { required?: boolean } = {}): Promise<void> {
    return this.writer.commit(next, opts);
  }

  /** A validation marker left by the last process: it died validating that version. */
  private async refuseInterruptedValidation(): Promise<void> {
    const v = this.state.validating;
    if (!v) return;
    if (v.version === this.state.installed || this.isRefused(v.version)) {
      await this.commit({ ...this.state, validating: undefined });
      return;
    }
    this.deps.logger.error({ version: v.version, since: new Date(v.since).toISOString() }, `refusing ${v.version}: ${DIED_VALIDATING}`);
    const at = this.deps.clock.now();
    await this.commit({
      ...this.state,
      validating: undefined,
      refused: { ...this.state.refused, [v.version]: { reason: DIED_VALIDATING, at } },
      lastCheck: { at, result: `refused: ${v.version}: ${DIED_VALIDATING}` },
    });
    this.diedValidating = v.version;
  }

  /** Points `current` at `version` (or removes it) with one rename, made durable by the dir fsync. */
  private async link(version: string | undefined): Promise<void> {
    const current = join(this.models, 'current');
    if (version) {
      const tmp = `${current}.tmp`;
      await rm(tmp, { force: true });
      await symlink(version, tmp);
      await rename(tmp, current);
    } else {
      await rm(current, { force: true });
    }
    await fsyncPath(this.models);
  }

  private async removeDir(version: string): Promise<void> {
    await removeVersionDir(this.models, version);
    this.deps.logger.info({ version }, 'model version removed');
  }

  private marker(version: string): ReturnType<typeof readMarker> {
    return readMarker(this.models, version);
  }

  private async describe(version: string): Promise<InstalledModel> {
    const dir = join(this.models, version);
    const modelJson = JSON.parse(await readFile(join(dir, NAMES.modelJson), 'utf8')) as unknown;
    return { version, dir, modelPath: join(dir, NAMES.model), labelsPath: join(dir, NAMES.labels), modelJson };
  }

  /** Makes `current`, the state and the disk agree (see the top of the file), on a verified model. */
  private async reconcile(saved: UpdateState | undefined): Promise<void> {
    const { logger } = this.deps;
    const linked = await readlink(join(this.models, 'current')).catch(() => undefined);
    // No state file: adopt the link. Otherwise the state is the intent and the link follows it.
    let next: UpdateState = saved ?? { refused: {}, installed: linked };
    for (;;) {
      const v = next.installed;
      const bad = v === undefined ? undefined : await verifyVersionDir(this.models, v);
      if (!bad) break;
      logger.error({ version: v, problem: bad, fallback: next.previous }, 'installed model unusable, falling back');
      if (bad !== 'not installed' && v) await this.removeDir(v);
      next = { ...next, installed: next.previous, previous: undefined, probation: undefined };
    }
    if (JSON.stringify(next) !== JSON.stringify(saved)) await this.commit(next);
    else this.writer.adopt(next);
    if (linked !== next.installed) {
      logger.warn({ from: linked, to: next.installed }, 'finishing an interrupted model switch');
      await this.link(next.installed);
    }
  }
}
