import type { EventBus } from '../core/event-bus.js';
import type { ModelUpdatePayload } from '../mqtt/payloads.js';
import type { ClassifiedFrame } from './pipeline.js';

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
  /** The inference worker classified a frame (the frame path's fan-out, frame-path.ts). */
  frameClassified: ClassifiedFrame;
  /** The updater's state changed (retained B/D/model). */
  modelReported: ModelUpdatePayload;
  /** Another model serves now (availability carries its version). */
  modelSwapped: { version: string | undefined };
  /** A frame failed inference, or the worker crashed: a model on probation counts these. */
  inferenceFailed: { cause: 'frame' | 'worker-crash' };
}

export type DaemonBus = EventBus<DaemonEvents>;
