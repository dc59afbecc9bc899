import { describe, expect, it } from 'vitest';
import { CameraHealth, monitoredSink, type CameraHealthSnapshot } from '../../src/camera/camera-health.js';
import type { Clock } from '../../src/core/clock.js';
import type { Frame, FrameSink } from '../../src/camera/frame.js';

/** A clock the test moves by hand. */
function handClock(): Clock & { advance(ms: number): void } {
  let t = 1_000_000;
  return {
    now: () => t,
    monotonic: () => t,
    sleep: () => Promise.resolve(),
    advance: (ms) => void (t += ms),
  };
}

function setup(): { clock: ReturnType<typeof handClock>; health: CameraHealth; changes: CameraHealthSnapshot[] } {
  const clock = handClock();
  const changes: CameraHealthSnapshot[] = [];
  const health = new CameraHealth({ clock, onChange: (s) => changes.push(s) });
  return { clock, health, changes };
}

describe('CameraHealth', () => {
  it('starts, goes online with the first frame and offline with an error, reporting only changes', () => {
    const { health, changes, clock } = setup();
    expect(health.snapshot().state).toBe('starting');
    health.frame();
    clock.advance(100);
    health.frame();
    expect(changes.map((c) => c.state)).toEqual(['online']);
    health.error(new Error('device unplugged'));
    health.error(new Error('device unplugged'));
    health.error(new Error('no such device'));
    expect(changes.map((c) => [c.state, c.lastError])).toEqual([
      ['online', null],
      ['offline', 'device unplugged'],
      ['offline', 'no such device'],
    ]);
    health.frame();
    expect(changes.at(-1)?.state).toBe('online');
    expect(changes.at(-1)?.lastError).toBe('no such device'); // kept for the operator
  });

  it('measures fps over a sliding window', () => {
    const { health, clock } = setup();
    for (let i = 0; i < 51; i++) {
      health.frame();
      clock.advance(200); // 5 fps
    }
    expect(health.snapshot().fps).toBeCloseTo(5, 1);
    clock.advance(20_000); // nothing for longer than the window
    expect(health.snapshot().fps).toBe(0);
  });

  it('counts reconnects and stalls over the last hour', () => {
    const { health, clock } = setup();
    health.restarting('stall', new Error('no frame for 10 s'));
    clock.advance(30 * 60_000);
    health.restarting('exit', new Error('ffmpeg exited with code 1'));
    health.restarting('stall', new Error('no frame for 10 s'));
    let snap = health.snapshot();
    expect([snap.reconnectsLastHour, snap.stallsLastHour]).toEqual([3, 2]);
    expect(snap.state).toBe('offline');
    clock.advance(31 * 60_000);
    snap = health.snapshot();
    expect([snap.reconnectsLastHour, snap.stallsLastHour]).toEqual([2, 1]);
  });

  it('a stall marks the camera as making no progress until its next frame (or a stop, pause, end)', () => {
    const { health, clock, changes } = setup();
    health.frame();
    expect(health.snapshot().stalledSince).toBeUndefined();
    clock.advance(1_000);
    const stalledAt = clock.now();
    health.restarting('exit', new Error('ffmpeg exited with code 1'));
    expect(health.snapshot().stalledSince).toBeUndefined(); // an exit is a restart, not a stall
    health.restarting('stall', new Error('no frame for 10 s'));
    clock.advance(5_000);
    health.restarting('stall', new Error('no frame for 10 s'));
    // The first stall's time is kept, and the status published for the change already carries it.
    expect(health.snapshot()).toMatchObject({ state: 'offline', stalledSince: stalledAt, lastError: 'no frame for 10 s' });
    expect(changes.at(-1)?.stalledSince).toBe(stalledAt);
    health.frame();
    expect('stalledSince' in health.snapshot()).toBe(false);
    for (const leave of [() => health.stopped(), () => health.disabled(), () => health.ended(), () => health.restart()]) {
      health.restarting('stall', new Error('no frame for 10 s'));
      leave();
      expect(health.snapshot().stalledSince).toBeUndefined();
    }
  });

  it('stays disabled or ended whatever the source says', () => {
    const { health } = setup();
    health.disabled();
    health.error(new Error('x'));
    expect(health.snapshot().state).toBe('disabled');
  });

  it('monitoredSink feeds both the slot and the health', () => {
    const { health } = setup();
    const seen: string[] = [];
    const slot: Omit<FrameSink, 'restarting'> = {
      push: (f) => seen.push(`push ${f.seq}`),
      whenIdle: () => Promise.resolve(),
      captureError: (e) => seen.push(`error ${e.message}`),
      end: () => seen.push('end'),
      skipped: (file, reason) => seen.push(`skipped ${file}: ${reason}`),
    };
    const sink = monitoredSink(slot, health);
    const frame: Frame = { camera: 'c', seq: 1, capturedAt: 0, source: 's', data: Buffer.alloc(1) };
    sink.push(frame);
    expect(health.snapshot().state).toBe('online');
    sink.captureError(new Error('boom'));
    sink.restarting('exit', new Error('boom'));
    sink.skipped?.('x.jpg', 'a FIFO, not a regular file');
    sink.end();
    expect(seen).toEqual(['push 1', 'error boom', 'skipped x.jpg: a FIFO, not a regular file', 'end']);
    const snap = health.snapshot();
    expect([snap.state, snap.reconnectsLastHour]).toEqual(['ended', 1]);
  });
});
