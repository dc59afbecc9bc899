import type { Frame, FrameSink } from '../camera/frame.js';

export interface CameraCounters {
  captured: number;
  classified: number;
  /** Replaced in the slot before the pipeline took them (inference was busy). */
  dropped: number;
  decodeErrors: number;
  captureErrors: number;
  /** Files a directory source refused: not regular, over max_file_bytes, or too slow to read. */
  skippedFiles: number;
  inferenceErrors: number;
  ended: boolean;
}

export interface SlotEvents {
  /** A frame is waiting; the pipeline should look. */
  onFrame(): void;
  onDrop(frame: Frame, replacedBy: Frame): void;
  onCaptureError(camera: string, err: Error): void;
  onEnd(camera: string): void;
}

interface Slot {
  frame: Frame | undefined;
  idle: (() => void)[];
  counters: CameraCounters;
}

/**
 * One latest-frame slot per camera, served round-robin: a new frame replaces an untaken one
 * (counted as dropped), so memory stays bounded and a fast camera cannot starve a slow one.
 */
export class FrameSlots {
  private readonly slots = new Map<string, Slot>();
  private readonly order: string[] = [];
  private cursor = 0;

  constructor(private readonly events: SlotEvents) {}

  /** The slot side of a camera's sink (health tracking wraps it, see monitoredSink). */
  sink(camera: string): Omit<FrameSink, 'restarting'> {
    const slot = this.slotFor(camera);
    return {
      push: (frame) => {
        slot.counters.captured++;
        const previous = slot.frame;
        slot.frame = frame;
        if (previous) {
          slot.counters.dropped++;
          this.events.onDrop(previous, frame);
        }
        this.events.onFrame();
      },
      whenIdle: () => (slot.frame ? new Promise<void>((resolve) => slot.idle.push(resolve)) : Promise.resolve()),
      captureError: (err) => {
        slot.counters.captureErrors++;
        this.events.onCaptureError(camera, err);
      },
      skipped: () => {
        slot.counters.skippedFiles++;
      },
      end: () => {
        slot.counters.ended = true;
        this.events.onEnd(camera);
      },
    };
  }

  /** The next waiting frame, round-robin over cameras; frees that camera's slot. */
  take(): Frame | undefined {
    for (let i = 0; i < this.order.length; i++) {
      const camera = this.order[(this.cursor + i) % this.order.length]!;
      const slot = this.slots.get(camera)!;
      if (!slot.frame) continue;
      this.cursor = (this.cursor + i + 1) % this.order.length;
      const frame = slot.frame;
      slot.frame = undefined;
      this.release(slot);
      return frame;
    }
    return undefined;
  }

  /** Discards untaken frames (shutdown) and wakes sources waiting for room. */
  clear(): number {
    let discarded = 0;
    for (const slot of this.slots.values()) {
      if (slot.frame) {
        discarded++;
        slot.counters.dropped++;
        slot.frame = undefined;
      }
      this.release(slot);
    }
    return discarded;
  }

  has(camera: string): boolean {
    return this.slots.has(camera);
  }

  /**
   * Forgets a camera removed from the configuration: its waiting frame (not counted anywhere:
   * its counters go too) and its place in the rotation. Sources waiting for room are woken.
   */
  remove(camera: string): void {
    const slot = this.slots.get(camera);
    if (!slot) return;
    this.slots.delete(camera);
    const i = this.order.indexOf(camera);
    this.order.splice(i, 1);
    // Keep serving the camera that was next: the ones after the removed one moved down by one.
    if (i < this.cursor) this.cursor--;
    if (this.cursor >= this.order.length) this.cursor = 0;
    slot.frame = undefined;
    this.release(slot);
  }

  counters(camera: string): CameraCounters {
    return this.slotFor(camera).counters;
  }

  snapshot(): Record<string, CameraCounters> {
    return Object.fromEntries([...this.slots].map(([id, s]) => [id, { ...s.counters }]));
  }

  private release(slot: Slot): void {
    const waiters = slot.idle.splice(0);
    for (const wake of waiters) wake();
  }

  private slotFor(camera: string): Slot {
    let slot = this.slots.get(camera);
    if (!slot) {
      slot = {
        frame: undefined,
        idle: [],
        counters: { captured: 0, classified: 0, dropped: 0, decodeErrors: 0, captureErrors: 0, skippedFiles: 0, inferenceErrors: 0, ended: false },
      };
      this.slots.set(camera, slot);
      this.order.push(camera);
    }
    return slot;
  }
}
