import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../config/config-error.js';
import type { CommandPolicy, CommandsConfig } from '../../config/commands-schema.js';
import type { Logger } from '../../core/logger.js';

/** What a command may do: `read` answers with what predictions already tell; `control` shows images or changes the device. */
export type CommandAccess = 'read' | 'control';

/** What a request presented to prove who sent it: JSON fields or MQTT v5 user properties. */
export interface Credentials {
  client?: string;
  secret?: string;
}

export type Decision = { allowed: true; client: string | null } | { allowed: false; reason: string };

interface KnownClient {
  name: string;
  digest: Buffer;
  allow: ReadonlySet<CommandAccess>;
}

/**
 * Decides whether a request may run a command of a given class. Secrets are read once at
 * start (an unreadable file is a configuration error) and compared as SHA-256 digests with
 * timingSafeEqual, so neither their content nor their length leaks through timing.
 */
export class CommandAuth {
  private readonly shared: Buffer | undefined;
  private readonly clients: Map<string, KnownClient>;

  constructor(private readonly config: Pick<CommandsConfig, 'read' | 'control' | 'secret_file' | 'clients'>) {
    this.shared = config.secret_file ? digest(readSecret('commands.secret_file', config.secret_file)) : undefined;
    this.clients = new Map(
      config.clients.map((c, i) => [
        c.name,
        { name: c.name, digest: digest(readSecret(`commands.clients[${i}].secret_file`, c.secret_file)), allow: new Set(c.allow) },
      ]),
    );
  }

  /** True when "authorised" can ever succeed: some secret is configured. */
  get hasSecrets(): boolean {
    return this.shared !== undefined || this.clients.size > 0;
  }

  policy(access: CommandAccess): CommandPolicy {
    return this.config[access];
  }

  decide(access: CommandAccess, creds: Credentials): Decision {
    const policy = this.policy(access);
    if (policy === 'off') return { allowed: false, reason: `not allowed: ${access} commands are turned off (commands.${access}: off)` };
    if (policy === 'open') return { allowed: true, client: creds.client ?? null };
    if (!this.hasSecrets) {
      return { allowed: false, reason: `not authorised: ${access} commands need a secret, and none is configured (commands.secret_file or commands.clients)` };
    }
    if (creds.secret === undefined) return { allowed: false, reason: `not authorised: ${access} commands need "secret"` };
    const presented = digest(creds.secret);
    if (creds.client !== undefined) {
      const known = this.clients.get(creds.client);
      // The same answer for an unknown name and a wrong secret: names are not to be probed.
      if (!known || !timingSafeEqual(known.digest, presented)) return { allowed: false, reason: 'not authorised: unknown client or wrong secret' };
      if (!known.allow.has(access)) return { allowed: false, reason: `not authorised: client "${known.name}" may not use ${access} commands` };
      return { allowed: true, client: known.name };
    }
    if (this.shared && timingSafeEqual(this.shared, presented)) return { allowed: true, client: null };
    return { allowed: false, reason: 'not authorised: wrong secret' };
  }
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** A secret file's content without the trailing newline editors and `echo` add. */
function readSecret(key: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config', [`${key}: cannot read ${path}: ${(err as Error).message}`]);
  }
  const secret = text.replace(/\r?\n$/, '');
  // A short secret is guessable by anyone who may publish requests; 16 characters is `openssl rand -hex 8`.
  if (secret.length < 16) throw new ConfigError('config', [`${key}: the secret in ${path} is ${secret.length} characters; use at least 16 (e.g. openssl rand -hex 16)`]);
  return secret;
}

/** Says at start what the command policy leaves open, so an operator reading the log knows. */
export function logCommandAccess(logger: Pick<Logger, 'warn' | 'info'>, auth: Pick<CommandAuth, 'policy' | 'hasSecrets'>, requestTopics: string): void {
  for (const access of ['read', 'control'] as const) {
    const policy = auth.policy(access);
    if (policy === 'open' && access === 'control') {
      logger.warn(
        { topics: requestTopics },
        'control commands are open: any client that can publish there can fetch camera images, pause cameras and change settings; restrict the topic with a broker ACL (docs/mqtt.md#security) or set commands.control: authorised',
      );
    } else if (policy === 'authorised' && !auth.hasSecrets) {
      logger.info({ topics: requestTopics }, `${access} commands will not run until commands.secret_file or commands.clients is set`);
    }
  }
}
