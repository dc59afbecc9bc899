import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../core/clock.js';
import { parseLabels } from '../vision/labels.js';
import { hashFile, type ProgressSink } from './hash-file.js';
import { modelJsonProblems, readModelIo } from './model-meta.js';
import {
  describeIssues,
  isAbsoluteUrl,
  ManifestSchema,
  MANIFEST_FILE,
  ModelJsonSchema,
  SCHEMA_VERSION,
  SIGNATURE_FILE,
  type Artifact,
  type Manifest,
  type ModelJson,
} from './manifest.js';
import { verifyManifest, type VerifiedBy } from './signing.js';

/**
 * Checks a release directory the way a device would, plus what a device only finds out later:
 * signature, schema, expiry, every local artifact's size and sha256, and model.json against the
 * labels and the model itself. Prints each check; throws VerifyError listing every failure.
 */

export class VerifyError extends Error {
  override name = 'VerifyError';
}

export interface VerifyDeps {
  clock: Clock;
  stdout: (line: string) => void;
  progress?: ProgressSink | undefined;
}

export interface Verified {
  manifest: Manifest;
  modelJson: ModelJson | undefined;
  verifiedBy: VerifiedBy;
}

async function readOrFail(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new VerifyError(e.code === 'ENOENT' ? `${what} missing: ${path}` : `${what}: ${e.message}`);
  }
}

/** Checks one artifact; returns its local path when it is present and intact. */
async function checkArtifact(dir: string, name: string, a: Artifact, deps: VerifyDeps, problems: string[]): Promise<string | undefined> {
  if (isAbsoluteUrl(a.url)) {
    deps.stdout(`  ${name}: ${a.url} not checked here (absolute URL; devices check size and sha256 after download)`);
    return undefined;
  }
  const path = join(dir, a.url);
  const size = await stat(path).then(
    (s) => (s.isFile() ? s.size : undefined),
    () => undefined,
  );
  if (size === undefined) {
    problems.push(`artifact ${a.url} (${name}) is missing`);
    return undefined;
  }
  // Size first: cheap, and a truncated download is the commonest failure.
  if (size !== a.size) {
    problems.push(`artifact ${a.url} (${name}) has ${size} bytes, the manifest says ${a.size}`);
    return undefined;
  }
  const { sha256 } = await hashFile(path, deps.progress ? { progress: deps.progress } : {});
  if (sha256 !== a.sha256) {
    problems.push(`artifact ${a.url} (${name}) has sha256 ${sha256}, the manifest says ${a.sha256}`);
    return undefined;
  }
  deps.stdout(`  ${name}: ${a.url} ${a.size} bytes, sha256 ok`);
  return path;
}

function parseManifest(bytes: Buffer): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new VerifyError(`${MANIFEST_FILE} is not JSON: ${(err as Error).message}`);
  }
  const schema = (json as { schema?: unknown } | null)?.schema;
  if (schema !== SCHEMA_VERSION) throw new VerifyError(`unsupported manifest schema ${JSON.stringify(schema) ?? '(none)'}; expected ${SCHEMA_VERSION}`);
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) throw new VerifyError(`invalid ${MANIFEST_FILE}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

async function checkModelJson(
  m: Manifest,
  paths: { modelJson?: string | undefined; labels?: string | undefined; model?: string | undefined },
  deps: VerifyDeps,
  problems: string[],
): Promise<ModelJson | undefined> {
  // Only files whose hash checked out are read: nothing unverified is parsed.
  if (!paths.modelJson) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(await readFile(paths.modelJson, 'utf8'));
  } catch (err) {
    problems.push(`model.json is not JSON: ${(err as Error).message}`);
    return undefined;
  }
  const parsed = ModelJsonSchema.safeParse(json);
  if (!parsed.success) {
    problems.push(`invalid model.json: ${describeIssues(parsed.error)}`);
    return undefined;
  }
  const modelJson = parsed.data;
  const before = problems.length;
  const declared = new Set(modelJson.validation.map((v) => v.file));
  const shipped = new Set((m.artifacts.validation ?? []).map((a) => a.url));
  for (const f of declared) if (!shipped.has(f)) problems.push(`model.json validation image ${f} is not in the manifest`);
  for (const f of shipped) if (!declared.has(f)) problems.push(`manifest validation artifact ${f} has no expected label in model.json`);
  if (paths.labels) {
    const labelCount = parseLabels(await readFile(paths.labels, 'utf8')).length;
    const io = paths.model
      ? await readModelIo(paths.model).catch((err: Error) => void problems.push(`model.onnx: ${err.message}`))
      : undefined;
    problems.push(...modelJsonProblems(modelJson, labelCount, io ?? undefined));
    if (!io) deps.stdout('  model.json: the model itself not checked (remote, or failed above); checked against the labels');
  }
  if (problems.length === before) {
    deps.stdout(
      `  model.json: preset ${modelJson.preset}, input ${modelJson.input.type} [${modelJson.input.shape.join(',')}], ` +
        `${modelJson.output.classes} classes, ${modelJson.validation.length} validation images: consistent`,
    );
  }
  return modelJson;
}

export async function verifyRelease(dir: string, trustedPublicPems: readonly string[], deps: VerifyDeps): Promise<Verified> {
  const bytes = await readOrFail(join(dir, MANIFEST_FILE), MANIFEST_FILE);
  const sig = await readOrFail(join(dir, SIGNATURE_FILE), SIGNATURE_FILE);
  let verifiedBy: VerifiedBy;
  try {
    verifiedBy = verifyManifest(bytes, sig, trustedPublicPems);
  } catch (err) {
    // Nothing in an unverified manifest is looked at, not even for the error message.
    throw new VerifyError(`signature: ${(err as Error).message}`);
  }
  deps.stdout(`signature: ok (key ${verifiedBy.fingerprint}, trusted key #${verifiedBy.index + 1})`);

  const m = parseManifest(bytes);
  const problems: string[] = [];
  const now = deps.clock.now();
  const expires = Date.parse(m.expires);
  if (now >= expires) problems.push(`manifest expired at ${m.expires}`);
  deps.stdout(
    `manifest: version ${m.version}, channel ${m.channel}, created ${m.created}, expires ${m.expires}` +
      `${now < expires ? ` (in ${((expires - now) / 86_400_000).toFixed(1)} days)` : ' (EXPIRED)'}, ` +
      `min daemon ${m.min_daemon_version}, rollout ${m.rollout.percent}%${m.rollout.salt ? ` (salt ${m.rollout.salt})` : ''}` +
      `${m.rollback ? ', rollback release' : ''}`,
  );

  deps.stdout('artifacts:');
  const a = m.artifacts;
  const model = await checkArtifact(dir, 'model', a.model, deps, problems);
  const labels = await checkArtifact(dir, 'labels', a.labels, deps, problems);
  const modelJsonPath = await checkArtifact(dir, 'model_json', a.model_json, deps, problems);
  for (const [i, v] of (a.validation ?? []).entries()) await checkArtifact(dir, `validation[${i}]`, v, deps, problems);
  const modelJson = await checkModelJson(m, { modelJson: modelJsonPath, labels, model }, deps, problems);

  if (problems.length > 0) throw new VerifyError(problems.join('\n'));
  deps.stdout(`OK: release ${m.version} in ${dir} verified`);
  return { manifest: m, modelJson, verifiedBy };
}
