import { z } from 'zod';
import { PreprocessSchema, PresetName } from '../config/schema.js';
import { isVersion } from './version.js';
import { isValidVersionName, MAX_VERSION_LENGTH } from './model-dirs.js';

/**
 * The release format, version 1: `manifest.json` (signed, see signing.ts) lists the artifacts,
 * `model.json` describes the model. Both are parsed only after the signature verified.
 *
 * Unknown fields are stripped, not refused: a newer publisher may add optional fields without
 * breaking older devices; anything an older device must not ignore bumps `schema` instead.
 */

export const SCHEMA_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const SIGNATURE_FILE = 'manifest.json.sig';
/** Where the publisher puts the artifacts inside a release directory. */
export const RELEASE_FILES = { model: 'model.onnx', labels: 'labels.txt', modelJson: 'model.json', validationDir: 'validation' } as const;

/**
 * A path inside the release: segments of letters, digits, `.`, `_` and `-`, none starting with
 * a dot. That rules out `..`, `.`, hidden files, absolute paths, backslashes, `%`-escapes,
 * queries and fragments, so resolving it against the manifest URL (or joining it to a local
 * directory) can never leave the release.
 */
export const RelativePath = z
  .string()
  .max(255)
  .regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/, 'a relative path inside the release (no "..", no leading "/" or ".")');

/**
 * Absolute http(s) URLs are allowed too: a release may point at a model hosted elsewhere (the
 * README's example pins the ONNX Model Zoo ResNet50 int8 by URL). That costs no integrity, since
 * the signed manifest pins size and sha256 and the device checks both before using a byte;
 * plain http is therefore as safe as https for content (it only reveals what is downloaded).
 */
const AbsoluteUrl = z.string().max(2048).refine((s) => {
  if (!/^https?:\/\/[^/]/i.test(s)) return false;
  try {
    const u = new URL(s);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}, 'an absolute http(s) URL without credentials');

export function isAbsoluteUrl(url: string): boolean {
  return /^https?:\/\//i.test(url);
}

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits');

export const ArtifactSchema = z.object({
  url: z.union([RelativePath, AbsoluteUrl], { error: 'a relative path inside the release or an absolute http(s) URL' }),
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  sha256: Sha256,
});
export type Artifact = z.infer<typeof ArtifactSchema>;

/**
 * A release version: the grammar of version.ts, and a name the model store can hold
 * (model-dirs.ts: at most MAX_VERSION_LENGTH characters). One rule for both, so that a signed
 * release the store would refuse at install time is refused here, before anything is downloaded.
 */
export const VersionString = z.string().superRefine((s, ctx) => {
  if (!isVersion(s)) ctx.addIssue({ code: 'custom', message: 'a version like 1.2.3 or 2026.11.26-1 (see version.ts)' });
  else if (!isValidVersionName(s)) ctx.addIssue({ code: 'custom', message: `${s.length} characters, over the ${MAX_VERSION_LENGTH} the model store holds` });
});
export const ChannelName = z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, 'letters, digits, ".", "_" and "-"');
const Timestamp = z.iso.datetime({ offset: true });

export const ManifestSchema = z
  .object({
    schema: z.literal(SCHEMA_VERSION),
    channel: ChannelName,
    version: VersionString,
    created: Timestamp,
    expires: Timestamp,
    min_daemon_version: VersionString,
    /** Signed intent: this release may replace a newer installed version. */
    rollback: z.boolean().default(false),
    rollout: z
      .object({
        percent: z.number().min(0).max(100),
        salt: z.string().min(1).max(200).optional(),
      })
      .default({ percent: 100 }),
    artifacts: z.object({
      model: ArtifactSchema,
      labels: ArtifactSchema,
      model_json: ArtifactSchema,
      // Relative only: model.json names validation images by their path inside the release.
      validation: z.array(ArtifactSchema.extend({ url: RelativePath })).optional(),
    }),
  })
  .superRefine((m, ctx) => {
    if (Date.parse(m.expires) <= Date.parse(m.created)) {
      ctx.addIssue({ code: 'custom', path: ['expires'], message: 'must be after created' });
    }
    const all = [m.artifacts.model, m.artifacts.labels, m.artifacts.model_json, ...(m.artifacts.validation ?? [])];
    const seen = new Set<string>([MANIFEST_FILE, SIGNATURE_FILE]);
    for (const a of all) {
      if (isAbsoluteUrl(a.url)) continue;
      if (seen.has(a.url)) ctx.addIssue({ code: 'custom', path: ['artifacts'], message: `"${a.url}" is used twice (or names the manifest)` });
      seen.add(a.url);
    }
  });
export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestInput = z.input<typeof ManifestSchema>;

export const ModelJsonSchema = z
  .object({
    schema: z.literal(SCHEMA_VERSION),
    preset: PresetName,
    preprocess: PreprocessSchema.partial().optional().describe('overrides single fields of the preset'),
    input: z.object({
      name: z.string().optional(),
      // The element types the device's preprocessing can produce.
      type: z.enum(['float32', 'float16', 'uint8']),
      shape: z.array(z.union([z.number().int(), z.string()])).length(4),
    }),
    output: z.object({
      name: z.string().optional(),
      classes: z.number().int().min(1),
    }),
    validation: z
      .array(
        z.object({
          file: RelativePath,
          /** The publisher's top-1 (the only field of releases before reference vectors). */
          expected_index: z.number().int().min(0),
          /** The publisher's top-K probabilities, best first (validation-gate.ts). */
          top: z
            .array(z.object({ index: z.number().int().min(0), p: z.number().min(0).max(1) }))
            .min(1)
            .max(100)
            .optional(),
          /** Label names a person accepts for the image: matched by name, so shuffled labels fail. */
          truth: z.array(z.string().min(1).max(500)).min(1).max(50).optional(),
        }),
      )
      .max(10_000)
      .default([]),
    /** Where the reference was computed: shown when a device disagrees. */
    reference: z
      .object({
        arch: z.string().max(40),
        cpu: z.string().max(200),
        kernels: z.string().max(100),
        onnxruntime: z.string().max(40),
        provider: z.string().max(40),
      })
      .partial()
      .optional(),
  })
  .superRefine((m, ctx) => {
    m.validation.forEach((v, i) => {
      if (v.expected_index >= m.output.classes) {
        ctx.addIssue({ code: 'custom', path: ['validation', i, 'expected_index'], message: `must be below output.classes (${m.output.classes})` });
      }
      v.top?.forEach((t, k) => {
        if (t.index >= m.output.classes) ctx.addIssue({ code: 'custom', path: ['validation', i, 'top', k, 'index'], message: `must be below output.classes (${m.output.classes})` });
      });
    });
  });
export type ModelJson = z.infer<typeof ModelJsonSchema>;
export type ModelJsonInput = z.input<typeof ModelJsonSchema>;

/** "path.to[0].field: message; ..." for one-line error reports. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = i.path.map((p, k) => (typeof p === 'number' ? `[${p}]` : `${k > 0 ? '.' : ''}${String(p)}`)).join('');
      return path ? `${path}: ${i.message}` : i.message;
    })
    .join('; ');
}

/**
 * Where the signature of the manifest at `manifestUrl` is: `.sig` appended to the path, the
 * query kept (`.../manifest.json?token=x` -> `.../manifest.json.sig?token=x`), so that token and
 * pre-signed-style URLs reach the signature with the same credentials. A fragment is dropped
 * (it is never sent anyway).
 */
export function signatureUrl(manifestUrl: string): string {
  const u = new URL(manifestUrl);
  u.pathname = `${u.pathname}.sig`;
  u.hash = '';
  return u.href;
}

/**
 * Where to download an artifact. Absolute URLs are used as they are (they carry their own
 * query, if any). Relative ones are resolved next to the manifest, and inherit the manifest
 * URL's query: a device configured with `.../stable/manifest.json?token=x` fetches
 * `.../stable/model.onnx?token=x`. That is what a token-protected server expects; object stores
 * whose pre-signed URLs sign one object each need absolute artifact URLs instead (see
 * docs/updates.md). Relative artifact URLs cannot have a query of their own (RelativePath).
 */
export function resolveArtifactUrl(manifestUrl: string, artifactUrl: string): string {
  if (isAbsoluteUrl(artifactUrl)) return new URL(artifactUrl).href;
  const base = new URL(manifestUrl);
  const u = new URL(artifactUrl, base);
  u.search = base.search;
  u.hash = '';
  return u.href;
}
