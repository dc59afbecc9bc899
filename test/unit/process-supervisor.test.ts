import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { pino } from 'pino';
import type { FrameSplitter, SplitterDeps } from '../../src/camera/process/frame-splitter.js';
import type { SpawnFn } from '../../src/camera/process/parent-death.js';
import { backoffDelay, effectiveStallTimeout, ProcessSupervisor, type SupervisorTiming } from '../../src/camera/process/process-supervisor.js';
import { StderrTail } from '../../src/camera/process/stderr-tail.js';
import type { Clock } from '../../src/core/clock.js';
import { procInfo, waitGone } from '../helpers/processes.js';
import { RecordingSink } from '../helpers/recording-sink.js';

describe('backoffDelay', () => {
  const timing = { backoffInitialMs: 1000, backoffMaxMs: 30_000 };

  it('doubles from the initial delay up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffDelay(n, timing, 0))).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it('adds 0-20% jitter', () => {
    expect(backoffDelay(1, timing, 0.5)).toBe(1100);
    expect(backoffDelay(10, timing, 0.999)).toBeLessThanOrEqual(36_000);
  });
});

describe('effectiveStallTimeout', () => {
  it('is stall_timeout_ms, or three frame intervals for very slow cameras', () => {
    expect(effectiveStallTimeout(10_000, 5)).toBe(10_000);
    expect(effectiveStallTimeout(10_000, 0.05)).toBe(60_000);
  });
});

describe('StderrTail', () => {
  it('keeps the last lines, redacted, and joins a few of them', () => {
    const tail = new StderrTail((t) => t.replace(/secret/g, '***'));
    tail.add('line 1\nline 2\r\nprogress\rline ');
    tail.add(Buffer.from('3 with secret\n\n'));
    for (let i = 4; i <= 20; i++) tail.add(`line ${i}\n`);
    tail.add('partial secret');
    expect(tail.text()).toBe('line 18; line 19; line 20; partial ***');
    const early = new StderrTail((t) => t);
    early.add('a\nb with secret\n');
    expect(early.text()).toBe('a; b with secret');
  });

  it('bounds very long lines and silent processes', () => {
    const tail = new StderrTail((t) => t);
    expect(tail.text()).toBe('');
    tail.add(`${'x'.repeat(10_000)}\n`);
    expect(tail.text().length).toBeLessThan(310);
  });
});

/**
 * A clock that moves only when the test says: the supervisor's backoff, stall watchdog and kill
 * grace are sleeps on it, so each can be seen (pending) and let go (advance) while the child
 * processes themselves are real and run in real time.
 */
function manualClock(): Clock & { pending(): number[]; advance(ms: number): void } {
  let now = 0;
  const sleepers = new Set<{ until: number; ms: number; wake: () => void }>();
  return {
    now: () => now,
    monotonic: () => now,
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const s = { until: now + ms, ms, wake: () => (sleepers.delete(s), resolve()) };
        sleepers.add(s);
        signal?.addEventListener('abort', s.wake, { once: true });
      }),
    pending: () => [...sleepers].map((s) => s.ms).sort((a, b) => a - b),
    advance: (ms) => {
      now += ms;
      for (const s of [...sleepers]) if (s.until <= now) s.wake();
    },
  };
}

/** Each line of stdout is a frame: the shell scripts below print what a camera would deliver. */
class LineSplitter implements FrameSplitter {
  private rest = '';
  constructor(private readonly deps: SplitterDeps) {}
  push(chunk: Buffer): void {
    const lines = (this.rest + chunk.toString('utf8')).split('\n');
    this.rest = lines.pop()!;
    for (const line of lines) this.deps.onFrame(Buffer.from(line));
  }
  end(): void {}
}

const TIMING: SupervisorTiming = { stallTimeoutMs: 60_000, killGraceMs: 2_000, backoffInitialMs: 100, backoffMaxMs: 400 };

describe('ProcessSupervisor with real processes', () => {
  const children: ChildProcess[] = [];
  const supervisors: ProcessSupervisor[] = [];

  afterEach(async () => {
    await Promise.all(supervisors.splice(0).map((s) => s.stop()));
    // Whatever a failing test left running.
    for (const c of children.splice(0)) {
      if (c.pid !== undefined && procInfo(c.pid)) process.kill(-c.pid, 'SIGKILL');
    }
  });

  function supervise(script: string, opts: { timing?: Partial<SupervisorTiming>; endOnCleanExit?: boolean; command?: string } = {}) {
    const clock = manualClock();
    const sink = new RecordingSink();
    const frames: string[] = [];
    const spawned: ChildProcess[] = [];
    const spawnTracked: SpawnFn = (command, args, options) => {
      const child = spawn(command, args, options);
      children.push(child);
      if (command !== 'setpriv' || !args.includes('true')) spawned.push(child); // not the setpriv probe
      return child;
    };
    const supervisor = new ProcessSupervisor({
      command: opts.command ?? 'sh',
      args: opts.command ? [] : ['-c', script],
      description: 'test camera',
      redact: (t) => t.replace(/hunter2/g, '***'),
      createSplitter: (d) => new LineSplitter(d),
      maxFrameBytes: 1024,
      onFrame: (data) => frames.push(data.toString()),
      endOnCleanExit: opts.endOnCleanExit ?? false,
      sink,
      spawn: spawnTracked,
      clock,
      logger: pino({ level: 'silent' }),
      timing: { ...TIMING, ...opts.timing },
      random: () => 0,
    });
    supervisors.push(supervisor);
    return { supervisor, sink, frames, clock, spawned, until: (cond: () => boolean, what: string) => sink.until(cond, 10_000, what) };
  }

  const alive = (pid: number | undefined): boolean => pid !== undefined && procInfo(pid) !== undefined;
  const settle = (ms = 150) => new Promise((r) => setTimeout(r, ms));

  it('restarts a process that exits, after a backoff that doubles up to the cap, and not before', async () => {
    const { supervisor, sink, frames, clock, spawned, until } = supervise('echo frame; echo "bad password hunter2" >&2; exit 3');
    await supervisor.start();
    await until(() => sink.restarts.length === 1, 'the first exit');
    expect(frames).toEqual(['frame']);
    const first = sink.restarts[0]!;
    expect(first.reason).toBe('exit');
    expect(first.err.message).toMatch(/^sh exited with code 3 [\d.]+ s after start, after 1 frames \[test camera\]: bad password \*\*\* \(restart in 0\.1 s\)$/);
    expect(sink.messages()).toEqual([first.err.message]);

    // Waiting in the backoff: no process, and real time alone does not end the wait.
    expect(clock.pending()).toEqual([100]);
    await settle();
    expect(supervisor.pid).toBeUndefined();
    expect(spawned).toHaveLength(1);

    for (const [i, delay] of [100, 200, 400].entries()) {
      clock.advance(delay);
      await until(() => sink.restarts.length === i + 2, `exit ${i + 2}`);
    }
    expect(spawned).toHaveLength(4);
    expect(frames).toEqual(['frame', 'frame', 'frame', 'frame']);
    expect(sink.restarts.map((r) => r.err.message.match(/restart in ([\d.]+) s/)?.[1])).toEqual(['0.1', '0.2', '0.4', '0.4']);
    expect(clock.pending()).toEqual([400]);
    expect(sink.ended).toBe(0);
  });

  it('kills a process that hangs without frames (stall) and its whole process group, then restarts it', async () => {
    // sh forks a sleep and waits: the grandchild must go too.
    const { supervisor, sink, frames, clock, spawned, until } = supervise('sleep 30 & echo $!; wait', { timing: { stallTimeoutMs: 5_000 } });
    await supervisor.start();
    await until(() => frames.length === 1, 'the grandchild pid');
    const shell = supervisor.pid!;
    const grandchild = Number(frames[0]);
    expect(alive(shell) && alive(grandchild)).toBe(true);

    clock.advance(4_999);
    await settle();
    expect(sink.restarts).toEqual([]);
    clock.advance(1);
    await until(() => sink.restarts.length === 1, 'the stall');
    expect(sink.restarts[0]!.reason).toBe('stall');
    expect(sink.restarts[0]!.err.message).toMatch(/^no frame from sh for 5000 ms \(stall_timeout_ms\); killed \[test camera\]/);
    await waitGone(shell, 2_000);
    await waitGone(grandchild, 2_000);

    clock.advance(100);
    await until(() => spawned.length === 2 && supervisor.pid !== undefined && frames.length === 2, 'the restart');
    expect(supervisor.pid).not.toBe(shell);
  });

  it('stop() while running: SIGTERM to the group, resolves once it is gone, and nothing restarts', async () => {
    const { supervisor, sink, frames, clock, until } = supervise('sleep 30 & echo $!; wait');
    await supervisor.start();
    await until(() => frames.length === 1, 'the first frame');
    const shell = supervisor.pid!;
    const grandchild = Number(frames[0]);
    await supervisor.stop(); // no clock advance: SIGTERM alone does it
    expect(alive(shell)).toBe(false);
    await waitGone(grandchild, 2_000);
    expect(supervisor.pid).toBeUndefined();
    expect(sink.restarts).toEqual([]);
    expect(sink.errors).toEqual([]);
    expect(clock.pending()).toEqual([]);
  });

  it('stop() on a process that ignores SIGTERM: SIGKILL after the kill grace, not before', async () => {
    const { supervisor, sink, frames, clock, until } = supervise('trap "" TERM; echo ready; while :; do sleep 1; done');
    await supervisor.start();
    await until(() => frames.length === 1, 'the trap set');
    const pid = supervisor.pid!;
    let stopped = false;
    const stopping = supervisor.stop().then(() => (stopped = true));
    await settle(300);
    expect(stopped).toBe(false);
    expect(alive(pid)).toBe(true);
    expect(clock.pending()).toContain(TIMING.killGraceMs);
    clock.advance(TIMING.killGraceMs);
    await stopping;
    expect(alive(pid)).toBe(false);
    expect(sink.restarts).toEqual([]);
  });

  it('stop() during the backoff ends the wait at once and starts nothing more', async () => {
    const { supervisor, sink, clock, spawned, until } = supervise('exit 1');
    await supervisor.start();
    await until(() => sink.restarts.length === 1, 'the exit');
    expect(clock.pending()).toEqual([100]);
    await supervisor.stop();
    expect(clock.pending()).toEqual([]);
    clock.advance(10_000);
    await settle();
    expect(spawned).toHaveLength(1);
    expect(sink.restarts).toHaveLength(1);
  });

  it('a clean exit ends a source played once (endOnCleanExit): sink.end(), no restart', async () => {
    const { supervisor, sink, frames, spawned, until } = supervise('echo one; echo two', { endOnCleanExit: true });
    await supervisor.start();
    await until(() => sink.ended === 1, 'the end');
    expect(frames).toEqual(['one', 'two']);
    expect(sink.restarts).toEqual([]);
    await settle();
    expect(spawned).toHaveLength(1);
  });

  it('a program that is not there: a clear error, retried with backoff', async () => {
    const { supervisor, sink, clock, until } = supervise('', { command: 'edge-classifier-no-such-program' });
    await supervisor.start();
    await until(() => sink.restarts.length === 1, 'the failure');
    // Spawned directly: ENOENT. Through setpriv (when it works here): setpriv cannot exec it.
    expect(sink.restarts[0]!.err.message).toMatch(/edge-classifier-no-such-program (is not installed or not on PATH|exited with code \d+|could not be run)/);
    clock.advance(100);
    await until(() => sink.restarts.length === 2, 'the retry');
    expect(sink.restarts[1]!.err.message).toContain('(restart in 0.2 s)');
  });
});
