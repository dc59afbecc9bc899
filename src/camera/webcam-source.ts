/**
 * A V4L2 (USB) camera, one still per shot via fswebcam, as node-webcam drives it.
 *
 * node-webcam builds the fswebcam command (its option -> flag mapping, `generateSh`), but we do
 * not call its capture(): that runs `child_process.exec` with no timeout and never returns the
 * ChildProcess, so a hung fswebcam could neither be abandoned after `timeout_ms` nor killed on
 * stop(). We run the same command with `exec` under /bin/sh (so the pid is fswebcam's own), in
 * its own process group (`detached`), so a timeout or stop() can SIGKILL the whole group. The
 * command is a shell string, so the schema only admits device paths made of safe characters and
 * the output path is single-quoted here.
 */
import { spawn } from 'node:child_process';
import NodeWebcam from 'node-webcam';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { WebcamSourceConfig } from '../config/schema.js';
import { LoopSource } from './loop-source.js';
import type { SourceDeps } from './frame.js';

export type WebcamSourceDeps = SourceDeps<WebcamSourceConfig> & {
  /** Where shots are written before being read back; each file is removed after its shot. */
  tmpDir: string;
};

// A camera that is unplugged or busy tends to stay so for a while: retry, backing off so a
// dead camera does not fork fswebcam several times a second forever.
const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
const STDERR_LIMIT = 4_096;
// fswebcam colours its messages even with stderr on a pipe.
const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, 'g');

interface FswebcamExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The shell command for one shot, as node-webcam's FSWebcam builds it (`-q -r WxH --jpeg Q -d DEV --no-banner ...`). */
export function fswebcamCommand(config: WebcamSourceConfig, file: string): string {
  const cam = new NodeWebcam.FSWebcam({
    width: config.width,
    height: config.height,
    quality: config.quality,
    output: 'jpeg',
    device: config.device,
    skip: config.skip,
    verbose: false,
  });
  return cam.generateSh(shellQuote(file));
}

export class WebcamSource extends LoopSource<WebcamSourceDeps> {
  private seq = 0;
  private shots = 0;

  protected get label(): string {
    return `webcam source ${this.deps.config.device}`;
  }

  protected async run(signal: AbortSignal): Promise<void> {
    const { config, clock, sink, camera, logger } = this.deps;
    const intervalMs = 1000 / config.fps;
    let backoffMs = 0; // 0 while captures succeed
    while (!signal.aborted) {
      const startedAt = clock.monotonic();
      // The image is grabbed right after the device opens; fswebcam's encode time (seconds at
      // high resolution on a Pi) would skew a timestamp taken on exit.
      const capturedAt = clock.now();
      try {
        const data = await this.capture(signal);
        if (signal.aborted) return;
        if (backoffMs > 0) logger.info({ camera, device: config.device }, 'webcam capture recovered');
        backoffMs = 0;
        this.seq += 1;
        sink.push({ camera, seq: this.seq, capturedAt, source: config.device, data });
        // Paced from the start of the shot, so fps counts shots whatever a capture takes.
        await clock.sleep(startedAt + intervalMs - clock.monotonic(), signal);
      } catch (err) {
        if (signal.aborted) return;
        sink.captureError(err instanceof Error ? err : new Error(String(err)));
        backoffMs = backoffMs === 0 ? BACKOFF_MIN_MS : Math.min(backoffMs * 2, BACKOFF_MAX_MS);
        await clock.sleep(Math.max(backoffMs, startedAt + intervalMs - clock.monotonic()), signal);
      }
    }
  }

  /** One shot: the JPEG bytes, or an Error saying why there are none. */
  private async capture(signal: AbortSignal): Promise<Buffer> {
    const { config, tmpDir, camera, logger } = this.deps;
    // Recreated each shot: tmpfs cleaners (systemd-tmpfiles) may remove it while we run.
    await mkdir(tmpDir, { recursive: true });
    this.shots += 1;
    const file = join(tmpDir, `${camera}-${process.pid}-${this.shots}.jpg`);
    try {
      const exit = await this.runFswebcam(fswebcamCommand(config, file), signal);
      const detail = exit.stderr ? `: ${exit.stderr}` : '';
      if (exit.code === 127) {
        throw new Error(`fswebcam is not installed or not on PATH; cannot capture from ${config.device}${detail}`);
      }
      if (exit.code !== 0) {
        const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
        throw new Error(`fswebcam ${how} capturing from ${config.device}${detail}`);
      }
      // fswebcam exits 0 even when the device does not exist; the missing file is the signal.
      let data: Buffer;
      try {
        data = await readFile(file);
      } catch {
        throw new Error(`fswebcam wrote no image from ${config.device}${detail || ' (and printed no reason)'}`);
      }
      if (data.length === 0) throw new Error(`fswebcam wrote an empty image from ${config.device}${detail}`);
      return data;
    } finally {
      await rm(file, { force: true }).catch((err: unknown) =>
        logger.warn({ err, camera, file }, 'could not remove a webcam temp file'),
      );
    }
  }

  /**
   * Runs fswebcam in its own process group; resolves once it has exited and its stderr closed,
   * so after a kill nothing of it is left. Rejects on spawn failure, timeout and abort.
   */
  private runFswebcam(command: string, signal: AbortSignal): Promise<FswebcamExit> {
    const { config } = this.deps;
    return new Promise<FswebcamExit>((resolve, reject) => {
      if (signal.aborted) {
        reject(new Error('capture aborted'));
        return;
      }
      const child = spawn('/bin/sh', ['-c', `exec ${command}`], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      let timedOut = false;
      let settled = false;

      const killGroup = (): void => {
        // Only while it runs: once reaped, the pid (and group id) may belong to someone else.
        if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // ESRCH: it exited between the check and the kill.
        }
      };
      const onAbort = (): void => killGroup();
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup();
      }, config.timeout_ms);
      signal.addEventListener('abort', onAbort, { once: true });

      const settle = (outcome: Error | FswebcamExit): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };

      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        if (stderr.length < STDERR_LIMIT) stderr += chunk;
      });
      child.on('error', (err: NodeJS.ErrnoException) => {
        // Errors after a successful spawn (a failed kill) are followed by 'close'; wait for it.
        if (child.pid !== undefined) return;
        const why = err.code === 'ENOENT' ? 'fswebcam is not installed or not on PATH' : 'cannot start fswebcam';
        settle(new Error(`${why} (${err.message}); cannot capture from ${config.device}`, { cause: err }));
      });
      child.on('close', (code, exitSignal) => {
        if (timedOut) {
          settle(new Error(`capture from ${config.device} took longer than timeout_ms=${config.timeout_ms}; fswebcam killed`));
        } else if (signal.aborted) {
          settle(new Error('capture aborted'));
        } else {
          settle({ code, signal: exitSignal, stderr: cleanStderr(stderr) });
        }
      });
    });
  }

}

/** fswebcam's messages on one line, without colour codes. */
function cleanStderr(raw: string): string {
  return raw
    .replace(ANSI_ESCAPE, '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .join('; ');
}
