import type { Clock } from '../../core/clock.js';

export interface LatestThrottleDeps<V> {
  clock: Pick<Clock, 'monotonic'>;
  /** At most one emit per key per interval. */
  intervalMs: number;
  emit: (key: string, value: V) => void;
}

interface KeyState<V> {
  last: number;
  pending: { value: V } | undefined;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Per-key rate limit that keeps the latest value: the first value of a quiet key goes out at
 * once, later ones within the interval replace each other and the last goes out when the
 * interval ends. So a 30 fps camera yields a few updates a second, and the final state is
 * never lost (the preview shows what the model thinks now, not 200 ms ago).
 */
export class LatestThrottle<V> {
  private readonly keys = new Map<string, KeyState<V>>();

  constructor(private readonly deps: LatestThrottleDeps<V>) {}

  offer(key: string, value: V): void {
    const now = this.deps.clock.monotonic();
    let state = this.keys.get(key);
    if (!state) {
      state = { last: -Infinity, pending: undefined, timer: undefined };
      this.keys.set(key, state);
    }
    const wait = state.last + this.deps.intervalMs - now;
    if (wait <= 0 && !state.timer) {
      state.last = now;
      this.deps.emit(key, value);
      return;
    }
    state.pending = { value };
    if (!state.timer) {
      const s = state;
      s.timer = setTimeout(() => this.flush(key, s), Math.max(0, wait));
    }
  }

  /** Drops pending values and timers. */
  stop(): void {
    for (const state of this.keys.values()) clearTimeout(state.timer);
    this.keys.clear();
  }

  private flush(key: string, state: KeyState<V>): void {
    state.timer = undefined;
    const pending = state.pending;
    state.pending = undefined;
    if (!pending) return;
    state.last = this.deps.clock.monotonic();
    this.deps.emit(key, pending.value);
  }
}
