import { describe, expect, it } from 'vitest';
import type { Frame } from '../../src/camera/frame.js';
import { FrameSlots, type SlotEvents } from '../../src/daemon/frame-slots.js';

function frame(camera: string, seq: number): Frame {
  return { camera, seq, capturedAt: 1_000 + seq, source: `${camera}.jpg`, data: Buffer.from([seq]) };
}

class Events implements SlotEvents {
  frames = 0;
  drops: [string, number, number][] = [];
  captureErrors: [string, string][] = [];
  ended: string[] = [];
  onFrame(): void {
    this.frames++;
  }
  onDrop(old: Frame, by: Frame): void {
    this.drops.push([old.camera, old.seq, by.seq]);
  }
  onCaptureError(camera: string, err: Error): void {
    this.captureErrors.push([camera, err.message]);
  }
  onEnd(camera: string): void {
    this.ended.push(camera);
  }
}

/** Whether a promise has settled, after letting pending microtasks run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('FrameSlots', () => {
  it('latest frame wins: 3 pushes before a take yield the last, 2 dropped', () => {
    const events = new Events();
    const slots = new FrameSlots(events);
    const sink = slots.sink('a');
    for (const seq of [1, 2, 3]) sink.push(frame('a', seq));
    expect(events.frames).toBe(3);
    expect(events.drops).toEqual([
      ['a', 1, 2],
      ['a', 2, 3],
    ]);
    const taken = slots.take();
    expect(taken?.seq).toBe(3);
    expect(taken?.data).toEqual(Buffer.from([3]));
    expect(slots.take()).toBeUndefined();
    expect(slots.counters('a')).toMatchObject({ captured: 3, dropped: 2 });
  });

  it('take on no cameras or empty slots gives undefined', () => {
    const slots = new FrameSlots(new Events());
    expect(slots.take()).toBeUndefined();
    slots.sink('a');
    expect(slots.take()).toBeUndefined();
  });

  it('serves cameras round robin: a camera pushing constantly cannot starve another', () => {
    const slots = new FrameSlots(new Events());
    const a = slots.sink('a');
    const b = slots.sink('b');
    const c = slots.sink('c');
    let seqA = 0;
    a.push(frame('a', ++seqA));
    b.push(frame('b', 1));
    c.push(frame('c', 1));
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      const f = slots.take();
      if (f) order.push(`${f.camera}${f.seq}`);
      a.push(frame('a', ++seqA)); // 'a' always has a fresh frame waiting
    }
    expect(order).toEqual(['a1', 'b1', 'c1', 'a4', 'a5', 'a6']);
    expect(slots.counters('a').dropped).toBe(2); // a2 and a3 were replaced while b and c were served
  });

  it('two busy cameras alternate', () => {
    const slots = new FrameSlots(new Events());
    const a = slots.sink('a');
    const b = slots.sink('b');
    const seen: string[] = [];
    for (let i = 1; i <= 4; i++) {
      a.push(frame('a', i));
      b.push(frame('b', i));
      seen.push(slots.take()!.camera);
    }
    expect(seen).toEqual(['a', 'b', 'a', 'b']);
  });

  it('sinks for the same camera share one slot', () => {
    const slots = new FrameSlots(new Events());
    slots.sink('a').push(frame('a', 1));
    slots.sink('a').push(frame('a', 2));
    expect(slots.counters('a')).toMatchObject({ captured: 2, dropped: 1 });
    expect(Object.keys(slots.snapshot())).toEqual(['a']);
  });

  it('whenIdle resolves at once for an empty slot, and only after take() otherwise', async () => {
    const slots = new FrameSlots(new Events());
    const a = slots.sink('a');
    const b = slots.sink('b');
    expect(await settled(a.whenIdle())).toBe(true);

    a.push(frame('a', 1));
    b.push(frame('b', 1));
    const idleA = a.whenIdle();
    const idleB = b.whenIdle();
    a.push(frame('a', 2)); // replacing the frame does not free the slot
    expect(await settled(idleA)).toBe(false);

    expect(slots.take()?.camera).toBe('a');
    expect(await settled(idleA)).toBe(true);
    expect(await settled(idleB)).toBe(false); // another camera's take does not wake b
    expect(slots.take()?.camera).toBe('b');
    expect(await settled(idleB)).toBe(true);
  });

  it('clear() discards untaken frames, counts them as dropped and wakes waiters', async () => {
    const events = new Events();
    const slots = new FrameSlots(events);
    const a = slots.sink('a');
    const b = slots.sink('b');
    slots.sink('c');
    a.push(frame('a', 1));
    a.push(frame('a', 2));
    b.push(frame('b', 1));
    const idle = [a.whenIdle(), b.whenIdle()];
    expect(slots.clear()).toBe(2);
    expect(await settled(Promise.all(idle))).toBe(true);
    expect(slots.take()).toBeUndefined();
    expect(slots.counters('a')).toMatchObject({ captured: 2, dropped: 2 });
    expect(slots.counters('b')).toMatchObject({ captured: 1, dropped: 1 });
    expect(slots.counters('c')).toMatchObject({ captured: 0, dropped: 0 });
    expect(slots.clear()).toBe(0);
  });

  it('capture errors and end are counted and reported per camera', () => {
    const events = new Events();
    const slots = new FrameSlots(events);
    const a = slots.sink('a');
    a.captureError(new Error('device busy'));
    a.captureError(new Error('timeout'));
    a.end();
    expect(events.captureErrors).toEqual([
      ['a', 'device busy'],
      ['a', 'timeout'],
    ]);
    expect(events.ended).toEqual(['a']);
    expect(slots.counters('a')).toMatchObject({ captureErrors: 2, ended: true, captured: 0 });
  });

  it('snapshot() is a copy', () => {
    const slots = new FrameSlots(new Events());
    slots.sink('a').push(frame('a', 1));
    const snap = slots.snapshot();
    slots.sink('a').push(frame('a', 2));
    expect(snap['a']?.captured).toBe(1);
    expect(slots.snapshot()['a']?.captured).toBe(2);
  });
});
