import { beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { colourImage, tempDir } from '../helpers/fixtures.js';
import { buildDemoModel, demoLabels } from '../../src/modelgen/demo-model.js';
import { DEMO_PALETTE } from '../../src/camera/palette.js';
import { ManifestSchema, ModelJsonSchema } from '../../src/updates/manifest.js';
import { signManifest, verifyManifest } from '../../src/updates/signing.js';
import { hashFile } from '../../src/updates/hash-file.js';

// The publisher side end to end through the built CLI: keygen, publish, verify, and the ways a
// release is refused.

describe('release keygen / publish / verify', () => {
  let dir: string;
  let model: string;
  let labels: string;
  let images: string;
  let keys: string;
  let release: string;
  const colours = ['red', 'blue', 'green'];
  const pub = (): string => join(keys, 'release-key.pub.pem');
  const priv = (): string => join(keys, 'release-key.pem');

  const publish = (out: string, extra: string[] = []): ReturnType<typeof runCli> =>
    runCli(['release', 'publish', '--model', model, '--labels', labels, '--preset', 'imagenet', '--version', '2026.11.26-1',
      '--key', priv(), '--out', out, ...extra]);
  const verify = (d: string, ...pubkeys: string[]): ReturnType<typeof runCli> =>
    runCli(['release', 'verify', d, ...pubkeys.flatMap((k) => ['--pubkey', k])]);
  /** A copy of the good release to break. */
  const copy = (): string => {
    const d = join(tempDir(), 'release');
    cpSync(release, d, { recursive: true });
    return d;
  };

  beforeAll(async () => {
    dir = tempDir();
    model = join(dir, 'colors.onnx');
    labels = join(dir, 'colors.txt');
    writeFileSync(model, buildDemoModel());
    writeFileSync(labels, demoLabels());
    images = join(dir, 'images');
    mkdirSync(images);
    for (const c of colours) writeFileSync(join(images, `${c}.jpg`), await colourImage(c));
    keys = join(dir, 'keys');
    const k = await runCli(['release', 'keygen', '--out', keys]);
    expect(k.code, k.stderr).toBe(0);
    release = join(dir, 'out', 'stable');
    const p = await publish(release, ['--validation', images, '--rollout-percent', '25', '--expires', '7d']);
    expect(p.code, p.stderr).toBe(0);
  });

  it('keygen writes a private key only its owner can read, and never overwrites one', async () => {
    expect(statSync(priv()).mode & 0o777).toBe(0o600);
    expect(readFileSync(pub(), 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const again = await runCli(['release', 'keygen', '--out', keys]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/release-key\.pem already exists; not overwriting a key/);
  });

  it('publish writes the documented layout, a signed manifest and model-computed validation labels', () => {
    expect(readdirSync(release).sort()).toEqual(['labels.txt', 'manifest.json', 'manifest.json.sig', 'model.json', 'model.onnx', 'validation']);
    expect(readdirSync(join(release, 'validation')).sort()).toEqual(['blue.jpg', 'green.jpg', 'red.jpg']);
    const bytes = readFileSync(join(release, 'manifest.json'));
    expect(verifyManifest(bytes, readFileSync(join(release, 'manifest.json.sig')), [readFileSync(pub(), 'utf8')]).index).toBe(0);
    const m = ManifestSchema.parse(JSON.parse(bytes.toString()));
    expect(m).toMatchObject({ schema: 1, channel: 'stable', version: '2026.11.26-1', min_daemon_version: '0.1.0', rollback: false, rollout: { percent: 25 } });
    expect(Date.parse(m.expires) - Date.parse(m.created)).toBe(7 * 86_400_000);
    expect(m.artifacts.model).toMatchObject({ url: 'model.onnx', size: buildDemoModel().length });
    expect(m.artifacts.validation?.map((a) => a.url)).toEqual(['validation/blue.jpg', 'validation/green.jpg', 'validation/red.jpg']);
    const mj = ModelJsonSchema.parse(JSON.parse(readFileSync(join(release, 'model.json'), 'utf8')));
    expect(mj).toMatchObject({ preset: 'imagenet', input: { name: 'input', type: 'float32', shape: [1, 3, 224, 224] }, output: { classes: DEMO_PALETTE.length } });
    const index = (c: string): number => DEMO_PALETTE.findIndex((p) => p.name === c);
    expect(mj.validation.map(({ file, expected_index }) => ({ file, expected_index }))).toEqual(['blue', 'green', 'red'].map((c) => ({ file: `validation/${c}.jpg`, expected_index: index(c) })));
    // The reference the devices reproduce: the top-10 probabilities, best first, led by the expected class.
    for (const v of mj.validation) {
      expect(v.top).toHaveLength(Math.min(10, DEMO_PALETTE.length));
      expect(v.top![0]!.index).toBe(v.expected_index);
      expect(v.top!.map((t) => t.p)).toEqual([...v.top!.map((t) => t.p)].sort((a, b) => b - a));
      expect(v.top!.reduce((s, t) => s + t.p, 0)).toBeCloseTo(1, 3);
    }
    expect(mj.reference).toMatchObject({ arch: process.arch, provider: 'cpu', onnxruntime: expect.stringMatching(/^\d+\.\d+/) });
  });

  it('verify checks the signature, every artifact and model.json', async () => {
    const r = await verify(release, pub());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^signature: ok \(key [0-9a-f]{16}, trusted key #1\)/m);
    expect(r.stdout).toMatch(/version 2026\.11\.26-1, channel stable, .*rollout 25%/);
    for (const f of ['model.onnx', 'labels.txt', 'model.json', 'validation/red.jpg']) expect(r.stdout).toContain(`${f} `);
    expect(r.stdout).toMatch(/model\.json: preset imagenet, input float32 \[1,3,224,224\], 8 classes, 3 validation images: consistent/);
    expect(r.stdout).toMatch(/^OK: release 2026\.11\.26-1/m);
  });

  it('verify names a tampered or truncated artifact', async () => {
    const d = copy();
    const labelsPath = join(d, 'labels.txt');
    writeFileSync(labelsPath, readFileSync(labelsPath, 'utf8').replace('red', 'rod'));
    const modelPath = join(d, 'model.onnx');
    writeFileSync(modelPath, readFileSync(modelPath).subarray(0, 100));
    const r = await verify(d, pub());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/release verify FAILED/);
    expect(r.stderr).toMatch(/artifact labels\.txt \(labels\) has sha256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}/);
    expect(r.stderr).toMatch(/artifact model\.onnx \(model\) has 100 bytes, the manifest says \d+/);
  });

  it('verify refuses a manifest edited after signing, a wrong key, and accepts a rotated key set', async () => {
    const d = copy();
    const mPath = join(d, 'manifest.json');
    writeFileSync(mPath, readFileSync(mPath, 'utf8').replace('"percent": 25', '"percent": 100'));
    const edited = await verify(d, pub());
    expect(edited.code).toBe(1);
    expect(edited.stderr).toMatch(/signature: signature does not match any trusted key/);

    const other = join(dir, 'other-keys');
    expect((await runCli(['release', 'keygen', '--out', other])).code).toBe(0);
    const wrong = await verify(release, join(other, 'release-key.pub.pem'));
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/signature does not match any trusted key \(1 tried\)/);
    const rotated = await verify(release, join(other, 'release-key.pub.pem'), pub());
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toMatch(/trusted key #2/);
  });

  it('verify refuses an expired manifest (validly signed)', async () => {
    const d = copy();
    const m = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    const bytes = Buffer.from(`${JSON.stringify({ ...m, created: '2024-01-01T00:00:00.000Z', expires: '2024-01-31T00:00:00.000Z' }, null, 2)}\n`);
    writeFileSync(join(d, 'manifest.json'), bytes);
    writeFileSync(join(d, 'manifest.json.sig'), signManifest(bytes, readFileSync(priv(), 'utf8')));
    const r = await verify(d, pub());
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/signature: ok/);
    expect(r.stderr).toMatch(/manifest expired at 2024-01-31T00:00:00\.000Z/);
  });

  it('--truth records the label names a person gave, and refuses a labels file out of the model\'s order', async () => {
    const truth = join(dir, 'truth.tsv');
    writeFileSync(truth, `# file<TAB>label\n${colours.map((c) => `${c}.jpg\t${c}`).join('\n')}\n`);
    const out = join(tempDir(), 'truth');
    const ok = await publish(out, ['--validation', images, '--truth', truth]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/accuracy on the labelled validation images: 3\/3/);
    const mj = ModelJsonSchema.parse(JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')));
    expect(mj.validation.map((v) => v.truth)).toEqual([['blue'], ['green'], ['red']]);

    // The same names in another order: every image is now "wrong" by name.
    const names = demoLabels().trim().split('\n');
    const rotated = join(dir, 'rotated.txt');
    writeFileSync(rotated, `${[...names.slice(1), names[0]].join('\n')}\n`);
    const bad = join(tempDir(), 'rotated');
    const r = await runCli(['release', 'publish', '--model', model, '--labels', rotated, '--preset', 'imagenet', '--version', '1.0.0', '--key', priv(), '--out', bad, '--validation', images, '--truth', truth]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/accuracy 0\/3 on the labelled validation images is below 50%: is the labels file in the order of the model's outputs\?/);
    expect(existsSync(bad)).toBe(false);

    const unknown = join(dir, 'unknown.tsv');
    writeFileSync(unknown, 'red.jpg\tcrimson\n');
    const u = await publish(join(tempDir(), 'u'), ['--validation', images, '--truth', unknown]);
    expect(u.stderr).toMatch(/"crimson" is not a label of the labels file/);
  });

  it('publish refuses labels that do not match the model output, and leaves nothing behind', async () => {
    const short = join(dir, 'short.txt');
    writeFileSync(short, DEMO_PALETTE.slice(0, 7).map((p) => p.name).join('\n'));
    const out = join(dir, 'mismatch');
    const r = await runCli(['release', 'publish', '--model', model, '--labels', short, '--preset', 'imagenet', '--version', '1.0.0', '--key', priv(), '--out', out]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/model output "output" has 8 classes .* but the labels file has 7 lines/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir).filter((n) => n.includes('partial'))).toEqual([]);
  });

  it('publish refuses a non-empty --out, bad options and a preset the model does not fit', async () => {
    const full = await publish(release);
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/--out .* is not empty/);
    const usage = await runCli(['release', 'publish', '--model', model]);
    expect(usage.code).toBe(64);
    expect(usage.stderr).toMatch(/missing --labels, --preset, --version, --key, --out/);
    expect((await publish(join(dir, 'x'), ['--rollout-percent', '120'])).code).toBe(64);
    const version = await runCli(['release', 'publish', '--model', model, '--labels', labels, '--preset', 'imagenet', '--version', 'v2', '--key', priv(), '--out', join(dir, 'y')]);
    expect(version.code).toBe(1);
    expect(version.stderr).toMatch(/--version: invalid version "v2"/);
    const nhwc = join(dir, 'nhwc.onnx');
    writeFileSync(nhwc, buildDemoModel({ layout: 'nhwc' }));
    const layout = await runCli(['release', 'publish', '--model', nhwc, '--labels', labels, '--preset', 'imagenet', '--version', '1', '--key', priv(), '--out', join(dir, 'z')]);
    expect(layout.code).toBe(78);
    expect(layout.stderr).toMatch(/model input "input" has shape \[1,224,224,3\]/);
    expect((await runCli(['release', 'frobnicate'])).code).toBe(64);
  });

  it('--preprocess overrides preset fields, ships them in model.json and checks the model against them', async () => {
    const small = join(dir, 'small.onnx');
    writeFileSync(small, buildDemoModel({ size: 160 }));
    const args = ['release', 'publish', '--model', small, '--labels', labels, '--preset', 'imagenet', '--version', '1', '--key', priv()];
    const out = join(dir, 'small');
    const r = await runCli([...args, '--out', out, '--preprocess', '{"size":160,"resize":183}', '--validation', images]);
    expect(r.code, r.stderr).toBe(0);
    const mj = ModelJsonSchema.parse(JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')));
    expect(mj.preprocess).toEqual({ size: 160, resize: 183 });
    expect(mj.validation.map((v) => v.expected_index)).toEqual(['blue', 'green', 'red'].map((c) => DEMO_PALETTE.findIndex((p) => p.name === c)));
    expect((await verify(out, pub())).code).toBe(0);
    const bad = await runCli([...args, '--out', join(dir, 'small2'), '--preprocess', '{"size":160,"resize":100}']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/preprocess\.resize \(100\) must be at least preprocess\.size \(160\)/);
    const typo = await runCli([...args, '--out', join(dir, 'small3'), '--preprocess', '{"sise":160}']);
    expect(typo.code).toBe(64);
    expect(typo.stderr).toMatch(/--preprocess: .*sise/);
  });

  it('--model-url ships no model.onnx and pins the remote model by size and sha256', async () => {
    const out = join(dir, 'remote');
    const url = 'https://models.example/colors.onnx';
    const r = await publish(out, ['--model-url', url, '--rollback', '--min-daemon-version', '0.1.0']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(out, 'model.onnx'))).toBe(false);
    const m = ManifestSchema.parse(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')));
    expect(m.artifacts.model).toEqual({ url, ...(await hashFile(model)) });
    expect(m.rollback).toBe(true);
    const v = await verify(out, pub());
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/model: https:\/\/models\.example\/colors\.onnx not checked here/);
  });
});

describe('hashFile progress', () => {
  it('shows quarters on a non-TTY and a redrawn bar on a TTY for files over 8 MB only', async () => {
    const d = tempDir();
    const big = join(d, 'big.bin');
    writeFileSync(big, Buffer.alloc(9 * 1024 * 1024, 7));
    const lines: string[] = [];
    const h = await hashFile(big, { progress: { isTTY: false, write: (s) => lines.push(s) }, label: 'big' });
    expect(h.size).toBe(9 * 1024 * 1024);
    expect(lines).toEqual(['big: 25% (2.3/9.0 MB)\n', 'big: 50% (4.5/9.0 MB)\n', 'big: 75% (6.8/9.0 MB)\n', 'big: 100% (9.0 MB)\n']);
    const tty: string[] = [];
    await hashFile(big, { progress: { isTTY: true, write: (s) => tty.push(s) }, label: 'big' });
    expect(tty.at(-2)).toMatch(/^\rbig \[#{30}\] 100% 9\.0\/9\.0 MB$/);
    expect(tty.at(-1)).toBe('\n');
    const small: string[] = [];
    writeFileSync(join(d, 'small.bin'), 'x');
    await hashFile(join(d, 'small.bin'), { progress: { isTTY: false, write: (s) => small.push(s) } });
    expect(small).toEqual([]);
  });
});
