import { describe, expect, it } from 'vitest';
import { ManifestSchema, ModelJsonSchema, describeIssues, resolveArtifactUrl, signatureUrl, type ManifestInput } from '../../src/updates/manifest.js';
import { isValidVersionName, MAX_VERSION_LENGTH } from '../../src/updates/model-dirs.js';
import { compareVersions, daemonSatisfies, isNewer, isVersion } from '../../src/updates/version.js';
import { inRollout, rolloutBucket } from '../../src/updates/rollout.js';
import { checkManifest, type CheckContext } from '../../src/updates/manifest-check.js';

const sha = 'a'.repeat(64);
/** A valid release version of exactly `n` characters: 1.1.1... (11.1.1... for even n). */
const versionOf = (n: number): string => {
  let s = n % 2 === 0 ? '11' : '1';
  while (s.length < n) s += '.1';
  return s;
};
const art = (url: string, size = 10): { url: string; size: number; sha256: string } => ({ url, size, sha256: sha });

function manifest(over: Partial<ManifestInput> = {}): ManifestInput {
  return {
    schema: 1,
    channel: 'stable',
    version: '1.2.3',
    created: '2026-01-01T00:00:00.000Z',
    expires: '2026-02-01T00:00:00.000Z',
    min_daemon_version: '0.1.0',
    rollback: false,
    rollout: { percent: 100 },
    artifacts: { model: art('model.onnx'), labels: art('labels.txt'), model_json: art('model.json') },
    ...over,
  };
}

describe('manifest schema', () => {
  it('accepts a full manifest, with defaults for rollback and rollout', () => {
    const m = ManifestSchema.parse({ ...manifest(), rollback: undefined, rollout: undefined });
    expect(m.rollback).toBe(false);
    expect(m.rollout).toEqual({ percent: 100 });
    expect(ManifestSchema.safeParse(manifest({ artifacts: { ...manifest().artifacts, validation: [art('validation/red.jpg')] } })).success).toBe(true);
  });

  it('accepts relative paths and absolute http(s) URLs, refuses anything that can leave the release', () => {
    const ok = ['model.onnx', 'v2/model-int8.onnx', 'https://github.com/onnx/models/raw/main/resnet50-v1-12-int8.onnx', 'http://mirror.local/m.onnx'];
    const bad = ['../model.onnx', 'a/../../etc/passwd', '/etc/passwd', './model.onnx', '.hidden', 'a//b', 'a\\b', 'm%2e%2e', 'file:///etc/passwd',
      '//evil.example/m.onnx', 'ftp://x/m.onnx', 'https://user:pw@host/m.onnx', 'm.onnx?x=1', ''];
    for (const url of ok) expect(ManifestSchema.safeParse(manifest({ artifacts: { ...manifest().artifacts, model: art(url) } })).success, url).toBe(true);
    for (const url of bad) expect(ManifestSchema.safeParse(manifest({ artifacts: { ...manifest().artifacts, model: art(url) } })).success, url).toBe(false);
    // Validation images are named by path in model.json: relative only.
    const remoteValidation = manifest({ artifacts: { ...manifest().artifacts, validation: [art('https://x.example/a.jpg')] } });
    expect(ManifestSchema.safeParse(remoteValidation).success).toBe(false);
  });

  it('names what is wrong', () => {
    const r = ManifestSchema.safeParse(manifest({ version: 'v1', expires: '2025-01-01T00:00:00Z', rollout: { percent: 120 } }));
    expect(r.success).toBe(false);
    const text = describeIssues(r.error!);
    expect(text).toMatch(/version: /);
    expect(text).toMatch(/rollout\.percent: /);
    const dup = ManifestSchema.safeParse(manifest({ artifacts: { model: art('x.bin'), labels: art('x.bin'), model_json: art('model.json') } }));
    expect(describeIssues(dup.error!)).toMatch(/"x.bin" is used twice/);
    const ordered = ManifestSchema.safeParse(manifest({ expires: '2025-12-31T00:00:00Z' }));
    expect(describeIssues(ordered.error!)).toMatch(/expires: must be after created/);
    expect(ManifestSchema.safeParse(manifest({ artifacts: { ...manifest().artifacts, labels: { url: 'l.txt', size: 1, sha256: 'ABC' } } })).success).toBe(false);
  });

  it('resolves relative artifacts next to the manifest, absolute ones as they are', () => {
    expect(resolveArtifactUrl('https://cdn.example/stable/manifest.json', 'validation/a.jpg')).toBe('https://cdn.example/stable/validation/a.jpg');
    expect(resolveArtifactUrl('https://cdn.example/stable/manifest.json', 'https://zoo.example/m.onnx')).toBe('https://zoo.example/m.onnx');
  });

  it('keeps the manifest URL\'s query: the signature gets .sig on its path, relative artifacts inherit the query', () => {
    const url = 'https://cdn.example/stable/manifest.json?token=x&exp=1700000000';
    expect(signatureUrl(url)).toBe('https://cdn.example/stable/manifest.json.sig?token=x&exp=1700000000');
    expect(signatureUrl('https://cdn.example/stable/manifest.json')).toBe('https://cdn.example/stable/manifest.json.sig');
    expect(signatureUrl('https://u:p@cdn.example/m.json?a=%20b#frag')).toBe('https://u:p@cdn.example/m.json.sig?a=%20b');
    expect(resolveArtifactUrl(url, 'model.onnx')).toBe('https://cdn.example/stable/model.onnx?token=x&exp=1700000000');
    expect(resolveArtifactUrl(url, 'validation/red.jpg')).toBe('https://cdn.example/stable/validation/red.jpg?token=x&exp=1700000000');
    // Absolute URLs carry their own query, or none: the manifest's token is not sent to another host.
    expect(resolveArtifactUrl(url, 'https://zoo.example/m.onnx')).toBe('https://zoo.example/m.onnx');
    expect(resolveArtifactUrl(url, 'https://store.example/m.onnx?X-Sig=abc')).toBe('https://store.example/m.onnx?X-Sig=abc');
    expect(resolveArtifactUrl('https://u:p@cdn.example/s/manifest.json', 'model.onnx')).toBe('https://u:p@cdn.example/s/model.onnx');
  });

  it('accepts only versions the model store can hold (one rule: model-dirs.ts)', () => {
    const longest = versionOf(MAX_VERSION_LENGTH);
    expect(longest).toMatch(/^11(\.1)+$/);
    expect(longest).toHaveLength(MAX_VERSION_LENGTH);
    expect(isValidVersionName(longest)).toBe(true);
    expect(ManifestSchema.safeParse(manifest({ version: longest })).success).toBe(true);
    const over = versionOf(MAX_VERSION_LENGTH + 1);
    const r = ManifestSchema.safeParse(manifest({ version: over }));
    expect(r.success).toBe(false);
    expect(describeIssues(r.error!)).toBe(`version: ${MAX_VERSION_LENGTH + 1} characters, over the ${MAX_VERSION_LENGTH} the model store holds`);
    expect(isValidVersionName(over)).toBe(false);
    expect(isVersion(over)).toBe(true); // the grammar alone would take it
  });

  it('model.json: preset, partial preprocessing, 4-D input, classes and validation indices', () => {
    const base = {
      schema: 1,
      preset: 'imagenet',
      preprocess: { size: 192 },
      input: { name: 'input', type: 'float32', shape: ['batch', 3, 192, 192] },
      output: { classes: 8 },
      validation: [{ file: 'validation/red.jpg', expected_index: 7 }],
    };
    expect(ModelJsonSchema.parse(base).validation).toHaveLength(1);
    expect(ModelJsonSchema.parse({ ...base, validation: undefined }).validation).toEqual([]);
    const bad = ModelJsonSchema.safeParse({ ...base, validation: [{ file: '../x.jpg', expected_index: 8 }], preprocess: { size: 1 } });
    const text = describeIssues(bad.error!);
    expect(text).toMatch(/validation\[0\]\.file/);
    expect(text).toMatch(/preprocess\.size/);
    expect(ModelJsonSchema.safeParse({ ...base, input: { type: 'int64', shape: [1, 3, 224, 224] } }).success).toBe(false);
    const idx = ModelJsonSchema.safeParse({ ...base, validation: [{ file: 'validation/x.jpg', expected_index: 8 }] });
    expect(describeIssues(idx.error!)).toMatch(/validation\[0\]\.expected_index: must be below output.classes \(8\)/);
  });
});

describe('version ordering', () => {
  it('is numeric per component, a missing component is 0, then the -N counter', () => {
    const ascending = ['0.9', '1', '1.0.1', '1.2.3', '1.2.10', '1.10.0', '2', '2026.1.5', '2026.11.26', '2026.11.26-1', '2026.11.26-2', '2026.11.26-10', '2026.11.27'];
    for (let i = 0; i + 1 < ascending.length; i++) {
      expect(compareVersions(ascending[i]!, ascending[i + 1]!), `${ascending[i]} < ${ascending[i + 1]}`).toBe(-1);
      expect(isNewer(ascending[i + 1]!, ascending[i]!)).toBe(true);
      expect(isNewer(ascending[i]!, ascending[i + 1]!)).toBe(false);
    }
    expect(compareVersions('1.2', '1.2.0')).toBe(0);
    expect(compareVersions('2026.01.05', '2026.1.5')).toBe(0);
    expect(isNewer('1.2.3', '1.2.3')).toBe(false);
  });

  it('refuses pre-release tags, build metadata and other shapes', () => {
    for (const v of ['1.2.3-rc.1', '1.2.3+abc', 'v1.2.3', '1..2', '', '1.2.', 'latest', '1.2.3-1-2', '1234567890123456']) {
      expect(isVersion(v), v).toBe(false);
      expect(() => compareVersions(v, '1')).toThrow(/invalid version/);
    }
  });

  it('checks the daemon against min_daemon_version; a daemon pre-release is below its release', () => {
    expect(daemonSatisfies('0.1.0', '0.1.0')).toBe(true);
    expect(daemonSatisfies('0.2.0', '0.1.9')).toBe(true);
    expect(daemonSatisfies('0.1.0', '0.2.0')).toBe(false);
    expect(daemonSatisfies('0.2.0-beta.1', '0.2.0')).toBe(false);
    expect(daemonSatisfies('0.2.0-beta.1', '0.1.5')).toBe(true);
    expect(daemonSatisfies('0.2.0+build.7', '0.2.0')).toBe(true);
    expect(() => daemonSatisfies('dev', '0.1.0')).toThrow(/invalid daemon version/);
  });
});

describe('staged rollout', () => {
  const ids = Array.from({ length: 1000 }, (_, i) => `device-${String(i).padStart(4, '0')}`);
  const release = { version: '2026.11.26-1' };

  it.each([0, 10, 25, 50, 90, 100])('includes %i%% of 1,000 simulated devices, within ±3 points', (percent) => {
    const share = (ids.filter((id) => inRollout(id, release, percent)).length / ids.length) * 100;
    expect(Math.abs(share - percent)).toBeLessThanOrEqual(3);
  });

  it('is stable per device and release, and raising the percent only adds devices', () => {
    const percents = [0, 1, 5, 10, 25, 50, 75, 90, 99, 100];
    for (const id of ids) {
      expect(rolloutBucket(id, release)).toBe(rolloutBucket(id, { ...release }));
      const included = percents.map((p) => inRollout(id, release, p));
      // Once in, in for every higher percent.
      expect(included.indexOf(true) === -1 || included.slice(included.indexOf(true)).every(Boolean)).toBe(true);
    }
  });

  it('picks a different cohort per version, the same one for a shared salt', () => {
    const cohort = (r: { version: string; salt?: string }): Set<string> => new Set(ids.filter((id) => inRollout(id, r, 10)));
    const a = cohort({ version: '1.0.0' });
    const b = cohort({ version: '1.0.1' });
    const overlap = [...a].filter((id) => b.has(id)).length;
    expect(overlap).toBeLessThan(a.size / 2); // independent draws overlap ~10%
    expect(cohort({ version: '1.0.0', salt: 'canary' })).toEqual(cohort({ version: '1.0.1', salt: 'canary' }));
  });
});

describe('checkManifest (after the signature verified)', () => {
  const now = Date.parse('2026-01-15T00:00:00Z');
  const ctx: CheckContext = { now, daemonVersion: '0.1.0', channel: 'stable', deviceId: 'device-0001', installedVersion: '1.2.0' };

  it('accepts a newer, current release for our channel', () => {
    const r = checkManifest(manifest(), ctx);
    expect(r.ok).toBe(true);
    expect(r.ok && r.manifest.version).toBe('1.2.3');
    expect(checkManifest(manifest(), { ...ctx, installedVersion: undefined }).ok).toBe(true);
    // A locally configured model's version (sha prefix) is not a release version: any release is an upgrade.
    expect(checkManifest(manifest(), { ...ctx, installedVersion: '3f2a9c1b7d4e' }).ok).toBe(true);
  });

  const cases: [string, unknown, Partial<CheckContext>, string, RegExp][] = [
    ['schema 2', { ...manifest(), schema: 2 }, {}, 'unsupported-schema', /unsupported manifest schema 2; this daemon reads schema 1/],
    ['no schema', { version: '1' }, {}, 'unsupported-schema', /unsupported manifest schema \(none\)/],
    ['not an object', 'hello', {}, 'unsupported-schema', /unsupported manifest schema/],
    ['broken field', { ...manifest(), version: 'latest' }, {}, 'invalid-manifest', /invalid manifest: version: /],
    ['version too long for the store', { ...manifest(), version: versionOf(129) }, {}, 'invalid-manifest', /invalid manifest: version: 129 characters, over the 128 the model store holds/],
    ['beta channel', manifest({ channel: 'beta' }), {}, 'wrong-channel', /for channel "beta", this device follows "stable"/],
    ['expired', manifest(), { now: Date.parse('2026-02-01T00:00:00Z') }, 'expired', /expired at 2026-02-01T00:00:00.000Z/],
    ['daemon too old', manifest({ min_daemon_version: '0.2.0' }), {}, 'daemon-too-old', /needs daemon 0.2.0 or newer; this is 0.1.0/],
    ['same version', manifest(), { installedVersion: '1.2.3' }, 'not-newer', /already installed/],
    ['older', manifest({ version: '1.1.0' }), {}, 'not-newer', /1.1.0 is not newer than the installed 1.2.0 \(and not marked as a rollback\)/],
    ['same, even as rollback', manifest({ rollback: true }), { installedVersion: '1.2.3' }, 'not-newer', /already installed/],
    ['0% rollout', manifest({ rollout: { percent: 0 } }), {}, 'waiting-for-rollout', /waiting for rollout: release 1.2.3 is at 0%/],
  ];
  it.each(cases)('%s', (_name, json, over, code, reason) => {
    const r = checkManifest(json, { ...ctx, ...over });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.code).toBe(code);
    expect(r.reason).toMatch(reason);
    expect(r.waiting).toBe(code === 'waiting-for-rollout');
  });

  it('accepts an older version only when the signed manifest marks it a rollback', () => {
    expect(checkManifest(manifest({ version: '1.1.0', rollback: true }), ctx).ok).toBe(true);
  });

  it('reports an otherwise-acceptable release only as waiting when the device is outside the rollout', () => {
    const out = Array.from({ length: 200 }, (_, i) => `d${i}`).find((id) => !inRollout(id, { version: '1.2.3' }, 30))!;
    const r = checkManifest(manifest({ rollout: { percent: 30 } }), { ...ctx, deviceId: out });
    expect(r).toMatchObject({ ok: false, code: 'waiting-for-rollout', waiting: true });
    // Expired beats waiting: "waiting" means everything else is fine.
    expect(checkManifest(manifest({ rollout: { percent: 0 } }), { ...ctx, now: Date.parse('2027-01-01T00:00:00Z') })).toMatchObject({ code: 'expired' });
  });
});
