import { OpsHttp } from '../../service/http/ops-http.js';
import type { DaemonView } from '../../service/http/daemon-view.js';
import { childLogger, type PartContext } from './context.js';

export interface HttpPartDeps extends Pick<PartContext, 'logger' | 'clock' | 'config' | 'version' | 'bus'> {
  view: DaemonView;
}

/**
 * Health, readiness, metrics, snapshots, preview. Before the cameras: every frame is counted,
 * and /readyz says "no camera online" until one is. Hears every classified frame on the bus.
 */
export function httpPart(deps: HttpPartDeps) {
  const { config, bus } = deps;
  const ops = new OpsHttp({ logger: childLogger(deps, 'http'), clock: deps.clock, config: config.http, device: config.device_id, version: deps.version, view: deps.view });
  return {
    name: 'http',
    start: async () => {
      await ops.start();
      bus.on('frameClassified', ops, (r) => ops.observe(r));
    },
    stop: async () => {
      bus.removeListeners(ops);
      await ops.stop();
    },
    ops,
  };
}
