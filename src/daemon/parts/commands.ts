import { CommandServer } from '../../mqtt/commands/command-server.js';
import { CommandAuth, logCommandAccess } from '../../mqtt/commands/command-auth.js';
import type { MqttPublisher } from '../../mqtt/mqtt-publisher.js';
import type { Updater } from '../../updates/updater.js';
import { daemonCommands, type DaemonCommandsDeps } from '../daemon-commands.js';
import { childLogger, type PartContext } from './context.js';

export interface CommandsPartDeps extends Pick<PartContext, 'logger' | 'config'>, Omit<DaemonCommandsDeps, 'mqtt' | 'updateCheck'> {
  mqtt: MqttPublisher;
  /** Over-the-air updates (update-check); absent when not configured. */
  updater: Pick<Updater, 'checkNow' | 'payload'> | undefined;
}

/** Commands over MQTT (commands.enabled), for the clients CommandAuth lets in. */
export function commandsPart(deps: CommandsPartDeps) {
  const { config, mqtt, updater } = deps;
  const logger = childLogger(deps, 'commands');
  const auth = new CommandAuth(config.commands);
  logCommandAccess(logger, auth, mqtt.topics.request('#'));
  const commands = new CommandServer({
    logger,
    config: config.commands,
    auth,
    mqtt,
    commands: daemonCommands({
      cameras: deps.cameras,
      router: deps.router,
      settings: deps.settings,
      mqtt,
      ...(updater ? { updateCheck: async () => ({ outcome: await updater.checkNow(), model: updater.payload }) } : {}),
    }),
  });
  return { name: 'commands', start: () => commands.start(), stop: () => commands.stop(), commands };
}
