import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, rmSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tempDir as makeTempDir } from '../helpers/fixtures.js';

// systemd/install.sh into a temp --root, twice: the layout, a pre-existing config kept, and a
// second run that reports "no changes" and leaves every file (inode, mode, size, mtime) as it was.
// Needs bash, coreutils and npm (to list production dependencies); runs as any user, and also
// exercises user creation (`useradd --root`) where it can: as root.

const REPO = resolve(import.meta.dirname, '../..');
const SCRIPT = join(REPO, 'systemd/install.sh');
const IS_ROOT = process.getuid?.() === 0;

// Each install is ~340 MB (onnxruntime-node for every platform): removed after the file.
const made: string[] = [];
const tempDir = (prefix: string): string => {
  const d = makeTempDir(prefix);
  made.push(d);
  return d;
};
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

function install(root: string): { status: number | null; out: string } {
  const r = spawnSync('bash', [SCRIPT, '--root', root, '--no-systemctl'], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Every entry under dir: type, mode, owner, size, mtime, inode (and link target). */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    const p = join(dir, rel);
    const s = lstatSync(p);
    const link = s.isSymbolicLink() ? ` -> ${readlinkSync(p)}` : '';
    // Directory mtimes are included too: a rerun must not even touch a directory.
    out.set(rel, `${s.mode.toString(8)} ${s.uid}:${s.gid} ${s.size} ${s.mtimeMs} ${s.ino}${link}`);
    if (s.isDirectory()) for (const e of readdirSync(p)) walk(rel ? join(rel, e) : e);
  };
  walk('');
  return out;
}

function diff(a: Map<string, string>, b: Map<string, string>): string[] {
  const d: string[] = [];
  for (const [k, v] of a) if (b.get(k) !== v) d.push(`${k}: ${v} -> ${b.get(k) ?? '(gone)'}`);
  for (const k of b.keys()) if (!a.has(k)) d.push(`${k}: new`);
  return d;
}

describe('systemd/install.sh --root', () => {
  let root: string;
  let first: { status: number | null; out: string };
  let second: { status: number | null; out: string };
  let before: Map<string, string>;
  let after: Map<string, string>;

  beforeAll(() => {
    root = tempDir('ec-install-');
    first = install(root);
    before = snapshot(root);
    second = install(root);
    after = snapshot(root);
  });

  it('installs the application, unit, config and state directory', () => {
    expect(first.status, first.out).toBe(0);
    expect(first.out).toMatch(/edge-classifier: \d+ change\(s\)/);
    const app = join(root, 'opt/edge-classifier');
    for (const f of ['bin/edge-classifier', 'dist/cli/main.js', 'package.json', 'config/config.yaml']) {
      expect(existsSync(join(app, f)), f).toBe(true);
    }
    expect(lstatSync(join(app, 'bin/edge-classifier')).mode & 0o111).not.toBe(0);
    // Production dependencies only.
    for (const dep of ['onnxruntime-node', 'sharp', 'mqtt', 'pino', 'yaml', 'zod']) {
      expect(existsSync(join(app, 'node_modules', dep, 'package.json')), dep).toBe(true);
    }
    for (const dev of ['vitest', 'typescript', 'eslint', 'typescript-eslint']) {
      expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false);
    }
    expect(readFileSync(join(root, 'etc/systemd/system/edge-classifier.service'), 'utf8')).toBe(
      readFileSync(join(REPO, 'systemd/edge-classifier.service'), 'utf8'),
    );
    expect(readFileSync(join(root, 'etc/edge-classifier/config.yaml'), 'utf8')).toBe(
      readFileSync(join(REPO, 'config/config.yaml'), 'utf8'),
    );
    const state = lstatSync(join(root, 'var/lib/edge-classifier'));
    expect(state.isDirectory()).toBe(true);
    expect(state.mode & 0o777).toBe(0o750);
    // No staging leftovers, in the target or in the checkout.
    expect(readdirSync(join(root, 'opt'))).toEqual(['edge-classifier']);
    expect(readdirSync(REPO).filter((e) => e.startsWith('.install-stage'))).toEqual([]);
  });

  it('installed launcher runs from the installed tree', () => {
    const r = spawnSync(process.execPath, [join(root, 'opt/edge-classifier/bin/edge-classifier'), 'config', 'schema'], {
      encoding: 'utf8',
      cwd: '/',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(0);
  });

  it('a second run reports no changes and leaves every file as it was', () => {
    expect(second.status, second.out).toBe(0);
    expect(second.out).toMatch(/^edge-classifier: no changes$/m);
    expect(second.out).not.toMatch(/^\s*changed:/m);
    expect(diff(before, after)).toEqual([]);
    console.log(`install.sh second run:\n${second.out.trim()}`);
  });

  it('keeps an existing config and replaces changed application files', () => {
    const dir = tempDir('ec-install-keep-');
    mkdirSync(join(dir, 'etc/edge-classifier'), { recursive: true });
    const mine = 'device_id: my-own-config\n';
    writeFileSync(join(dir, 'etc/edge-classifier/config.yaml'), mine);
    const r1 = install(dir);
    expect(r1.status, r1.out).toBe(0);
    expect(r1.out).toMatch(/unchanged: .*config\.yaml \(existing configuration kept/);
    expect(readFileSync(join(dir, 'etc/edge-classifier/config.yaml'), 'utf8')).toBe(mine);

    // A stray file in the installed tree is a difference: the tree is replaced as a whole.
    const stray = join(dir, 'opt/edge-classifier/dist/stray.js');
    writeFileSync(stray, '');
    const r2 = install(dir);
    expect(r2.out).toMatch(/changed: .*opt\/edge-classifier \(application files\)/);
    expect(existsSync(stray)).toBe(false);
    expect(readFileSync(join(dir, 'etc/edge-classifier/config.yaml'), 'utf8')).toBe(mine);
    expect(install(dir).out).toMatch(/^edge-classifier: no changes$/m);
  });

  it.runIf(IS_ROOT)('creates the system user in a target with /etc/passwd (useradd --root), once', () => {
    const dir = tempDir('ec-install-user-');
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
    writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nvideo:x:44:\n');
    writeFileSync(join(dir, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o640 });
    writeFileSync(join(dir, 'etc/gshadow'), 'root:*::\nvideo:!::\n', { mode: 0o640 });
    const r1 = install(dir);
    expect(r1.status, r1.out).toBe(0);
    expect(r1.out).toMatch(/changed: +created system user edge-classifier/);
    const pw = readFileSync(join(dir, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith('edge-classifier:'));
    expect(pw).toMatch(/^edge-classifier:x:\d+:\d+:[^:]*:[^:]*:\/usr\/sbin\/nologin$/);
    const [, , uid, gid] = pw!.split(':').map(String);
    expect(readFileSync(join(dir, 'etc/group'), 'utf8')).toMatch(/^video:x:44:edge-classifier$/m);
    const state = lstatSync(join(dir, 'var/lib/edge-classifier'));
    expect(`${state.uid}:${state.gid}`).toBe(`${uid}:${gid}`);
    const conf = lstatSync(join(dir, 'etc/edge-classifier/config.yaml'));
    expect(`${conf.uid}:${conf.gid} ${(conf.mode & 0o777).toString(8)}`).toBe(`0:${gid} 640`);
    expect(lstatSync(join(dir, 'opt/edge-classifier/dist/cli/main.js')).uid).toBe(0);

    const snap = snapshot(dir);
    const r2 = install(dir);
    expect(r2.out).toMatch(/^edge-classifier: no changes$/m);
    expect(diff(snap, snapshot(dir))).toEqual([]);
  });
});
