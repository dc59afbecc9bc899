import { join } from 'node:path';
import { readFile, rm, writeFile } from 'node:fs/promises';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { ExecutionProvider, UpdatesConfig } from '../config/schema.js';
import type { ModelUpdatePayload, UpdateState } from '../mqtt/payloads.js';
import { conditionalGet, redactUrl } from './http-poll.js';
import { verifyManifest } from './signing.js';
import { checkManifest } from './manifest-check.js';
import { ModelJsonSchema, resolveArtifactUrl, signatureUrl, type Artifact, type Manifest, type ModelJson } from './manifest.js';
import type { Downloader } from './downloader.js';
import type { InstalledModel, ModelStore } from './model-store.js';
import { releaseValidationImages, type ValidationReport, type ValidationRequest } from './validator.js';
import { sha256File } from '../inference/model-identity.js';
import { describeBytes, diskFullCode, freeBytes, isDiskFull } from './disk-space.js';
import { describePlatform } from './platform.js';

export interface UpdaterDeps {
  logger: Logger;
  clock: Clock;
  config: UpdatesConfig & { manifest_url: string };
  deviceId: string;
  daemonVersion: string;
  fetch: typeof fetch;
  /** Trusted Ed25519 public keys (PEM text). */
  publicKeys: string[];
  providers: ExecutionProvider[];
  store: ModelStore;
  downloader: Downloader;
  /** Rejects (no verdict) when `signal` aborts: the updater is stopping. */
  validate: (req: ValidationRequest, signal?: AbortSignal) => Promise<ValidationReport>;
  /** The model serving now, as the baseline for the latency check. */
  serving: () => { version: string | undefined; modelPath: string; labelsPath?: string | undefined; modelJson: Pick<ModelJson, 'preset' | 'preprocess'> } | undefined;
  /** Loads the installed model and swaps it in between two frames; throws if it cannot. */
  activate: (model: InstalledModel) => Promise<void>;
  /** Swaps the configured model (config model.path) back in: a rollback to no installed version. */
  restoreConfigured?: () => Promise<void>;
  /** Retained B/D/model. */
  report: (payload: ModelUpdatePayload) => void;
  /** A configured model serves while no release is installed (the first check need not be immediate). */
  hasFallbackModel: boolean;
}

export interface CheckOutcome {
  result: 'installed' | 'up-to-date' | 'not-modified' | 'waiting' | 'refused' | 'failed';
  version?: string;
  reason?: string;
}

const MAX_SIG_BYTES = 4096;
const ROLLED_BACK = 'rolled-back: ';

/**
 * Over-the-air updates: poll the signed manifest, download the artifacts (resumable, size- and
 * sha256-checked), validate the candidate in its own worker while the current model serves,
 * install it crash-safely, swap it in, and watch it on probation. Every step is reported on
 * retained B/D/model; a refused release says why and the old model keeps running.
 */
export class Updater {
  private status: ModelUpdatePayload;
  private etag: string | undefined;
  private lastModified: string | undefined;
  private running: Promise<CheckOutcome> | undefined;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private nextCheck: number | undefined;

  constructor(private readonly deps: UpdaterDeps) {
    this.status = { v: 1, device: deps.deviceId, installed: null, state: 'idle', progress: null, last_error: null, last_check: null, next_check: null };
    // A state write that failed for lack of space, or went through later: on B/D/model at once.
    deps.store.onWriteStatus(() => this.publish({}));
  }

  get payload(): ModelUpdatePayload {
    return this.status;
  }

  async start(): Promise<void> {
    await this.refreshInstalled();
    const snap = this.deps.store.snapshot();
    const probation = snap.probation !== undefined;
    const last = snap.lastCheck;
    const rolledBack = last?.result.startsWith(ROLLED_BACK) ? last.result.slice(ROLLED_BACK.length) : undefined;
    // The last process died validating this one (the store refused it at start).
    const died = this.deps.store.interruptedValidation;
    const diedReason = died ? snap.refused[died]?.reason : undefined;
    this.publish({
      ...(last ? { last_check: new Date(last.at).toISOString() } : {}),
      ...(probation ? { state: 'probation' as const } : rolledBack ? { state: 'rolled-back' as const, last_error: rolledBack } : {}),
      ...(died && diedReason ? { state: probation ? ('probation' as const) : ('failed' as const), target: died, last_error: `refused ${died}: ${diedReason}` } : {}),
    });
    if (probation) void this.endProbationLater();
    this.loop = this.schedule();
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    await this.running?.catch(() => undefined);
  }

  /** One check now (the `update-check` command); concurrent calls share the running check. */
  checkNow(): Promise<CheckOutcome> {
    this.running ??= this.check().finally(() => (this.running = undefined));
    return this.running;
  }

  /** After activation: a swapped-in model that misbehaves is rolled back (probation). */
  async inferenceError(): Promise<void> {
    const p = await this.deps.store.recordInferenceError();
    if (p.trip) await this.rollback(p.trip);
  }

  /**
   * Back to the previous version, which is swapped in unless `swap` is false (at startup, before
   * any model is loaded). Recorded in the state file, so the report survives a crash loop.
   */
  async rollback(reason: string, swap = true): Promise<void> {
    const { store, logger } = this.deps;
    const { from, to } = await store.rollback(reason);
    logger.error({ from, to, reason }, 'model rolled back');
    const message = `rolled back ${from}: ${reason}`;
    await store.recordCheck(`${ROLLED_BACK}${message}`).catch(() => undefined);
    const previous = to ? await store.current() : undefined;
    if (previous && swap) await this.deps.activate(previous);
    else if (!to && swap) await this.deps.restoreConfigured?.();
    await this.refreshInstalled();
    this.publish({ state: 'rolled-back', target: from, last_error: message });
  }

  private async schedule(): Promise<void> {
    const { clock, config, store } = this.deps;
    const signal = this.abort.signal;
    // No model at all: install one first. Otherwise the first check comes after a short jitter.
    let delay = (await store.current()) || this.deps.hasFallbackModel ? 5_000 + Math.random() * 10_000 : 0;
    while (!signal.aborted) {
      this.nextCheck = clock.now() + delay;
      this.publish({});
      await clock.sleep(delay, signal);
      if (signal.aborted) break;
      await this.probationTick();
      const outcome = await this.checkNow().catch((err: unknown) => ({ result: 'failed' as const, reason: (err as Error).message }));
      const noModel = !(await store.current());
      // Jitter spreads a fleet's polls; without a model, retry sooner.
      delay = noModel && outcome.result !== 'up-to-date' ? 30_000 : config.interval * 1000 * (1 + Math.random() * 0.1);
    }
  }

  /** Trusts the new model once its probation window passed without a rollback. */
  private async endProbationLater(): Promise<void> {
    const { clock, config } = this.deps;
    await clock.sleep(config.probation.seconds * 1000 + 100, this.abort.signal);
    if (!this.abort.signal.aborted) await this.probationTick().catch(() => undefined);
  }

  private async probationTick(): Promise<void> {
    const { store } = this.deps;
    if (store.snapshot().probation && store.probationExpired()) {
      await store.endProbation();
      this.publish({ state: 'idle' });
    }
  }

  private async check(): Promise<CheckOutcome> {
    const { config, logger, store, clock } = this.deps;
    this.publish({ state: 'checking', progress: null });
    try {
      const got = await conditionalGet(config.manifest_url, {
        timeoutMs: config.download.timeout_ms,
        fetch: this.deps.fetch,
        signal: this.abort.signal,
        ...(this.etag ? { etag: this.etag } : {}),
        ...(this.lastModified ? { lastModified: this.lastModified } : {}),
      });
      if (got.status === 'not-modified') return await this.done({ result: 'not-modified' });
      const sig = await conditionalGet(signatureUrl(config.manifest_url), { timeoutMs: config.download.timeout_ms, maxBytes: MAX_SIG_BYTES, fetch: this.deps.fetch, signal: this.abort.signal });
      if (sig.status !== 'ok') throw new Error('the manifest signature could not be fetched');
      // Nothing in the manifest is trusted before this line.
      verifyManifest(got.body, sig.body.toString('utf8'), this.deps.publicKeys);
      let json: unknown;
      try {
        json = JSON.parse(got.body.toString('utf8'));
      } catch {
        return await this.refuse(undefined, 'the signed manifest is not valid JSON', false);
      }
      const installed = store.snapshot().installed;
      const verdict = checkManifest(json, { now: clock.now(), installedVersion: installed, daemonVersion: this.deps.daemonVersion, channel: config.channel, deviceId: this.deps.deviceId });
      this.etag = got.etag;
      this.lastModified = got.lastModified;
      if (!verdict.ok) {
        if (verdict.waiting) return await this.done({ result: 'waiting', reason: verdict.reason });
        if (verdict.code === 'not-newer' && json && (json as { version?: unknown }).version === installed) return await this.done({ result: 'up-to-date', version: installed });
        // Expired, downgrade, wrong channel, too new for this daemon: reported, not remembered,
        // since a re-signed manifest may fix it.
        return await this.refuse((json as { version?: string }).version, verdict.reason, false);
      }
      const manifest = verdict.manifest;
      if (store.isRefused(manifest.version)) {
        return await this.done({ result: 'refused', version: manifest.version, reason: `version ${manifest.version} was refused earlier` });
      }
      return await this.install(manifest, got.body, sig.body);
    } catch (err) {
      const reason = (err as Error).message;
      logger.warn({ err: reason }, 'update check failed');
      // A transient failure must not keep the etag of a manifest we never processed.
      this.etag = undefined;
      this.lastModified = undefined;
      await store.recordCheck(`failed: ${reason}`).catch(() => undefined);
      this.publish({ state: 'failed', last_error: reason, progress: null, last_check: new Date(clock.now()).toISOString() });
      return { result: 'failed', reason };
    }
  }

  private async install(manifest: Manifest, rawManifest: Buffer, rawSig: Buffer): Promise<CheckOutcome> {
    const { config, store, downloader, logger } = this.deps;
    const version = manifest.version;
    const dir = join(store.tmpDir, version);
    const a = manifest.artifacts;
    const items: [string, Artifact][] = [
      ['model.onnx', a.model],
      ['labels.txt', a.labels],
      ['model.json', a.model_json],
      ...(a.validation ?? []).map((v): [string, Artifact] => [v.url, v]),
    ];
    // Partial downloads of other (older, refused) releases are of no use any more.
    const removed = await downloader.cleanTemp(store.tmpDir, new Set(items.map(([name]) => join(dir, name)))).catch(() => []);
    if (removed.length > 0) logger.info({ removed: removed.length }, 'stale downloads removed');
    const total = items.reduce((s, [, art]) => s + art.size, 0);
    let done = 0;
    this.publish({ state: 'downloading', target: version, progress: { bytes: 0, total } });
    for (const [name, art] of items) {
      let lastReport = 0;
      await downloader.download({
        url: resolveArtifactUrl(config.manifest_url, art.url),
        size: art.size,
        sha256: art.sha256,
        dest: join(dir, name),
        signal: this.abort.signal,
        onProgress: ({ received }) => {
          const now = this.deps.clock.monotonic();
          if (now - lastReport < 1_000) return;
          lastReport = now;
          this.publish({ progress: { bytes: done + received, total } });
        },
      }).catch((err: unknown) => this.diskFull(err, version, dir, total));
      done += art.size;
    }
    // model.json is pinned by the signed manifest: bytes that do not parse are final for this version.
    let modelJsonValue: unknown;
    try {
      modelJsonValue = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      return this.refuse(version, `model.json is not valid JSON: ${err.message}`);
    }
    const modelJson = ModelJsonSchema.safeParse(modelJsonValue);
    if (!modelJson.success) return this.refuse(version, 'model.json does not match its schema');

    this.publish({ state: 'validating', progress: null });
    // On disk first: a process that dies validating (out of memory) refuses the release at the
    // next start, instead of validating it again and dying again (model-store.ts).
    await store.beginValidation(version);
    const serving = this.deps.serving();
    const report = await this.deps.validate({
      modelPath: join(dir, 'model.onnx'),
      labelsPath: join(dir, 'labels.txt'),
      modelJson: modelJson.data,
      validationImages: releaseValidationImages(dir, modelJson.data),
      reference: modelJson.data.reference ? describePlatform(modelJson.data.reference) : undefined,
      goldenSet: config.validation.golden_dir,
      providers: this.deps.providers,
      thresholds: config.validation,
      ...(serving ? { baseline: { modelPath: serving.modelPath, modelJson: serving.modelJson, labelsPath: serving.labelsPath } } : {}),
    }, this.abort.signal).catch(async (err: unknown) => {
      await store.endValidation().catch(() => undefined); // stopped, not failed: validated again later
      throw err;
    });
    if (!report.ok) return this.refuse(version, `validation failed: ${report.reasons.join('; ')}`);
    await store.endValidation();
    logger.info({ version, agreement: report.agreement, medianMs: report.medianMs }, 'model validated');

    this.publish({ state: 'activating' });
    let installed: InstalledModel;
    try {
      installed = await store.install(version, {
        model: join(dir, 'model.onnx'),
        labels: join(dir, 'labels.txt'),
        modelJson: join(dir, 'model.json'),
        manifest: await this.keep(join(dir, 'manifest.json'), rawManifest),
        sig: await this.keep(join(dir, 'manifest.json.sig'), rawSig),
        ...(a.validation?.length ? { validation: join(dir, 'validation') } : {}),
      });
    } catch (err) {
      if (isDiskFull(err)) return await this.diskFull(err, version, dir, total);
      // Signed, downloaded and validated, and still the store will not take it: remembered, so
      // that it is not downloaded and validated again at every check to fail the same way.
      return this.refuse(version, `the model store cannot install ${version}: ${(err as Error).message}`);
    }
    await store.activate(version);
    try {
      await this.deps.activate(installed);
    } catch (err) {
      await this.rollback(`cannot load after activation: ${(err as Error).message}`);
      return { result: 'failed', version, reason: (err as Error).message };
    }
    await store.prune().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'prune failed'));
    await this.refreshInstalled();
    void this.endProbationLater();
    return this.done({ result: 'installed', version }, 'probation');
  }

  /**
   * A full disk (ENOSPC, EDQUOT) while downloading or installing `version`: its files in tmp/
   * go (a partial download kept for a resume would keep the disk full, and every other writer
   * in state_dir failing with it), and the error says how much room the release needs. Not a
   * refusal: the next check tries again, and succeeds once there is room. Other errors pass.
   */
  private async diskFull(err: unknown, version: string, dir: string, total: number): Promise<never> {
    if (!isDiskFull(err)) throw err;
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    const free = await freeBytes(this.deps.store.tmpDir);
    const room = free === undefined ? '' : `, ${describeBytes(free)} free`;
    this.deps.logger.error({ version, needed: total, free, err: (err as Error).message }, 'disk full during an update; partial downloads removed');
    throw new Error(
      `disk full (${diskFullCode(err)}): release ${version} needs ${describeBytes(total)} in ${this.deps.store.tmpDir}${room}; ` +
        'its partial downloads were removed, the next check tries again',
      { cause: err },
    );
  }

  /** The signed manifest travels with the version, byte for byte, for audits. */
  private async keep(path: string, bytes: Buffer): Promise<string> {
    await writeFile(path, bytes);
    return path;
  }

  private async refuse(version: string | undefined, reason: string, permanent = true): Promise<CheckOutcome> {
    const { store, logger } = this.deps;
    logger.warn({ version, reason }, 'update refused');
    if (version && permanent) {
      await store.refuse(version, reason).catch(() => undefined);
      // Its downloads are of no use any more: the space goes back now, not at the next release.
      await rm(join(store.tmpDir, version), { recursive: true, force: true }).catch(() => undefined);
    }
    await store.recordCheck(`refused: ${reason}`).catch(() => undefined);
    this.publish({ state: 'failed', target: version ?? null, last_error: reason, progress: null, last_check: new Date(this.deps.clock.now()).toISOString() });
    return { result: 'refused', ...(version ? { version } : {}), reason };
  }

  private async done(outcome: CheckOutcome, state: UpdateState = 'idle'): Promise<CheckOutcome> {
    await this.deps.store.recordCheck(outcome.result).catch(() => undefined);
    // An install ends whatever went wrong before it (a full disk, a refused release).
    const cleared = outcome.result === 'installed' ? { last_error: null } : {};
    this.publish({ state: this.deps.store.snapshot().probation ? 'probation' : state, progress: null, last_check: new Date(this.deps.clock.now()).toISOString(), ...cleared });
    this.deps.logger.info({ ...outcome, manifest: redactUrl(this.deps.config.manifest_url) }, 'update check done');
    return outcome;
  }

  private async refreshInstalled(): Promise<void> {
    const current = await this.deps.store.current();
    if (!current) {
      this.status = { ...this.status, installed: null };
      return;
    }
    this.status = { ...this.status, installed: { version: current.version, sha256: await sha256File(current.modelPath) } };
  }

  private publish(patch: Partial<ModelUpdatePayload>): void {
    const refused = Object.entries(this.deps.store.snapshot().refused).map(([version, r]) => ({ version, reason: r.reason }));
    const w = this.deps.store.writeStatus();
    this.status = {
      ...this.status,
      ...patch,
      next_check: this.nextCheck ? new Date(this.nextCheck).toISOString() : null,
      refused,
      ...(w.failures > 0 ? { storage: { pending: w.pending, failed_writes: w.failures, error: w.error ?? null } } : {}),
    };
    this.deps.report(this.status);
  }
}
