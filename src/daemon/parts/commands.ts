import { CommandServer } from '../../mqtt/commands/command-server.js';
import { CommandAuth, logCommandAccess } from '../../mqtt/commands/command-auth.js';
import type { MqttPublisher } from '../../mqtt/mqtt-publisher.js';
import type { ModelManager } from '../model-manager.js';
import { daemonCommands, type DaemonCommandsDeps } from '../daemon-commands.js';
import { childLogger, type PartContext } from './context.js';

export interface CommandsPartDeps extends Pick<PartContext, 'logger' | 'config'>, Omit<DaemonCommandsDeps, 'mqtt' | 'updateCheck'> {
  mqtt: MqttPublisher;
  models: Pick<ModelManager, 'updates'>;
}

/** Commands over MQTT (commands.enabled), for the clients CommandAuth lets in. */
export function commandsPart(deps: CommandsPartDeps) {
  const { config, mqtt, models } = deps;
  const logger = childLogger(deps, 'commands');
  const auth = new CommandAuth(config.commands);
  logCommandAccess(logger, auth, mqtt.topics.request('#'));
  const updates = models.updates;
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
      ...(updates ? { updateCheck: async () => ({ outcome: await updates.checkNow(), model: updates.payload }) } : {}),
    }),
  });
  return { name: 'commands', start: () => commands.start(), stop: () => commands.stop(), commands };
}
