import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { Frame, FrameSink } from '../camera/frame.js';
import type { PreparedTensor } from '../vision/preprocess.js';
import type { Classification } from '../inference/classifier.js';
import type { Scored } from '../vision/postprocess.js';
import { FrameSlots, type CameraCounters } from './frame-slots.js';

export type FrameMeta = Omit<Frame, 'data'>;

export interface ClassifiedFrame {
  frame: FrameMeta;
  width: number;
  height: number;
  top: Scored[];
  /** Probabilities of the watched label indices, in the order `watch()` gave them. */
  scores: number[];
  /** The watched label indices `scores` belongs to (the watch rules may change meanwhile). */
  watched?: readonly number[];
  latency: { preprocess: number; inference: number; total: number };
}

export interface FrameClassifier {
  prepare(data: Buffer, raw?: Frame['raw']): Promise<PreparedTensor>;
  classify(tensor: PreparedTensor, k: number, watch?: readonly number[]): Promise<Classification>;
}

export interface PipelineDeps {
  logger: Logger;
  clock: Clock;
  classifier: FrameClassifier;
  topK: () => number;
  /** Label indices whose probabilities every result must carry (watch rules). */
  watch?: () => readonly number[];
  publish: (result: ClassifiedFrame) => void;
  /** Told about every failed inference (a model on probation is rolled back after repeated ones). */
  onInferenceError?: () => void;
}

interface Ready {
  frame: FrameMeta;
  tensor: PreparedTensor;
  preprocessMs: number;
  /** The classifier that prepared it: its tensor layout is only valid for that model. */
  classifier: FrameClassifier;
}

interface Swap {
  next: FrameClassifier;
  done: () => void;
}

/**
 * sources -> latest-frame slots -> preprocess (main thread, sharp on libuv threads) ->
 * inference worker -> publish. Two stages in flight at most: while the worker runs frame N,
 * frame N+1 is decoded, so preprocessing hides behind inference.
 */
export class Pipeline {
  private readonly slots: FrameSlots;
  private preparing: Promise<void> | undefined;
  private ready: Ready | undefined;
  private inferring: Promise<void> | undefined;
  private accepting = false;
  private classifier: FrameClassifier;
  private swap: Swap | undefined;
  private decodingSince: number | undefined;
  private inferringSince: number | undefined;
  private lastError: string | undefined;

  constructor(private readonly deps: PipelineDeps) {
    this.classifier = deps.classifier;
    const log = deps.logger;
    this.slots = new FrameSlots({
      onFrame: () => this.pump(),
      onDrop: (old) => log.debug({ camera: old.camera, seq: old.seq }, 'frame dropped: inference busy'),
      onCaptureError: (camera, err) => log.warn({ camera, err: err.message }, 'capture failed'),
      onEnd: (camera) => log.info({ camera }, 'source ended'),
    });
  }

  sink(camera: string): Omit<FrameSink, 'restarting'> {
    return this.slots.sink(camera);
  }

  counters(): Record<string, CameraCounters> {
    return this.slots.snapshot();
  }

  /**
   * Forgets a camera removed from the configuration (after its source stopped): its slot and
   * counters go, and a frame of it still in flight is not published.
   */
  removeCamera(camera: string): void {
    this.slots.remove(camera);
  }

  /** A camera's counters; undefined once it was removed (a frame still in flight must not bring it back). */
  private count(camera: string): CameraCounters | undefined {
    return this.slots.has(camera) ? this.slots.counters(camera) : undefined;
  }

  /**
   * When the decode and the inference running now began (monotonic ms): the watchdog tells a
   * frame that is merely slow from one stuck in a stage.
   */
  inFlightSince(): { decode: number | undefined; inference: number | undefined } {
    return { decode: this.decodingSince, inference: this.inferringSince };
  }

  /** The last inference error's message (for health reports); undefined before the first. */
  lastInferenceError(): string | undefined {
    return this.lastError;
  }

  /** Resolves when nothing is in flight (used by tests and shutdown). */
  get idle(): boolean {
    return !this.preparing && !this.ready && !this.inferring;
  }

  async start(): Promise<void> {
    this.accepting = true;
    // Frames pushed before start() wait in their slots (and their sources in whenIdle()).
    this.pump();
    await Promise.resolve();
  }

  /** Stops taking frames and finishes the frame in inference; frames not yet in it are dropped. */
  async stop(): Promise<void> {
    this.accepting = false;
    let discarded = this.slots.clear();
    while (this.preparing || this.inferring) {
      await Promise.allSettled([this.preparing, this.inferring]);
    }
    if (this.ready) {
      const counters = this.count(this.ready.frame.camera);
      if (counters) counters.dropped++;
      this.ready = undefined;
      discarded++;
    }
    if (discarded > 0) this.deps.logger.info({ discarded }, 'frames not yet in inference dropped at shutdown');
    this.pump(); // completes a pending model switch
  }

  /**
   * Switches to another model between two frames: the frames already decoded or in inference
   * finish on the old model, the next one is prepared for the new one. Resolves once switched,
   * after which the old model may be disposed. No frame fails; the gap is one inference.
   */
  setClassifier(next: FrameClassifier): Promise<void> {
    this.swap?.done();
    return new Promise((resolve) => {
      this.swap = { next, done: resolve };
      this.pump();
    });
  }

  private pump(): void {
    if (this.swap && !this.preparing && !this.ready && !this.inferring) {
      this.classifier = this.swap.next;
      const { done } = this.swap;
      this.swap = undefined;
      done();
    }
    if (!this.accepting) return;
    if (!this.preparing && !this.ready && !this.swap) {
      const frame = this.slots.take();
      if (frame) this.decodingSince = this.deps.clock.monotonic();
      if (frame) this.preparing = this.prepare(frame).finally(() => {
        this.preparing = undefined;
        this.decodingSince = undefined;
        this.pump();
      });
    }
    if (!this.inferring && this.ready) {
      const ready = this.ready;
      this.ready = undefined;
      this.inferringSince = this.deps.clock.monotonic();
      this.inferring = this.infer(ready).finally(() => {
        this.inferring = undefined;
        this.inferringSince = undefined;
        this.pump();
      });
      // The slot for the next decode is free now.
      this.pump();
    }
  }

  private async prepare(frame: Frame): Promise<void> {
    const { clock, logger } = this.deps;
    const classifier = this.classifier;
    const { data, ...meta } = frame;
    const started = clock.monotonic();
    try {
      const tensor = await classifier.prepare(data, frame.raw);
      this.ready = { frame: meta, tensor, preprocessMs: clock.monotonic() - started, classifier };
    } catch (err) {
      const counters = this.count(frame.camera);
      if (counters) counters.decodeErrors++;
      logger.warn(
        { camera: frame.camera, seq: frame.seq, source: frame.source, bytes: data.length, err: (err as Error).message },
        'frame skipped: cannot decode',
      );
    }
  }

  private async infer(ready: Ready): Promise<void> {
    const { clock, logger } = this.deps;
    const { frame, tensor, preprocessMs, classifier } = ready;
    try {
      const watched = this.deps.watch?.() ?? [];
      const { top, inferenceMs, scores } = await classifier.classify(tensor, this.deps.topK(), watched);
      const counters = this.count(frame.camera);
      if (!counters) {
        logger.debug({ camera: frame.camera, seq: frame.seq }, 'result of a removed camera discarded');
        return;
      }
      counters.classified++;
      this.deps.publish({
        frame,
        width: tensor.width,
        height: tensor.height,
        top,
        scores,
        watched,
        latency: { preprocess: preprocessMs, inference: inferenceMs, total: clock.now() - frame.capturedAt },
      });
    } catch (err) {
      const counters = this.count(frame.camera);
      if (counters) counters.inferenceErrors++;
      this.lastError = (err as Error).message;
      this.deps.onInferenceError?.();
      logger.error({ camera: frame.camera, seq: frame.seq, err: (err as Error).message }, 'inference failed; frame skipped');
    }
  }
}
