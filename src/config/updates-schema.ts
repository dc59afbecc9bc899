import { z } from 'zod';

// Over-the-air model updates.

export const UpdatesSchema = z
  .object({
    manifest_url: z.string().regex(/^https?:\/\/.+/, 'http(s)://host/path/manifest.json').optional().describe('absent: updates off'),
    channel: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i).default('stable'),
    state_dir: z.string().min(1).optional().describe('where models and update state live; default: the top-level state_dir (/var/lib/edge-classifier)'),
    interval: z.number().min(10).default(3600).describe('seconds between checks (plus up to 10% jitter)'),
    public_keys: z
      .array(z.string().min(1))
      .default([])
      .describe('trusted Ed25519 public keys (PEM text or file paths); several allow key rotation'),
    keep_versions: z.number().int().min(2).max(20).default(3).describe('installed versions kept for rollback'),
    validation: z
      .object({
        // Defaults from the cross-CPU measurements in docs/updates.md ("Validation across CPUs").
        min_top1_agreement: z
          .number()
          .min(0)
          .max(1)
          .default(0.8)
          .describe("share of the images the publisher's model was confident about (top-1 >= 0.5, 0.25 ahead) whose top-1 must match; all images for releases without reference vectors"),
        max_mean_distance: z
          .number()
          .min(0)
          .max(1)
          .default(0.24)
          .describe("mean total-variation distance allowed between the publisher's recorded probabilities and this device's"),
        max_accuracy_drop: z
          .number()
          .min(0)
          .max(1)
          .default(0.15)
          .describe('on images with truth labels: how far below the publisher and the serving model the accuracy may fall (plus one image)'),
        min_accuracy: z.number().min(0).max(1).default(0.5).describe('on images with truth labels: below this the model is refused'),
        max_latency_factor: z.number().min(1).default(2).describe('median inference time at most this times the current model'),
        golden_dir: z.string().min(1).optional().describe('local images + expected.tsv (file<TAB>label index) checked too'),
        timeout_s: z
          .number()
          .min(1)
          .max(86_400)
          .default(600)
          .describe('a validation not done by then fails (its process is killed 30 s later); a TensorRT engine build alone can take minutes'),
      })
      .strict()
      .default({ min_top1_agreement: 0.8, max_mean_distance: 0.24, max_accuracy_drop: 0.15, min_accuracy: 0.5, max_latency_factor: 2, timeout_s: 600 }),
    probation: z
      .object({
        seconds: z.number().min(1).default(300).describe('after activation: errors in this window roll back'),
        max_inference_errors: z.number().int().min(1).default(5),
        max_restarts: z.number().int().min(1).default(3).describe('daemon restarts within the window (a crash loop)'),
      })
      .strict()
      .default({ seconds: 300, max_inference_errors: 5, max_restarts: 3 }),
    download: z
      .object({
        timeout_ms: z.number().int().min(1000).default(30_000).describe('no byte for this long aborts the attempt'),
        retries: z.number().int().min(0).default(5),
      })
      .strict()
      .default({ timeout_ms: 30_000, retries: 5 }),
  })
  .strict();
export type UpdatesConfig = z.infer<typeof UpdatesSchema>;
