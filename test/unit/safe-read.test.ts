import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdir, mkdtemp, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resourceUsage } from 'node:process';
import { readImageFile, type ReadFs, type ReadLimits } from '../../src/camera/safe-read.js';

// The read a directory source makes of each file, on real files: only regular ones, bounded,
// timed, and never blocked by a FIFO.

const MIB = 1024 * 1024;
const LIMITS: ReadLimits = { maxBytes: 32 * MIB, timeoutMs: 2_000 };
const never = new AbortController().signal;

let dir: string;
let socketServer: Server;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'safe-read-'));
  await writeFile(join(dir, 'image.jpg'), Buffer.from('not really a jpeg, but bytes'));
  await symlink(join(dir, 'image.jpg'), join(dir, 'link.jpg'));
  await symlink('/dev/zero', join(dir, 'zero.jpg'));
  execFileSync('mkfifo', [join(dir, 'fifo.jpg')]);
  await mkdir(join(dir, 'dir.jpg'));
  await writeFile(join(dir, 'sparse.jpg'), '');
  await truncate(join(dir, 'sparse.jpg'), 1536 * MIB);
  await writeFile(join(dir, 'exact.jpg'), Buffer.alloc(4096, 7));
  socketServer = createServer();
  await new Promise<void>((resolve) => socketServer.listen(join(dir, 'socket.jpg'), resolve));
});

afterAll(async () => {
  await new Promise((resolve) => socketServer.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const read = (name: string, limits: ReadLimits = LIMITS, signal = never) => readImageFile(join(dir, name), limits, signal);

describe('readImageFile', () => {
  it('reads a regular file, and one through a symlink, byte for byte', async () => {
    for (const name of ['image.jpg', 'link.jpg']) {
      const outcome = await read(name);
      expect(outcome.kind === 'read' && outcome.data.toString()).toBe('not really a jpeg, but bytes');
    }
  });

  it.each([
    ['zero.jpg', 'a character device, not a regular file'],
    ['fifo.jpg', 'a FIFO, not a regular file'],
    ['dir.jpg', 'a directory, not a regular file'],
    ['socket.jpg', 'a socket, not a regular file'],
    ['sparse.jpg', '1536.0 MiB, more than max_file_bytes (32.0 MiB)'],
  ])('refuses %s at once: %s', async (name, reason) => {
    const peak = resourceUsage().maxRSS;
    const t0 = performance.now();
    expect(await read(name)).toEqual({ kind: 'refused', reason });
    expect(performance.now() - t0).toBeLessThan(500); // a FIFO never waits for a writer
    expect((resourceUsage().maxRSS - peak) / 1024).toBeLessThan(50); // MiB: nothing was read
  });

  it('reads a file of exactly max_file_bytes, refuses one byte less of a cap', async () => {
    const at = await read('exact.jpg', { ...LIMITS, maxBytes: 4096 });
    expect(at.kind === 'read' && at.data.length).toBe(4096);
    expect(await read('exact.jpg', { ...LIMITS, maxBytes: 4095 })).toEqual({ kind: 'refused', reason: '4096 bytes, more than max_file_bytes (4095 bytes)' });
  });

  it('stops a file whose size lies (procfs says 0) at the cap while reading', async () => {
    expect((await stat('/proc/self/maps')).size).toBe(0);
    expect(await readImageFile('/proc/self/maps', { ...LIMITS, maxBytes: 1024 }, never)).toEqual({
      kind: 'refused',
      reason: 'grew past max_file_bytes (1024 bytes) while being read',
    });
    const whole = await readImageFile('/proc/self/maps', LIMITS, never);
    expect(whole.kind === 'read' && whole.data.length).toBeGreaterThan(1024);
  });

  it('fs errors reject, naming the code (a broken symlink)', async () => {
    await symlink(join(dir, 'nowhere.jpg'), join(dir, 'broken.jpg'));
    await expect(read('broken.jpg')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('gives up at the timeout, hands back the hung call, and closes the file once it returns', async () => {
    let release: (() => void) | undefined;
    let closed = 0;
    const fs: ReadFs = {
      stat: (path) => stat(path),
      open: async () => {
        await new Promise<void>((resolve) => (release = resolve));
        return { stat: () => stat(join(dir, 'image.jpg')), close: () => void closed++ } as never;
      },
    };
    const t0 = performance.now();
    const outcome = await readImageFile(join(dir, 'image.jpg'), { ...LIMITS, timeoutMs: 100 }, never, fs);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(outcome).toMatchObject({ kind: 'refused', reason: 'not read within 100 ms (read_timeout_ms)', pending: expect.any(Promise) });
    let settled = false;
    void (outcome as { pending: Promise<void> }).pending.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    release!();
    await (outcome as { pending: Promise<void> }).pending;
    expect(closed).toBe(1); // opened after the timeout: closed, not leaked
  });

  it('rejects with the abort reason at once while a call hangs, and leaves no listener on the signal', async () => {
    const hang: ReadFs = { stat: () => new Promise(() => undefined), open: () => new Promise(() => undefined) };
    const ac = new AbortController();
    for (let i = 0; i < 20; i++) await read('image.jpg', LIMITS, ac.signal);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    const pending = readImageFile(join(dir, 'image.jpg'), LIMITS, ac.signal, hang);
    const t0 = performance.now();
    ac.abort(new Error('stopping'));
    await expect(pending).rejects.toThrow('stopping');
    expect(performance.now() - t0).toBeLessThan(100);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });
});
