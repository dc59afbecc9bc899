import { join } from 'node:path';
import { RuntimeSettings } from '../../config/runtime-settings.js';
import { childLogger, type PartContext } from './context.js';

/** The runtime settings that `set` changes (state_dir/runtime.json). */
export function settingsPart(ctx: Pick<PartContext, 'logger' | 'config'>) {
  const { config } = ctx;
  const settings = new RuntimeSettings({ logger: childLogger(ctx, 'settings'), base: config.publish, file: join(config.state_dir, 'runtime.json') });
  return { name: 'settings', start: () => settings.start(), stop: () => settings.stop(), settings };
}
