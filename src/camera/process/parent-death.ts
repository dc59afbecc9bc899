/**
 * Capture children (ffmpeg, gst-launch) must not outlive the daemon, even when the daemon is
 * SIGKILLed (OOM killer, systemd watchdog, kill -9) and never gets to stop them. Three things
 * see to it, measured on Debian 12 (ffmpeg 5.1, GStreamer 1.22) by killing a parent with -9:
 *
 * 1. setpriv --pdeathsig KILL (util-linux >= 2.33: Debian 10+, Raspberry Pi OS, Ubuntu 20.04+):
 *    the kernel SIGKILLs the child the moment its parent dies, whatever the child is doing.
 *    Measured: gone within one 5 ms poll, a stalled child (blocked reading a silent HTTP
 *    server) included. setpriv sets the flag and exec()s the program, so the pid, exit code
 *    and signals are the program's own. The "parent" is the thread that spawned the child:
 *    sources must be started from the main thread (they are), not from a worker.
 * 2. The stdout pipe: once the daemon is gone, the child's next write fails (SIGPIPE / EPIPE)
 *    and both ffmpeg and gst-launch exit. Measured: 5-120 ms for a child producing frames.
 *    This needs a child that writes, so it does not help a stalled one.
 * 3. Input timeouts in the ffmpeg arguments (-rw_timeout for HTTP, -timeout for RTSP): a
 *    stalled network input makes ffmpeg exit after the timeout (stall_timeout_ms + 5 s).
 *
 * Without (1) (setpriv missing or too old, e.g. Ubuntu 18.04), a child stalled on a device
 * that never delivers (V4L2, CSI) lingers until its service's cgroup is cleaned up (systemd
 * kills what is left of a unit's processes when the unit stops): a warning says so.
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';

/** child_process.spawn, or a stand-in with the same shape (injected for tests). */
export type SpawnFn = (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

export const PDEATHSIG_PREFIX: readonly string[] = ['setpriv', '--pdeathsig', 'KILL', '--'];

const PROBE_TIMEOUT_MS = 5_000;

/**
 * The argv prefix that makes the kernel kill a child when the daemon dies: PDEATHSIG_PREFIX
 * when `setpriv --pdeathsig` works here, [] when it does not.
 */
export function parentDeathPrefix(spawn: SpawnFn): Promise<readonly string[]> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(PDEATHSIG_PREFIX[0]!, [...PDEATHSIG_PREFIX.slice(1), 'true'], { stdio: 'ignore' });
    } catch {
      resolve([]);
      return;
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve([]);
    }, PROBE_TIMEOUT_MS);
    child.once('error', () => {
      clearTimeout(timer);
      resolve([]);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0 ? PDEATHSIG_PREFIX : []);
    });
  });
}
