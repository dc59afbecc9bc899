import type { ModelStore } from '../../updates/model-store.js';
import { ModelManager } from '../model-manager.js';
import type { PartContext } from './context.js';

export interface ModelPartDeps extends Pick<PartContext, 'logger' | 'clock' | 'config' | 'bus'> {
  workerUrl: URL;
  store: ModelStore | undefined;
}

/**
 * The serving model, loaded in a worker thread. Before anything is announced: a broken model
 * is a startup error. Built before the updater part (which swaps releases in through it) and
 * started after it (which readies the store it loads from).
 */
export function modelPart(deps: ModelPartDeps) {
  const { bus } = deps;
  const models = new ModelManager({
    logger: deps.logger,
    clock: deps.clock,
    config: deps.config,
    workerUrl: deps.workerUrl,
    store: deps.store,
    onInferenceError: () => bus.emit('inferenceFailed', { cause: 'worker-crash' }),
    onSwapped: (version) => bus.emit('modelSwapped', { version }),
  });
  return { name: 'model', start: () => models.start(), stop: () => models.stop(), models };
}
