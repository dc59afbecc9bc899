import { z } from 'zod';

// The daemon's HTTP server: health, readiness, Prometheus metrics, snapshots, live preview.

/** Unassigned by IANA and clear of the usual Pi/Jetson services (8080 motion, 9090 Prometheus, 1883 MQTT). */
export const DEFAULT_HTTP_PORT = 8089;

export const HttpSchema = z
  .object({
    enabled: z.boolean().default(true),
    host: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .describe('address to listen on; 0.0.0.0 or :: exposes health, metrics and camera images to the network, without authentication'),
    port: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(DEFAULT_HTTP_PORT)
      .describe('0: any free port (logged). A port in use is logged as an error and retried; capture and MQTT carry on'),
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
