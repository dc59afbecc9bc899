import { z } from 'zod';
import type { Command } from '../mqtt/commands/command-server.js';
import type { CommandAccess } from '../mqtt/commands/command-auth.js';
import { frameJpeg } from '../camera/frame-jpeg.js';
import type { MqttPublisher } from '../mqtt/mqtt-publisher.js';
import { RuntimePatchSchema, type RuntimeSettings } from '../config/runtime-settings.js';
import type { Cameras } from './cameras.js';
import type { PredictionRouter } from './prediction-router.js';

export interface DaemonCommandsDeps {
  cameras: Cameras;
  router: PredictionRouter;
  settings: RuntimeSettings;
  mqtt: Pick<MqttPublisher, 'publish' | 'topics'>;
  /** Over-the-air updates; absent until configured. */
  updateCheck?: () => Promise<unknown>;
}

const cameraParam = z.object({ camera: z.string().min(1).max(64) }).strict();

function command<S extends z.ZodType>(access: CommandAccess, params: S, run: (p: z.infer<S>) => Promise<unknown>): Command {
  return { access, params, run };
}

/**
 * The MQTT commands, bound to the daemon's parts. `read`: what predictions already publish;
 * `control`: camera images (snapshot) and anything that changes the device (docs/mqtt.md).
 */
export function daemonCommands(deps: DaemonCommandsDeps): Record<string, Command> {
  const { cameras, router, settings, mqtt } = deps;
  return {
    snapshot: command('control', cameraParam, async ({ camera }) => {
      const frame = cameras.latest(camera);
      if (!frame) throw new Error(`camera ${camera} has no frame yet`);
      const jpeg = await frameJpeg(frame);
      const topic = mqtt.topics.snapshot(camera);
      mqtt.publish(topic, jpeg, { qos: 0 });
      return { topic, bytes: jpeg.length, seq: frame.seq, ts: new Date(frame.capturedAt).toISOString(), source: frame.source };
    }),
    classify: command(
      'read',
      cameraParam.extend({ timeout_ms: z.number().int().min(100).max(60_000).default(10_000) }),
      async ({ camera, timeout_ms }) => {
        if (!cameras.ids().includes(camera)) throw new Error(`unknown camera "${camera}"; cameras: ${cameras.ids().join(', ')}`);
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no frame from ${camera} within ${timeout_ms} ms`)), timeout_ms);
        });
        try {
          return await Promise.race([router.nextPrediction(camera), timeout]);
        } finally {
          clearTimeout(timer);
        }
      },
    ),
    set: command('control', RuntimePatchSchema.extend({ reset: z.boolean().default(false) }).strict(), async ({ reset, ...patch }) => {
      const result = await settings.set(patch, reset);
      return { settings: result.settings, persisted: result.persisted, ...(result.error ? { warning: result.error } : {}) };
    }),
    pause: command('control', cameraParam, async ({ camera }) => {
      await cameras.pause(camera);
      return { camera, paused: true };
    }),
    resume: command('control', cameraParam, async ({ camera }) => {
      await cameras.resume(camera);
      return { camera, paused: false };
    }),
    'update-check': command('control', z.object({}).strict(), async () => {
      if (!deps.updateCheck) throw new Error('over-the-air updates are not configured (updates.manifest_url)');
      return deps.updateCheck();
    }),
  };
}
