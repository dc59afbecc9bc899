import { setTimeout as delay } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';

/** Time as the daemon's parts see it; injected so tests can control pacing. */
export interface Clock {
  /** Wall-clock epoch milliseconds (capture timestamps). */
  now(): number;
  /** Monotonic milliseconds (durations, pacing). */
  monotonic(): number;
  /** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export function createSystemClock(): Clock {
  return {
    now: () => Date.now(),
    monotonic: () => performance.now(),
    sleep: async (ms, signal) => {
      if (signal?.aborted) return;
      try {
        await delay(Math.max(0, ms), undefined, signal ? { signal } : undefined);
      } catch (err) {
        if ((err as { name?: string }).name !== 'AbortError') throw err;
      }
    },
  };
}
