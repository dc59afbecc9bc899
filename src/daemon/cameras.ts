import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { CameraConfig, PreprocessSpec } from '../config/schema.js';
import type { Frame, FrameSink, FrameSource } from '../camera/frame.js';
import { CameraHealth, monitoredSink, type CameraHealthSnapshot } from '../camera/camera-health.js';
import { createSource } from '../camera/create-source.js';
import type { CameraCounters } from './frame-slots.js';
import type { CameraStatusPayload } from '../mqtt/payloads.js';
import type { DaemonBus } from './events.js';

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
  /** cameraAdded and cameraRemoved go out here. */
  events: Pick<DaemonBus, 'emit'>;
}

interface Camera {
  config: CameraConfig;
  id: string;
  health: CameraHealth;
  source: FrameSource | undefined;
  paused: boolean;
  latest: Frame | undefined;
  /** Removed by a configuration reload: its state changes are no longer published. */
  removed: boolean;
}

/**
 * All cameras: their sources, their health, their retained MQTT status. A camera that fails
 * must never stop the daemon or the other cameras, so each is started and stopped on its own.
 */
export class Cameras {
  private readonly cameras: Camera[] = [];

  constructor(private readonly deps: CamerasDeps) {}

  async start(): Promise<void> {
    for (const cam of this.deps.config) await this.open(cam);
  }

  /** A camera added by a configuration reload. */
  async add(config: CameraConfig): Promise<void> {
    if (this.cameras.some((c) => c.id === config.id)) throw new Error(`camera ${config.id} already exists`);
    await this.open(config);
  }

  /**
   * A camera removed by a configuration reload: its capture is stopped and it is forgotten.
   * Then cameraRemoved tells the other owners of its state (slot, counters, filters, retained
   * topics) to drop theirs: no frame or status of it comes any more.
   */
  async remove(id: string): Promise<void> {
    const camera = this.find(id);
    this.cameras.splice(this.cameras.indexOf(camera), 1);
    camera.removed = true;
    await this.stopSource(camera);
    this.deps.events.emit('cameraRemoved', { camera: id });
  }

  /**
   * A camera whose configuration changed (reload): its capture restarts with the new one. A
   * camera paused over MQTT stays paused and resumes with the new configuration.
   */
  async replace(config: CameraConfig): Promise<void> {
    const camera = this.find(config.id);
    await this.stopSource(camera);
    camera.config = config;
    camera.latest = undefined;
    if (!config.enabled) {
      camera.paused = false;
      camera.health.disabled();
      return;
    }
    if (camera.paused) return;
    camera.health.restart();
    await this.startSource(camera);
  }

  private async open(config: CameraConfig): Promise<void> {
    const health = new CameraHealth({ clock: this.deps.clock, onChange: () => this.changed(camera) });
    const camera: Camera = { config, id: config.id, health, source: undefined, paused: false, latest: undefined, removed: false };
    this.cameras.push(camera);
    this.deps.events.emit('cameraAdded', { camera: config.id });
    if (config.enabled) await this.startSource(camera);
    else health.disabled();
  }

  private async stopSource(camera: Camera): Promise<void> {
    const source = camera.source;
    camera.source = undefined;
    try {
      await source?.stop();
    } catch (err) {
      this.deps.logger.error({ camera: camera.id, err: (err as Error).message }, 'error while stopping camera');
    }
  }

  /** The most recent frame of a camera (for snapshots); undefined before the first one. */
  latest(camera: string): Frame | undefined {
    return this.find(camera).latest;
  }

  ids(): string[] {
    return this.cameras.map((c) => c.id);
  }

  /** Stops a camera's capture (no CPU spent on it) until `resume`. */
  async pause(id: string): Promise<void> {
    const camera = this.find(id);
    if (!camera.config.enabled) throw new Error(`camera ${id} is disabled in the config`);
    if (camera.paused) return;
    camera.paused = true;
    const source = camera.source;
    camera.source = undefined;
    await source?.stop();
    camera.health.disabled();
  }

  async resume(id: string): Promise<void> {
    const camera = this.find(id);
    if (!camera.config.enabled) throw new Error(`camera ${id} is disabled in the config`);
    if (!camera.paused) return;
    camera.paused = false;
    camera.health.restart();
    await this.startSource(camera);
  }

  private find(id: string): Camera {
    const camera = this.cameras.find((c) => c.id === id);
    if (!camera) throw new Error(`unknown camera "${id}"; cameras: ${this.ids().join(', ')}`);
    return camera;
  }

  private async startSource(camera: Camera): Promise<void> {
    const { logger, clock } = this.deps;
    const log = logger.child({ module: 'camera', camera: camera.id });
    const monitored = monitoredSink(this.deps.slot(camera.id), camera.health);
    try {
      camera.source = createSource(camera.config.source, {
        camera: camera.id,
        logger: log,
        clock,
        sink: {
          ...monitored,
          push: (frame) => {
            camera.latest = frame;
            monitored.push(frame);
          },
        },
        tmpDir: this.deps.tmpDir,
        env: this.deps.env,
        modelInput: this.deps.modelInput,
      });
      await camera.source.start();
    } catch (err) {
      // Sources retry in the background; a throw here is a setup error for this camera only.
      camera.health.error(err as Error);
      log.error({ err: (err as Error).message }, 'camera failed to start');
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
        if (c.source) c.health.stopped();
      }),
    );
  }

  health(): Record<string, CameraHealthSnapshot> {
    return Object.fromEntries(this.cameras.map((c) => [c.id, c.health.snapshot()]));
  }

  statusPayload(camera: Camera): CameraStatusPayload {
    const snap = camera.health.snapshot();
    const counters = this.deps.counters(camera.id);
    return {
      v: 1,
      device: this.deps.deviceId,
      camera: camera.id,
      paused: camera.paused,
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
        skipped_files: counters?.skippedFiles ?? 0,
      },
    };
  }

  private changed(camera: Camera): void {
    if (camera.removed) return;
    const payload = this.statusPayload(camera);
    const log = this.deps.logger.child({ module: 'camera', camera: camera.id });
    if (payload.state === 'online') log.info('camera online');
    else if (payload.state === 'offline' && payload.last_error) log.warn({ err: payload.last_error }, 'camera offline');
    this.deps.publishStatus(camera.id, payload);
  }
}
