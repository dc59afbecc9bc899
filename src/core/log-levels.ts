import type { Logger } from 'pino';

/**
 * Changes the level of a logger and of every child made from it, at runtime.
 *
 * pino documents that a child takes its parent's level when it is created, not later (pino 10
 * happens to let a child without a level of its own follow the parent through the prototype
 * chain, but that is undocumented, and a child with its own level never follows). So this does
 * not rely on it: pino calls the root's documented `onChild` hook for every descendant
 * (children inherit the hook), and this keeps a weak reference to each and sets them all.
 * Weak, because some children are short-lived (a camera status line makes one) and must not be
 * kept alive by the registry. A reload sets one level for the whole process, which is what
 * `log.level` means, so children with a level of their own are set too.
 */
export class LogLevels {
  private readonly children = new Set<WeakRef<Logger>>();
  private pruneAt = 1_024;

  /** Pass as pino's `onChild` option of the root logger. */
  readonly onChild = (child: Logger): void => {
    this.children.add(new WeakRef(child));
    if (this.children.size >= this.pruneAt) {
      this.prune();
      this.pruneAt = Math.max(1_024, this.children.size * 2);
    }
  };

  /** Sets `level` on `root` and on every live logger descended from it. */
  set(root: Logger, level: string): void {
    root.level = level;
    for (const ref of this.children) {
      const child = ref.deref();
      if (child) child.level = level;
      else this.children.delete(ref);
    }
  }

  /** Live children tracked (for tests). */
  get size(): number {
    this.prune();
    return this.children.size;
  }

  private prune(): void {
    for (const ref of this.children) if (!ref.deref()) this.children.delete(ref);
  }
}
