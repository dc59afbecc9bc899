import type { Logger } from './logger.js';

export interface EventBusDeps {
  logger: Pick<Logger, 'error'>;
}

interface Listener<P> {
  callback: (payload: P) => void;
}

/**
 * Typed events between parts that must hear about each other (after zigbee2mqtt's eventBus):
 * `E` maps each event name to its payload. Listeners are registered under an owner (the part
 * itself) and removed per owner, so a part that stops takes all its listeners with it. One bus
 * per daemon, made by the composition root: no singleton, so tests and several daemons in one
 * process do not hear each other.
 */
export class EventBus<E extends object> {
  private readonly listeners: { [K in keyof E]?: Listener<E[K]>[] } = {};
  private readonly byOwner = new Map<object, (() => void)[]>();

  constructor(private readonly deps: EventBusDeps) {}

  on<K extends keyof E>(event: K, owner: object, callback: (payload: E[K]) => void): void {
    const list = this.listeners[event] ?? [];
    this.listeners[event] = list;
    const listener = { callback };
    list.push(listener);
    const removers = this.byOwner.get(owner) ?? [];
    removers.push(() => {
      const at = list.indexOf(listener);
      if (at >= 0) list.splice(at, 1);
    });
    this.byOwner.set(owner, removers);
  }

  /**
   * Calls the listeners of `event` in the order they were added. One that throws is logged and
   * the rest still run: a part's bug must not stop the others, nor the part that emitted.
   */
  emit<K extends keyof E>(event: K, payload: E[K]): void {
    // A copy: a listener may add or remove listeners while this runs.
    for (const { callback } of [...(this.listeners[event] ?? [])]) {
      try {
        callback(payload);
      } catch (err) {
        this.deps.logger.error({ event: String(event), err: err instanceof Error ? err.message : String(err) }, 'event listener failed');
      }
    }
  }

  removeListeners(owner: object): void {
    for (const remove of this.byOwner.get(owner) ?? []) remove();
    this.byOwner.delete(owner);
  }
}
