import type { Logger } from '../core/logger.js';

// A file skipped again for the same reason (every pass of a looping replay) is named again only
// after this long: the counter says it is still being skipped.
const REPEAT_MS = 10 * 60_000;
// At most BURST lines per WINDOW_MS: a directory of thousands of bad files must not flood the
// journal. What is held back is counted into the next line.
const BURST = 10;
const WINDOW_MS = 60_000;

/** Logs the files a source skips: each file once per reason, rate-limited, never a flood. */
export class SkipLog {
  private readonly seen = new Map<string, { reason: string; at: number }>();
  private windowStart = Number.NEGATIVE_INFINITY;
  private lines = 0;
  private notLogged = 0;

  constructor(
    private readonly logger: Logger,
    private readonly monotonic: () => number,
  ) {}

  /** Forgets files no longer listed, so memory follows the directory, not its history. */
  retain(names: readonly string[]): void {
    const listed = new Set(names);
    for (const name of this.seen.keys()) if (!listed.has(name)) this.seen.delete(name);
  }

  note(file: string, reason: string): void {
    const now = this.monotonic();
    const prev = this.seen.get(file);
    if (prev?.reason === reason && now - prev.at < REPEAT_MS) {
      this.notLogged++;
      return;
    }
    if (now - this.windowStart >= WINDOW_MS) {
      this.windowStart = now;
      this.lines = 0;
    }
    if (this.lines >= BURST) {
      // Not remembered as logged: it gets its line once the rate allows.
      this.notLogged++;
      return;
    }
    this.lines++;
    this.seen.set(file, { reason, at: now });
    const held = this.notLogged > 0 ? { not_logged: this.notLogged } : {};
    this.notLogged = 0;
    this.logger.warn({ file, reason, ...held }, 'image file skipped');
  }
}
