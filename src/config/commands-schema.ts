import { z } from 'zod';

// Who may send the MQTT commands (B/D/request/COMMAND), class by class.

/**
 * open: anyone who can publish to the request topic; authorised: only requests that carry a
 * secret the daemon knows (secret_file, or a client's own in clients); off: refused.
 */
export const CommandPolicy = z.enum(['open', 'authorised', 'off']);
export type CommandPolicy = z.infer<typeof CommandPolicy>;

/** A client allowed to send commands: named in its requests, proven by its own secret. */
export const CommandClientSchema = z
  .object({
    name: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-"'),
    secret_file: z.string().min(1).describe('file holding this client\'s secret'),
    allow: z.array(z.enum(['read', 'control'])).min(1).default(['read', 'control']).describe('the classes this client may use'),
  })
  .strict();

export const CommandsSchema = z
  .object({
    enabled: z.boolean().default(true).describe('false: the daemon does not subscribe to requests at all'),
    max_payload_bytes: z.number().int().min(64).max(1_048_576).default(16_384),
    read: CommandPolicy.default('open').describe('classify: the labels of the next frame, as predictions already publish'),
    control: CommandPolicy.default('authorised').describe(
      'snapshot (camera images), set, pause, resume, update-check: images and changes to the device',
    ),
    secret_file: z
      .string()
      .min(1)
      .optional()
      .describe('file holding the shared secret that "authorised" requests carry (JSON "secret", or MQTT v5 user property "secret")'),
    clients: z
      .array(CommandClientSchema)
      .default([])
      .refine((cs) => new Set(cs.map((c) => c.name)).size === cs.length, 'client names must be unique')
      .describe('the allow-list of named clients, each with its own secret and classes; requests name themselves with "client"'),
  })
  .strict();
export type CommandsConfig = z.infer<typeof CommandsSchema>;
