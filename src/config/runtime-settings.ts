import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../core/logger.js';
import { PublishFields, type PublishConfig } from './schema.js';
import { formatPath } from './load.js';

/** What the `set` command may change at runtime; the rest of the config needs a restart. */
export const RuntimePatchSchema = z
  .object({
    min_score: PublishFields.min_score.optional(),
    top_k: PublishFields.top_k.optional(),
    only_on_change: PublishFields.only_on_change.optional(),
  })
  .strict();
export type RuntimePatch = z.infer<typeof RuntimePatchSchema>;

export interface RuntimeSettingsDeps {
  logger: Logger;
  /** The config file's `publish` section. */
  base: PublishConfig;
  /** Where changes are persisted (state_dir/runtime.json). */
  file: string;
}

/**
 * Publish settings as changed over MQTT, on top of the config file, persisted so a restart
 * keeps them. The file holds only the overrides; `reset` removes them.
 */
export class RuntimeSettings {
  private overrides: RuntimePatch = {};
  /** The config file's `publish` after a reload; deps.base until then. */
  private reloaded: PublishConfig | undefined;

  constructor(private readonly deps: RuntimeSettingsDeps) {}

  get(): PublishConfig {
    return { ...(this.reloaded ?? this.deps.base), ...this.overrides };
  }

  /**
   * The config file's `publish` section changed (reload). Overrides set over MQTT keep
   * precedence: they were the operator's latest word, and `set` with `reset: true` drops them.
   */
  setBase(base: PublishConfig): void {
    this.reloaded = base;
  }

  get overridden(): RuntimePatch {
    return { ...this.overrides };
  }

  /** Loads persisted overrides; a missing file is normal, a broken one is reported and ignored. */
  async start(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.deps.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.deps.logger.warn({ file: this.deps.file, err: (err as Error).message }, 'cannot read runtime settings; using the config file');
      }
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      this.deps.logger.warn({ file: this.deps.file }, 'runtime settings are not valid JSON; ignored');
      return;
    }
    const parsed = RuntimePatchSchema.safeParse(raw);
    if (!parsed.success) {
      const why = parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ');
      this.deps.logger.warn({ file: this.deps.file, err: why }, 'runtime settings invalid; ignored');
      return;
    }
    this.overrides = parsed.data;
    this.deps.logger.info({ overrides: this.overrides }, 'runtime settings loaded');
  }

  async stop(): Promise<void> {}

  /**
   * Applies a validated patch and persists it. Returns whether it reached the disk: a
   * read-only state directory keeps the change for this run only.
   */
  async set(patch: RuntimePatch, reset = false): Promise<{ settings: PublishConfig; persisted: boolean; error?: string }> {
    this.overrides = reset ? { ...patch } : { ...this.overrides, ...patch };
    try {
      await mkdir(dirname(this.deps.file), { recursive: true });
      const tmp = `${this.deps.file}.${process.pid}.tmp`;
      await writeFile(tmp, `${JSON.stringify(this.overrides, null, 2)}\n`);
      await rename(tmp, this.deps.file);
      return { settings: this.get(), persisted: true };
    } catch (err) {
      const error = `not persisted: ${(err as Error).message}`;
      this.deps.logger.warn({ file: this.deps.file, err: (err as Error).message }, 'runtime settings not persisted');
      return { settings: this.get(), persisted: false, error };
    }
  }
}
