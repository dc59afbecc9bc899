/**
 * Bounds what other clients keep retained in the embedded broker, which holds every retained
 * message in the daemon's memory until it is cleared. Sizes are tracked per topic, so an
 * update is judged by what it changes: a topic already held may always shrink or be cleared
 * (an empty payload deletes it, MQTT 3.3.1.3), and grow while the total stays within bounds.
 */
export class RetainedQuota {
  private readonly sizes = new Map<string, number>();
  private bytes = 0;

  constructor(private readonly limits: { maxMessages: number; maxBytes: number }) {}

  get count(): number {
    return this.sizes.size;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  /**
   * Records a retained publish of `size` payload bytes to `topic` if it fits; false: it would
   * exceed a limit, and nothing changed (the topic keeps its earlier size, if any).
   */
  admit(topic: string, size: number): boolean {
    const held = this.sizes.get(topic);
    if (size === 0) {
      if (held !== undefined) this.remove(topic, held);
      return true;
    }
    const count = this.sizes.size + (held === undefined ? 1 : 0);
    const bytes = this.bytes - (held ?? 0) + size;
    if (count > this.limits.maxMessages || (bytes > this.limits.maxBytes && size > (held ?? 0))) return false;
    this.sizes.set(topic, size);
    this.bytes = bytes;
    return true;
  }

  private remove(topic: string, held: number): void {
    this.sizes.delete(topic);
    this.bytes -= held;
  }
}
