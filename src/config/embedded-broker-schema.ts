import { z } from 'zod';

// The in-process MQTT broker (aedes) used when mqtt.url is "embedded". It runs inside the
// daemon, so every byte a client makes it hold is the daemon's memory: each limit below bounds
// one way a client could grow it (docs/embedded-broker.md).

const KiB = 1024;
const MiB = 1024 * KiB;

export const EmbeddedBrokerSchema = z
  .object({
    host: z.string().default('127.0.0.1').describe('beyond loopback, every host that reaches it can read predictions and snapshots: set username'),
    port: z.number().int().min(0).max(65535).default(1883),
    max_packet_bytes: z
      .number()
      .int()
      .min(KiB)
      .max(256 * MiB)
      .default(256 * KiB)
      .describe("largest MQTT packet a client may send; a connection announcing more is closed before it is buffered (the daemon's own client is exempt: snapshots are whole JPEG frames)"),
    max_connections: z.number().int().min(2).max(10_000).default(64).describe('TCP connections at once, the daemon\'s own included; more are refused'),
    max_retained_messages: z.number().int().min(0).default(1000).describe("retained topics other clients may hold (the daemon's own are not counted); beyond it new ones are passed on without being retained"),
    max_retained_bytes: z.number().int().min(0).default(16 * MiB).describe('payload bytes of those retained messages'),
    connect_timeout_ms: z.number().int().min(1000).max(300_000).default(10_000).describe('a connection that sends no CONNECT within this is closed'),
    username: z.string().min(1).optional().describe('with password_file: other clients must log in with these; anonymous ones are refused'),
    password_file: z.string().min(1).optional().describe('file holding the password for username (e.g. a systemd credential)'),
  })
  .strict()
  .refine((b) => (b.username === undefined) === (b.password_file === undefined), {
    message: 'username and password_file go together',
    path: ['password_file'],
  });
export type EmbeddedBrokerConfig = z.infer<typeof EmbeddedBrokerSchema>;
