import { join } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import type { PreprocessSpec } from '../../config/schema.js';
import type { MqttPublisher } from '../../mqtt/mqtt-publisher.js';
import { Cameras } from '../cameras.js';
import type { Pipeline } from '../pipeline.js';
import type { PartContext } from './context.js';

/** The daemon's scratch directory (webcam shots), removed at shutdown. */
export function tmpDirPart(deps: { tmpRoot: string }) {
  let dir: string | undefined;
  return {
    name: 'tmp',
    start: async () => (dir = await mkdtemp(join(deps.tmpRoot, 'edge-classifier-'))),
    stop: async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    },
    stopOnFailedStart: true,
    dir: (): string => {
      if (!dir) throw new Error('the scratch directory is made when the tmp part starts');
      return dir;
    },
  };
}

export interface CamerasPartDeps extends Pick<PartContext, 'logger' | 'clock' | 'config' | 'env' | 'bus'> {
  tmpDir: string;
  modelInput: Pick<PreprocessSpec, 'size' | 'resize'>;
  /** Where each camera's frames go: the first step of the frame path. */
  pipeline: Pick<Pipeline, 'sink' | 'counters'>;
  mqtt: Pick<MqttPublisher, 'publishCameraStatus'>;
}

/** One source per camera; Cameras emits cameraAdded and cameraRemoved. */
export function camerasPart(deps: CamerasPartDeps) {
  const { config, pipeline, mqtt } = deps;
  const cameras = new Cameras({
    logger: deps.logger,
    clock: deps.clock,
    config: config.cameras,
    deviceId: config.device_id,
    tmpDir: deps.tmpDir,
    env: deps.env,
    modelInput: deps.modelInput,
    slot: (id) => pipeline.sink(id),
    counters: (id) => pipeline.counters()[id],
    publishStatus: (_id, payload) => mqtt.publishCameraStatus(payload),
    events: deps.bus,
  });
  return { name: 'cameras', start: () => cameras.start(), stop: () => cameras.stop(), cameras };
}
