import type { Clock } from '../core/clock.js';

export interface ChangeFilterConfig {
  /** Publish when the top-1 score moves by more than this (absolute, 0-1). */
  hysteresis: number;
  /** ...and at least this often (seconds), even when nothing changed. */
  heartbeat: number;
}

export interface ChangeFilterDeps {
  clock: Clock;
  config: () => ChangeFilterConfig;
}

/**
 * `only_on_change` for one camera: a prediction is published when the top-1 label changes,
 * when its score moves by more than the hysteresis since the last published one, or when the
 * heartbeat is due. Subscribers get every change and a sign of life, not 10 identical
 * messages a second.
 */
export class ChangeFilter {
  private last: { index: number; score: number; at: number } | undefined;

  constructor(private readonly deps: ChangeFilterDeps) {}

  /** Decides for this frame's top-1 (undefined when nothing passed min_score). */
  shouldPublish(top1: { index: number; score: number } | undefined): boolean {
    const now = this.deps.clock.monotonic();
    const { hysteresis, heartbeat } = this.deps.config();
    const index = top1?.index ?? -1;
    const score = top1?.score ?? 0;
    const last = this.last;
    const publish =
      !last ||
      last.index !== index ||
      Math.abs(last.score - score) > hysteresis ||
      now - last.at >= heartbeat * 1000;
    if (publish) this.last = { index, score, at: now };
    return publish;
  }

  reset(): void {
    this.last = undefined;
  }
}
