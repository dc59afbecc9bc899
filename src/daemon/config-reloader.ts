import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../config/load.js';
import { diffConfig, mergeRuntime, runtimeKeyOf, type ConfigDiff } from '../config/config-diff.js';
import type { RuntimeSettings } from '../config/runtime-settings.js';
import { resolveRules, type LabelWatcher, type ResolvedRule } from '../rules/label-watch.js';
import type { MqttPublisher } from '../mqtt/mqtt-publisher.js';
import type { ConfigReportPayload } from '../mqtt/payloads.js';
import type { Cameras } from './cameras.js';
import type { StatsSchedule } from './stats-schedule.js';

/** Where a reload reads the configuration: the file the daemon started with, same loader. */
export interface ConfigSource {
  file: string;
  load: () => Promise<Config>;
}

export interface ConfigReloaderDeps {
  logger: Logger;
  clock: Clock;
  /** The configuration the daemon started with. */
  config: Config;
  deviceId: string;
  /** The serving model's labels (watch rules are bound to them). */
  labels: () => readonly string[];
  /** Sets the level of the root logger and of every child logger. */
  setLogLevel: (level: Config['log']['level']) => void;
  settings: Pick<RuntimeSettings, 'setBase' | 'overridden'>;
  watcher: Pick<LabelWatcher, 'setRules' | 'rulesFor'>;
  /** Its remove() tells the owners of a camera's state to forget it (cameraRemoved). */
  cameras: Pick<Cameras, 'add' | 'remove' | 'replace' | 'ids'>;
  stats: Pick<StatsSchedule, 'setInterval'>;
  mqtt: Pick<MqttPublisher, 'topics' | 'subscribe' | 'unsubscribe' | 'retain' | 'clearRetained' | 'republish'>;
  /** Home Assistant discovery again (cameras or watch rules changed); absent when disabled. */
  resyncDiscovery?: () => void;
}

type Report = ConfigReportPayload;

/**
 * Applies a reloaded configuration to the running daemon. Validation (schema, watch labels)
 * happens before anything changes, so a bad file changes nothing. Runtime keys are applied;
 * the rest is reported as needing a restart and keeps its running value, so the next reload
 * reports it again. Reloads run one at a time: while one runs, further requests are coalesced
 * into a single next one (which reads the file as it is then).
 */
export class ConfigReloader {
  private current: Config | undefined;
  private running: Promise<Report | undefined> | undefined;
  private waiting: Promise<Report | undefined> | undefined;
  private closed = false;
  private reported = false;
  private watchingStale = false;

  constructor(private readonly deps: ConfigReloaderDeps) {}

  /** The configuration in force: the start-up one with the runtime changes applied since. */
  get active(): Config {
    return this.current ?? this.deps.config;
  }

  async start(): Promise<void> {
    const { mqtt } = this.deps;
    // A report retained by an earlier run of the daemon is stale once it restarted: the broker
    // hands it to this subscription, and it is deleted. Nothing is sent when there is none, so
    // subscribers see no empty message at every start.
    mqtt.subscribe(mqtt.topics.config, (_topic, payload) => {
      if (!this.reported && payload.length > 0) mqtt.clearRetained(mqtt.topics.config);
    });
    this.watchingStale = true;
    await Promise.resolve();
  }

  /** Waits for a reload in progress; later requests are ignored (shutdown). */
  async stop(): Promise<void> {
    this.closed = true;
    while (this.running || this.waiting) await (this.waiting ?? this.running);
  }

  /** Reloads from `from`; resolves with the report, or undefined when ignored (shutting down). Never rejects. */
  reload(from: ConfigSource): Promise<Report | undefined> {
    if (this.closed) return Promise.resolve(this.ignored());
    if (!this.running && !this.waiting) return this.begin(from);
    // At most one waits: it reads the file when it runs, so it covers every request made meanwhile.
    this.waiting ??= (this.running ?? Promise.resolve()).then(() => {
      this.waiting = undefined;
      return this.begin(from);
    });
    return this.waiting;
  }

  private begin(from: ConfigSource): Promise<Report | undefined> {
    const run = this.run(from)
      .catch((err: unknown) => {
        this.deps.logger.error({ file: from.file, err: (err as Error).message }, 'config reload failed');
        return undefined;
      })
      .finally(() => {
        if (this.running === run) this.running = undefined;
      });
    this.running = run;
    return run;
  }

  private async run(from: ConfigSource): Promise<Report | undefined> {
    if (this.closed) return this.ignored();
    let next: Config;
    try {
      next = await from.load();
    } catch (err) {
      return this.reject(from.file, err);
    }
    const diff = diffConfig(this.active, next);
    if (diff.changes.length === 0) {
      this.deps.logger.info({ file: from.file }, 'config reloaded: no changes');
      return this.publish(this.report(from.file, 'unchanged', diff));
    }
    const touched = new Set(diff.changes.map((c) => runtimeKeyOf(c.path)).filter((k) => k !== undefined));
    let rules: ResolvedRule[] = [];
    if (touched.has('watch')) {
      try {
        rules = resolveRules(next.watch, this.deps.labels());
      } catch (err) {
        return this.reject(from.file, err);
      }
    }
    // One per key marked runtime in the config schema, applied in this order.
    const appliers: Record<string, () => Promise<void> | void> = {
      'log.level': () => this.deps.setLogLevel(next.log.level),
      publish: () => this.deps.settings.setBase(next.publish),
      watch: () => this.applyWatch(rules),
      cameras: () => this.applyCameras(next, diff),
      stats_interval: () => this.deps.stats.setInterval(next.stats_interval),
      shutdown_timeout_ms: () => undefined, // read from `active` at shutdown
    };
    const done: string[] = [];
    const errors: string[] = [];
    // A key marked in the schema but not handled here fails the reload rather than being
    // reported as applied while nothing happened.
    for (const key of touched) if (!Object.hasOwn(appliers, key)) errors.push(`${key}: marked as applied at runtime, but the reloader cannot apply it`);
    for (const [key, apply] of Object.entries(appliers)) {
      if (!touched.has(key)) continue;
      try {
        await apply();
        done.push(key);
      } catch (err) {
        errors.push(`${key}: ${(err as Error).message}`);
      }
    }
    this.current = mergeRuntime(this.active, next, done);
    if (touched.has('cameras') || touched.has('watch')) this.deps.resyncDiscovery?.();
    // Availability lists the cameras.
    if (touched.has('cameras')) this.deps.mqtt.republish();
    const report = this.report(from.file, errors.length > 0 ? 'failed' : 'applied', diff, errors);
    this.summarize(report);
    return this.publish(report);
  }

  private async applyCameras(next: Config, diff: ConfigDiff): Promise<void> {
    const { cameras } = this.deps;
    const configOf = (id: string): Config['cameras'][number] => next.cameras.find((c) => c.id === id)!;
    for (const id of diff.cameras.removed) await cameras.remove(id);
    for (const id of diff.cameras.changed) await cameras.replace(configOf(id));
    for (const id of diff.cameras.added) await cameras.add(configOf(id));
  }

  private applyWatch(rules: ResolvedRule[]): void {
    const { watcher, cameras, mqtt } = this.deps;
    const before = cameras.ids().map((id) => [id, watcher.rulesFor(id).map((r) => r.slug)] as const);
    watcher.setRules(rules);
    // A label state of a rule that is gone would otherwise stay retained on the broker forever.
    for (const [id, slugs] of before) {
      const now = new Set(watcher.rulesFor(id).map((r) => r.slug));
      for (const slug of slugs) if (!now.has(slug)) mqtt.clearRetained(mqtt.topics.label(id, slug));
    }
  }

  private report(file: string, result: Report['result'], diff?: ConfigDiff, errors: string[] = []): Report {
    const overrides = this.deps.settings.overridden;
    const overridden = (diff?.applied ?? []).filter((p) => {
      const [top, key] = p.split('.');
      return top === 'publish' && key !== undefined && Object.hasOwn(overrides, key);
    });
    return {
      v: 1,
      device: this.deps.deviceId,
      ts: new Date(this.deps.clock.now()).toISOString(),
      file,
      result,
      applied: diff?.applied ?? [],
      needs_restart: diff?.needsRestart ?? [],
      overridden,
      cameras: { added: diff?.cameras.added ?? [], removed: diff?.cameras.removed ?? [], restarted: diff?.cameras.changed ?? [] },
      errors,
    };
  }

  /** The one log line of a reload. */
  private summarize(r: Report): void {
    const fields = {
      file: r.file,
      applied: r.applied,
      needs_restart: r.needs_restart,
      cameras: r.cameras,
      ...(r.overridden.length > 0 ? { overridden: r.overridden, hint: 'set over MQTT (runtime.json), which takes precedence; send set {"reset": true} to use the file' } : {}),
      ...(r.errors.length > 0 ? { errors: r.errors } : {}),
    };
    const msg = 'config reloaded';
    if (r.errors.length > 0) this.deps.logger.error(fields, msg);
    else if (r.needs_restart.length > 0 || r.overridden.length > 0) this.deps.logger.warn(fields, msg);
    else this.deps.logger.info(fields, msg);
  }

  private reject(file: string, err: unknown): Report {
    const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
    this.deps.logger.error({ file, problems }, 'config reload rejected; still running on the previous configuration');
    return this.publish(this.report(file, 'invalid', undefined, problems));
  }

  private publish(report: Report): Report {
    const { mqtt } = this.deps;
    this.reported = true;
    if (this.watchingStale) {
      this.watchingStale = false;
      mqtt.unsubscribe(mqtt.topics.config);
    }
    mqtt.retain(mqtt.topics.config, JSON.stringify(report));
    return report;
  }

  private ignored(): undefined {
    this.deps.logger.info('config reload ignored: shutting down');
    return undefined;
  }
}
