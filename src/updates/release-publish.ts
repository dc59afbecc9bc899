import { mkdir, mkdtemp, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { PreprocessSpec, PresetName } from '../config/schema.js';
import { Classifier } from '../inference/classifier.js';
import { loadLabels } from '../vision/labels.js';
import { resolvePreprocess } from '../vision/presets.js';
import { expandImagePaths } from '../vision/image-files.js';
import { hashFile, type HashedFile, type ProgressSink } from './hash-file.js';
import { describeModelIo, readModelIo } from './model-meta.js';
import { ArtifactSchema, ManifestSchema, MANIFEST_FILE, ModelJsonSchema, RELEASE_FILES, SCHEMA_VERSION, SIGNATURE_FILE, type Artifact, type Manifest, type ModelJsonInput } from './manifest.js';
import { publicKeyFromPrivate, keyFingerprint, signManifest } from './signing.js';
import { parseVersion } from './version.js';
import { currentPlatform } from './platform.js';
import { isConfident, REFERENCE_TOP_K } from './validation-gate.js';

type ValidationEntry = ModelJsonInput['validation'] extends (infer E)[] | undefined ? E : never;

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
  /** Images to ship as validation/; their reference outputs come from the model (see below). */
  validationDir?: string | undefined;
  /** `file<TAB>label name[|name...]` per line: what a person says the validation images show. */
  truthFile?: string | undefined;
  /** With truth labels: refuse to publish below this accuracy (a labels file out of the model's order). */
  minAccuracy?: number | undefined;
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
 * Copies the validation images and records, for each, the top-K probabilities of the model being
 * published, run through the daemon's own code path (preprocessing + inference worker, CPU), and
 * the truth labels when given. On the device, the reference is a self-consistency check: the
 * downloaded model, its execution provider and its preprocessing must reproduce what the
 * publisher saw, within the tolerance of another CPU's int8 kernels (validation-gate.ts). The
 * truth labels, by name, catch what self-consistency cannot: a labels file out of the model's
 * order, or a model broken before it was published.
 */
async function labelValidationImages(
  opts: PublishOptions,
  deps: PublishDeps,
  stage: string,
  spec: PreprocessSpec,
): Promise<{ artifacts: Artifact[]; entries: ValidationEntry[] }> {
  const files = await expandImagePaths([opts.validationDir!]).catch((err: Error) => {
    throw new ReleaseError(`--validation: ${err.message}`);
  });
  if (files.length === 0) throw new ReleaseError(`--validation ${opts.validationDir}: no image files`);
  const labels = await loadLabels(opts.labels);
  const truth = opts.truthFile ? await readTruth(opts.truthFile, new Set(labels)) : undefined;
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
  const entries: ValidationEntry[] = [];
  try {
    for (const file of files) {
      const url = `${RELEASE_FILES.validationDir}/${releaseName(file)}`;
      if (entries.some((e) => e.file === url)) throw new ReleaseError(`validation images ${file} and another one both map to ${url}; rename one`);
      const tensor = await classifier.prepare(await readFile(file));
      const { top } = await classifier.classify(tensor, REFERENCE_TOP_K);
      const best = top[0];
      if (!best || !top.every((t) => Number.isFinite(t.score))) throw new ReleaseError(`the model gave no finite scores for ${file}: broken weights or preprocessing`);
      const ref = top.map((t) => ({ index: t.index, p: Math.round(t.score * 1e5) / 1e5 }));
      const accepted = truth?.get(basename(file));
      if (truth && !accepted) throw new ReleaseError(`--truth ${opts.truthFile} has no line for ${basename(file)}`);
      // Near ties may flip on another CPU's int8 kernels; the device compares them by distance only.
      const note = isConfident(ref) ? '' : ' (not confident: compared by distance only)';
      const mark = accepted ? (accepted.includes(best.label) ? ' ok' : ` WRONG, truth ${accepted.join(' | ')}`) : '';
      deps.stdout(`  ${url} -> ${best.index} ${best.label} (${best.score.toFixed(3)})${note}${mark}`);
      artifacts.push(artifact(url, await hashFile(file, { copyTo: join(stage, url), ...progressOpts(deps) })));
      entries.push({ file: url, expected_index: best.index, top: ref, ...(accepted ? { truth: accepted } : {}) });
    }
  } finally {
    await classifier.stop();
  }
  if (truth) {
    const correct = entries.filter((e) => e.truth!.includes(labels[e.expected_index] ?? '')).length;
    const min = opts.minAccuracy ?? 0.5;
    deps.stdout(`accuracy on the labelled validation images: ${correct}/${entries.length}`);
    if (correct < min * entries.length) {
      throw new ReleaseError(
        `accuracy ${correct}/${entries.length} on the labelled validation images is below ${Math.round(min * 100)}%: is the labels file in the order of the model's outputs? (--min-accuracy to change the bound)`,
      );
    }
  }
  return { artifacts, entries };
}

/** `file<TAB>name[|name...]`; blank lines and `#` comments skipped; every name must be a label. */
async function readTruth(path: string, known: ReadonlySet<string>): Promise<Map<string, string[]>> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new ReleaseError(`--truth ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  const out = new Map<string, string[]>();
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const [file, names] = line.split('\t');
    const accepted = (names ?? '').split('|').map((n) => n.trim()).filter(Boolean);
    if (!file || accepted.length === 0) throw new ReleaseError(`--truth ${path} line ${i + 1}: expected "file<TAB>label name[|name...]", got "${line}"`);
    const unknown = accepted.find((n) => !known.has(n));
    if (unknown) throw new ReleaseError(`--truth ${path} line ${i + 1}: "${unknown}" is not a label of the labels file`);
    out.set(basename(file.trim()), accepted);
  });
  return out;
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
      ...(validation ? { reference: { ...currentPlatform(), provider: 'cpu' } } : {}),
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
