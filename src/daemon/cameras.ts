import type { Logger } from '../ops/logger.js';
import type { Clock } from '../ops/clock.js';
import type { CameraConfig, PreprocessSpec } from '../config/schema.js';
import type { FrameSink, FrameSource } from '../camera/frame.js';
import { CameraHealth, monitoredSink, type CameraHealthSnapshot } from '../camera/camera-health.js';
import { createSource } from '../camera/create-source.js';
import type { CameraCounters } from './frame-slots.js';
import type { CameraStatusPayload } from '../mqtt/payloads.js';

export interface CamerasDeps {
  logger: Logger;
  clock: Clock;
  config: CameraConfig[];
  deviceId: string;
  tmpDir: string;
  env: NodeJS.ProcessEnv;
  /** The model's input, so stream sources can scale and crop on their side. */
  modelInput: Pick<PreprocessSpec, 'size' | 'resize'>;
  /** The pipeline's slot for a camera. */
  slot: (camera: string) => Omit<FrameSink, 'restarting'>;
  counters: (camera: string) => CameraCounters | undefined;
  /** Retained per-camera status (B/D/CAMERA/status). */
  publishStatus: (camera: string, payload: CameraStatusPayload) => void;
}

interface Camera {
  id: string;
  health: CameraHealth;
  source: FrameSource | undefined;
}

/**
 * All cameras: their sources, their health, their retained MQTT status. A camera that fails
 * must never stop the daemon or the other cameras, so each is started and stopped on its own.
 */
export class Cameras {
  private readonly cameras: Camera[] = [];

  constructor(private readonly deps: CamerasDeps) {}

  async start(): Promise<void> {
    const { config, logger, clock } = this.deps;
    for (const cam of config) {
      const health = new CameraHealth({ clock, onChange: (snap) => this.changed(cam.id, snap) });
      const camera: Camera = { id: cam.id, health, source: undefined };
      this.cameras.push(camera);
      if (!cam.enabled) {
        health.disabled();
        continue;
      }
      const log = logger.child({ module: 'camera', camera: cam.id });
      try {
        camera.source = createSource(cam.source, {
          camera: cam.id,
          logger: log,
          clock,
          sink: monitoredSink(this.deps.slot(cam.id), health),
          tmpDir: this.deps.tmpDir,
          env: this.deps.env,
          modelInput: this.deps.modelInput,
        });
        await camera.source.start();
      } catch (err) {
        // Sources retry in the background; a throw here is a setup error for this camera only.
        health.error(err as Error);
        log.error({ err: (err as Error).message }, 'camera failed to start');
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.cameras.map(async (c) => {
        try {
          await c.source?.stop();
        } catch (err) {
          this.deps.logger.error({ camera: c.id, err: (err as Error).message }, 'error while stopping camera');
        }
        if (c.source) c.health.error(new Error('daemon stopped'));
      }),
    );
  }

  health(): Record<string, CameraHealthSnapshot> {
    return Object.fromEntries(this.cameras.map((c) => [c.id, c.health.snapshot()]));
  }

  statusPayload(camera: string, snap: CameraHealthSnapshot): CameraStatusPayload {
    const counters = this.deps.counters(camera);
    return {
      v: 1,
      device: this.deps.deviceId,
      camera,
      // Subscribers get three states; "starting" and a finished replay are not online.
      state: snap.state === 'online' ? 'online' : snap.state === 'disabled' ? 'disabled' : 'offline',
      since: new Date(snap.since).toISOString(),
      last_error: snap.lastError,
      ended: snap.state === 'ended',
      fps: snap.fps,
      reconnects_last_hour: snap.reconnectsLastHour,
      stalls_last_hour: snap.stallsLastHour,
      frames: {
        captured: counters?.captured ?? 0,
        classified: counters?.classified ?? 0,
        dropped: counters?.dropped ?? 0,
        decode_errors: counters?.decodeErrors ?? 0,
        capture_errors: counters?.captureErrors ?? 0,
      },
    };
  }

  private changed(camera: string, snap: CameraHealthSnapshot): void {
    const log = this.deps.logger.child({ module: 'camera', camera });
    if (snap.state === 'online') log.info('camera online');
    else if (snap.state === 'offline') log.warn({ err: snap.lastError }, 'camera offline');
    this.deps.publishStatus(camera, this.statusPayload(camera, snap));
  }
}
