import { z } from 'zod';

// The daemon's HTTP server: health, readiness, Prometheus metrics, snapshots, live preview.

/** Unassigned by IANA and clear of the usual Pi/Jetson services (8080 motion, 9090 Prometheus, 1883 MQTT). */
export const DEFAULT_HTTP_PORT = 8089;

/**
 * A Host header value: a DNS name or IPv4 address, or an IPv6 address in brackets, then an
 * optional port. Nothing else (no userinfo, paths, percent signs or spaces), so that what is
 * compared is exactly what a browser sends for a URL with that name.
 */
export const HOST_VALUE = /^(?:\[[0-9a-f:.]+\]|[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?)(?::\d{1,5})?$/i;

const allowedHost = z
  .string()
  .max(260)
  .regex(HOST_VALUE, 'expected a host name as a browser sends it in the Host header: camera.local, camera.local:8089, 192.168.1.20 or [fd00::20]');

const HttpAuthSchema = z
  .object({
    token_file: z
      .string()
      .min(1)
      .optional()
      .describe('file holding a bearer token (at least 16 characters; `openssl rand -hex 32`): `Authorization: Bearer TOKEN`, e.g. for Prometheus'),
    basic_file: z
      .string()
      .min(1)
      .optional()
      .describe('file of `user:$scrypt$...` lines (docs/operations.md says how to make one): HTTP basic auth, which browsers (and the preview page) can use'),
  })
  .strict()
  .refine((a) => a.token_file !== undefined || a.basic_file !== undefined, 'set token_file, basic_file or both (or remove http.auth)');

export const HttpSchema = z
  .object({
    enabled: z.boolean().default(true),
    host: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .describe('address to listen on; 0.0.0.0 or :: exposes health, metrics and camera images to the network: set http.auth there'),
    port: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(DEFAULT_HTTP_PORT)
      .describe('0: any free port (logged). A port in use is logged as an error and retried; capture and MQTT carry on'),
    allowed_hosts: z
      .array(allowedHost)
      .max(64)
      .default([])
      .describe(
        'more names the server answers to (Host header), e.g. camera.local or a reverse proxy\'s name; without a port, any port. ' +
          'Always allowed: http.host itself, loopback names on loopback, this machine\'s addresses and hostname on 0.0.0.0/::. Others get 421 (DNS rebinding)',
      ),
    auth: HttpAuthSchema.optional().describe('require credentials on every path but /healthz; files are read at start'),
    preview: z
      .boolean()
      .default(true)
      .describe('the live preview page (/), its event stream (/events) and /snapshot/CAMERA.jpg; false: health and metrics only, no images'),
    max_event_clients: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(8)
      .describe('preview pages connected at once; more get 503'),
  })
  .strict();
export type HttpConfig = z.infer<typeof HttpSchema>;
export type HttpAuthConfig = z.infer<typeof HttpAuthSchema>;
