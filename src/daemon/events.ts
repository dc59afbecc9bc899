import type { EventBus } from '../core/event-bus.js';

export interface CameraEvent {
  camera: string;
}

/** What the daemon's parts tell each other (one bus per daemon, made by the composition root). */
export interface DaemonEvents {
  /** A camera joined: at start and when a reload adds one, before its capture starts. */
  cameraAdded: CameraEvent;
  /**
   * A reload removed a camera, and its capture has stopped: no frame or status of it comes any
   * more. Each owner of per-camera state forgets it (camera-owners.ts).
   */
  cameraRemoved: CameraEvent;
}

export type DaemonBus = EventBus<DaemonEvents>;
