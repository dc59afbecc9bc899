import type { CameraHealthSnapshot } from '../camera/camera-health.js';

/** What `systemctl status` shows as "Status:" (sd_notify STATUS=). */
export interface StatusInput {
  /** Frames classified per second over the last status period. */
  fps: number;
  model: { name: string; version?: string | undefined } | undefined;
  mqttConnected: boolean;
  cameras: Record<string, Pick<CameraHealthSnapshot, 'state' | 'lastError'>>;
  /** Why watchdog pings are withheld, while they are. */
  stalled?: string | undefined;
  /** Why inference is failing (every recent inference failed), while it is. */
  failing?: string | undefined;
}

const MAX_ERROR = 80;
const MAX_LINE = 400;

const clip = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/**
 * One short line, e.g. "classifying 11.8 fps, model resnet50 1.2.0, mqtt connected" or
 * "waiting for cameras, model colors 1.0, mqtt connected; cam1 offline (connection refused)".
 * Cameras are listed only when not online, so a healthy line stays short.
 */
export function statusLine(s: StatusInput): string {
  const cameras = Object.entries(s.cameras);
  const online = cameras.some(([, c]) => c.state === 'online');
  const head = s.stalled
    ? `stalled: ${s.stalled}`
    : s.failing
      ? `failing: ${clip(s.failing, MAX_LINE / 2)}`
      : s.fps > 0
        ? `classifying ${s.fps.toFixed(1)} fps`
        : online
          ? 'no frame classified'
          : 'waiting for cameras';
  const model = s.model ? `model ${[s.model.name, s.model.version].filter(Boolean).join(' ')}` : 'no model';
  const trouble = cameras
    .filter(([, c]) => c.state !== 'online')
    .map(([id, c]) => `${id} ${c.state}${c.lastError && c.state === 'offline' ? ` (${clip(c.lastError, MAX_ERROR)})` : ''}`);
  const line = `${head}, ${model}, mqtt ${s.mqttConnected ? 'connected' : 'disconnected'}${trouble.length ? `; ${trouble.join(', ')}` : ''}`;
  return clip(line, MAX_LINE);
}
