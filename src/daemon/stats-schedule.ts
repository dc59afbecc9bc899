/** What StatsSchedule runs: a StatsTicker for one interval. */
export interface Ticker {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface StatsScheduleDeps {
  /** `stats_interval` at start, seconds; 0: no stats. */
  intervalSeconds: number;
  /** A ticker for an interval (the ticker's interval is fixed, so a change makes a new one). */
  ticker: (intervalMs: number) => Ticker;
}

/** The stats ticker, restartable with another interval when a reload changes `stats_interval`. */
export class StatsSchedule {
  private current: Ticker | undefined;
  private seconds: number | undefined;

  constructor(private readonly deps: StatsScheduleDeps) {}

  get intervalSeconds(): number {
    return this.seconds ?? this.deps.intervalSeconds;
  }

  async start(): Promise<void> {
    if (this.intervalSeconds <= 0) return;
    const ticker = this.deps.ticker(this.intervalSeconds * 1000);
    await ticker.start();
    this.current = ticker;
  }

  async stop(): Promise<void> {
    const ticker = this.current;
    this.current = undefined;
    await ticker?.stop();
  }

  /** Stops the running ticker and starts one with the new interval (none for 0). */
  async setInterval(seconds: number): Promise<void> {
    if (seconds === this.intervalSeconds) return;
    await this.stop();
    this.seconds = seconds;
    await this.start();
  }
}
