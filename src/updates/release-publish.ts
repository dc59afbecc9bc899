import { mkdir, mkdtemp, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Logger } from '../ops/logger.js';
import type { Clock } from '../ops/clock.js';
import type { PreprocessSpec, PresetName } from '../config/schema.js';
import { Classifier } from '../inference/classifier.js';
import { loadLabels } from '../vision/labels.js';
import { resolvePreprocess } from '../vision/presets.js';
import { expandImagePaths } from '../cli/image-files.js';
import { hashFile, type HashedFile, type ProgressSink } from './hash-file.js';
import { describeModelIo, readModelIo } from './model-meta.js';
import { ArtifactSchema, ManifestSchema, MANIFEST_FILE, ModelJsonSchema, RELEASE_FILES, SCHEMA_VERSION, SIGNATURE_FILE, type Artifact, type Manifest, type ModelJsonInput } from './manifest.js';
import { publicKeyFromPrivate, keyFingerprint, signManifest } from './signing.js';
import { parseVersion } from './version.js';

/** Builds a release directory (see manifest.ts for the format) and signs it. */

export class ReleaseError extends Error {
  override name = 'ReleaseError';
}

export interface PublishOptions {
  model: string;
  labels: string;
  preset: PresetName;
  /** Single-field overrides of the preset, shipped in model.json. */
  preprocess?: Partial<PreprocessSpec> | undefined;
  version: string;
  privateKeyPem: string;
  out: string;
  channel: string;
  rolloutPercent: number;
  rolloutSalt?: string | undefined;
  /** Lifetime of the manifest from now, in milliseconds. */
  expiresInMs: number;
  minDaemonVersion: string;
  rollback: boolean;
  /** Images to ship as validation/; their expected labels come from the model (see below). */
  validationDir?: string | undefined;
  /** Point the manifest at this absolute URL instead of shipping model.onnx (pinned by sha256). */
  modelUrl?: string | undefined;
}

export interface PublishDeps {
  logger: Logger;
  clock: Clock;
  workerUrl: URL;
  stdout: (line: string) => void;
  stderr: (line: string) => void;
  progress?: ProgressSink | undefined;
}

export interface Published {
  dir: string;
  manifest: Manifest;
  fingerprint: string;
}

const HOUR = 3_600_000;

/** "36h" or "30d" in milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d{1,6})([hd])$/.exec(text.trim());
  if (!m?.[1] || Number(m[1]) === 0) throw new ReleaseError(`invalid duration "${text}": a positive number of hours or days, e.g. 36h or 30d`);
  return Number(m[1]) * (m[2] === 'd' ? 24 * HOUR : HOUR);
}

async function prepareOut(out: string): Promise<string> {
  const entries = await readdir(out).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw new ReleaseError(`--out ${out}: ${err.message}`);
  });
  // Never mix into an existing release: stale artifacts would sit next to a new manifest.
  if (entries.length > 0) throw new ReleaseError(`--out ${out} is not empty; publish each release into a new directory`);
  await mkdir(dirname(out), { recursive: true });
  // Built next to the target and renamed at the end, so a server already pointed at `out`
  // never serves a half-written release (and a failed publish leaves nothing behind).
  return mkdtemp(join(dirname(out), `.${basename(out)}.partial-`));
}

/** A file name that is valid inside the release (manifest.ts RelativePath). */
function releaseName(file: string): string {
  return basename(file).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\./, '_');
}

const artifact = (url: string, h: HashedFile): Artifact => ({ url, size: h.size, sha256: h.sha256 });

/**
 * Copies the validation images and labels each with the top-1 class of the model being
 * published, run through the daemon's own code path (preprocessing + inference worker, CPU).
 * On the device, "agreement" then is a self-consistency check: the downloaded model, its
 * execution provider (TensorRT/CUDA/CPU, maybe fp16) and its preprocessing must reproduce what
 * the publisher saw. That is exactly what catches a corrupt download, a broken EP or wrong
 * preprocessing, which a hand-written ground truth could not separate from plain model error.
 */
async function labelValidationImages(
  opts: PublishOptions,
  deps: PublishDeps,
  stage: string,
  spec: PreprocessSpec,
): Promise<{ artifacts: Artifact[]; entries: { file: string; expected_index: number }[] }> {
  const files = await expandImagePaths([opts.validationDir!]).catch((err: Error) => {
    throw new ReleaseError(`--validation: ${err.message}`);
  });
  if (files.length === 0) throw new ReleaseError(`--validation ${opts.validationDir}: no image files`);
  await mkdir(join(stage, RELEASE_FILES.validationDir));
  const classifier = new Classifier({
    logger: deps.logger,
    clock: deps.clock,
    workerUrl: deps.workerUrl,
    config: {
      modelPath: opts.model,
      labelsPath: opts.labels,
      preprocess: spec,
      output: 'auto',
      providers: ['cpu'],
      intraOpThreads: 0,
      deviceId: 0,
    },
  });
  await classifier.start();
  const artifacts: Artifact[] = [];
  const entries: { file: string; expected_index: number }[] = [];
  try {
    for (const file of files) {
      const url = `${RELEASE_FILES.validationDir}/${releaseName(file)}`;
      if (entries.some((e) => e.file === url)) throw new ReleaseError(`validation images ${file} and another one both map to ${url}; rename one`);
      const tensor = await classifier.prepare(await readFile(file));
      const { top } = await classifier.classify(tensor, 2);
      const [best, second] = top;
      if (!best) throw new ReleaseError(`the model gave no score for ${file}`);
      // A near tie may flip on a device's different EP or precision: flag it now.
      const margin = best.score - (second?.score ?? 0);
      deps.stdout(`  ${url} -> ${best.index} ${best.label} (${best.score.toFixed(3)})`);
      if (best.score < 0.5 || margin < 0.2) {
        deps.stderr(`warning: ${url} is ambiguous (top-1 ${best.score.toFixed(3)}, margin ${margin.toFixed(3)}): a device may disagree; consider another image`);
      }
      artifacts.push(artifact(url, await hashFile(file, { copyTo: join(stage, url), ...progressOpts(deps) })));
      entries.push({ file: url, expected_index: best.index });
    }
  } finally {
    await classifier.stop();
  }
  return { artifacts, entries };
}

function progressOpts(deps: PublishDeps): { progress?: ProgressSink } {
  return deps.progress ? { progress: deps.progress } : {};
}

function checkOptions(opts: PublishOptions): void {
  for (const [flag, v] of [['--version', opts.version], ['--min-daemon-version', opts.minDaemonVersion]] as const) {
    try {
      parseVersion(v);
    } catch (err) {
      throw new ReleaseError(`${flag}: ${(err as Error).message}`);
    }
  }
  if (!(opts.rolloutPercent >= 0 && opts.rolloutPercent <= 100)) throw new ReleaseError('--rollout-percent must be between 0 and 100');
  if (opts.modelUrl !== undefined) {
    const url = ArtifactSchema.shape.url.safeParse(opts.modelUrl);
    if (!url.success || !/^https?:\/\//i.test(opts.modelUrl)) throw new ReleaseError(`--model-url must be an absolute http(s) URL, not ${opts.modelUrl}`);
  }
}

export async function publishRelease(opts: PublishOptions, deps: PublishDeps): Promise<Published> {
  checkOptions(opts);
  // Fails on a bad key before any heavy work.
  const fingerprint = keyFingerprint(publicKeyFromPrivate(opts.privateKeyPem));
  const labels = await loadLabels(opts.labels);
  const io = await readModelIo(opts.model);
  let spec: PreprocessSpec;
  try {
    spec = resolvePreprocess(opts.preset, opts.preprocess);
  } catch (err) {
    throw new ReleaseError((err as Error).message);
  }
  const modelIo = describeModelIo(io, spec, labels.length);

  const out = resolve(opts.out);
  const stage = await prepareOut(out);
  try {
    const progress = progressOpts(deps);
    const model = await hashFile(opts.model, { ...progress, ...(opts.modelUrl ? {} : { copyTo: join(stage, RELEASE_FILES.model) }) });
    const labelsFile = await hashFile(opts.labels, { ...progress, copyTo: join(stage, RELEASE_FILES.labels) });
    const validation = opts.validationDir ? await labelValidationImages(opts, deps, stage, spec) : undefined;

    const modelJson: ModelJsonInput = {
      schema: SCHEMA_VERSION,
      preset: opts.preset,
      ...(opts.preprocess && Object.keys(opts.preprocess).length > 0 ? { preprocess: opts.preprocess } : {}),
      ...modelIo,
      validation: validation?.entries ?? [],
    };
    await writeFile(join(stage, RELEASE_FILES.modelJson), `${JSON.stringify(ModelJsonSchema.parse(modelJson), null, 2)}\n`);
    const modelJsonFile = await hashFile(join(stage, RELEASE_FILES.modelJson));

    const now = deps.clock.now();
    const manifest = ManifestSchema.parse({
      schema: SCHEMA_VERSION,
      channel: opts.channel,
      version: opts.version,
      created: new Date(now).toISOString(),
      expires: new Date(now + opts.expiresInMs).toISOString(),
      min_daemon_version: opts.minDaemonVersion,
      rollback: opts.rollback,
      rollout: { percent: opts.rolloutPercent, ...(opts.rolloutSalt ? { salt: opts.rolloutSalt } : {}) },
      artifacts: {
        model: artifact(opts.modelUrl ?? RELEASE_FILES.model, model),
        labels: artifact(RELEASE_FILES.labels, labelsFile),
        model_json: artifact(RELEASE_FILES.modelJson, modelJsonFile),
        ...(validation ? { validation: validation.artifacts } : {}),
      },
    });
    // These bytes are what gets signed and served; nobody re-serializes them afterwards.
    const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
    await writeFile(join(stage, MANIFEST_FILE), bytes);
    await writeFile(join(stage, SIGNATURE_FILE), signManifest(bytes, opts.privateKeyPem));

    await rmdir(out).catch(() => undefined); // the empty directory prepareOut accepted, if any
    await rename(stage, out);
    deps.stdout(`release ${manifest.version} (channel ${manifest.channel}, rollout ${manifest.rollout.percent}%) written to ${out}`);
    deps.stdout(`signed with key ${fingerprint}; expires ${manifest.expires}`);
    return { dir: out, manifest, fingerprint };
  } catch (err) {
    await rm(stage, { recursive: true, force: true });
    throw err;
  }
}
