import type { Frame, FrameSink } from '../../src/camera/frame.js';

export interface Restart {
  reason: 'stall' | 'exit' | 'error';
  err: Error;
  at: number;
}

/** Records what a source reports; until() waits for a condition with a deadline. */
export class RecordingSink implements FrameSink {
  frames: Frame[] = [];
  errors: { err: Error; at: number }[] = [];
  restarts: Restart[] = [];
  ended = 0;

  push(frame: Frame): void {
    this.frames.push(frame);
  }
  whenIdle(): Promise<void> {
    return Promise.resolve();
  }
  captureError(err: Error): void {
    this.errors.push({ err, at: performance.now() });
  }
  end(): void {
    this.ended += 1;
  }
  restarting(reason: 'stall' | 'exit' | 'error', err: Error): void {
    this.restarts.push({ reason, err, at: performance.now() });
  }

  /** The captureError messages, in order. */
  messages(): string[] {
    return this.errors.map((e) => e.err.message);
  }

  /** Polls `cond` every 20 ms; throws with what was recorded when it does not hold within `ms`. */
  async until(cond: () => boolean, ms: number, what = 'condition'): Promise<void> {
    const deadline = performance.now() + ms;
    while (!cond()) {
      if (performance.now() > deadline) {
        throw new Error(
          `${what} not met within ${ms} ms; frames=${this.frames.length} restarts=${JSON.stringify(this.restarts.map((r) => r.reason))} ` +
            `errors=${JSON.stringify(this.messages())}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
