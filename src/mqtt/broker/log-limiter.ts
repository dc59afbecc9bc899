/**
 * At most one log line per kind and interval: a flood of refused connections or packets must
 * not become a flood of log lines (journald, an SD card). The line that goes out says how
 * many were left out since the last one.
 */
export class LogLimiter {
  private readonly kinds = new Map<string, { at: number; skipped: number }>();

  constructor(
    private readonly intervalMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The count left out before this one when it is to be logged; undefined when it is not. */
  take(kind: string): number | undefined {
    const now = this.now();
    const state = this.kinds.get(kind);
    if (state && now - state.at < this.intervalMs) {
      state.skipped++;
      return undefined;
    }
    this.kinds.set(kind, { at: now, skipped: 0 });
    return state?.skipped ?? 0;
  }
}
