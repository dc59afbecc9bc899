import { describeIssues, ManifestSchema, SCHEMA_VERSION, type Manifest } from './manifest.js';
import { daemonSatisfies, isNewer, isVersion, compareVersions } from './version.js';
import { inRollout } from './rollout.js';

/**
 * The device's decision about a manifest whose signature already verified (signing.ts): is
 * this release for us, now? Pure: the caller supplies the clock and the device's state.
 */

export interface CheckContext {
  /** Epoch milliseconds (Clock.now()). */
  now: number;
  /**
   * The installed release version. Absent, or not a release version (a locally configured
   * model's sha-prefix version): any release is an upgrade from it.
   */
  installedVersion?: string | undefined;
  daemonVersion: string;
  /** The channel the device follows (updates.channel). */
  channel: string;
  deviceId: string;
}

export type CheckCode =
  | 'unsupported-schema'
  | 'invalid-manifest'
  | 'wrong-channel'
  | 'expired'
  | 'daemon-too-old'
  | 'not-newer'
  | 'waiting-for-rollout';

export type CheckResult =
  | { ok: true; manifest: Manifest }
  | {
      ok: false;
      code: CheckCode;
      reason: string;
      /** True for "waiting for rollout": not an error, the same release may include us later. */
      waiting: boolean;
    };

function reject(code: CheckCode, reason: string): CheckResult {
  return { ok: false, code, reason, waiting: code === 'waiting-for-rollout' };
}

/**
 * Checks in this order: schema, channel, expiry, daemon version, version order, rollout. The
 * rollout comes last so that "waiting" only ever means "everything else is fine".
 */
export function checkManifest(json: unknown, ctx: CheckContext): CheckResult {
  const schema = (json as { schema?: unknown } | null)?.schema;
  if (typeof json !== 'object' || json === null || schema !== SCHEMA_VERSION) {
    return reject('unsupported-schema', `unsupported manifest schema ${JSON.stringify(schema) ?? '(none)'}; this daemon reads schema ${SCHEMA_VERSION}`);
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) return reject('invalid-manifest', `invalid manifest: ${describeIssues(parsed.error)}`);
  const m = parsed.data;

  // The channel is inside the signed manifest so that a stable device pointed (by mistake or
  // by an attacker controlling the URL) at a signed beta release does not install it.
  if (m.channel !== ctx.channel) {
    return reject('wrong-channel', `release ${m.version} is for channel "${m.channel}", this device follows "${ctx.channel}"`);
  }
  // Expiry bounds replay: an old signed manifest served again (a frozen mirror, an attacker)
  // stops being accepted. Devices without a real-time clock must have synced time for this.
  if (ctx.now >= Date.parse(m.expires)) {
    return reject('expired', `release ${m.version} expired at ${m.expires}`);
  }
  if (!daemonSatisfies(ctx.daemonVersion, m.min_daemon_version)) {
    return reject('daemon-too-old', `release ${m.version} needs daemon ${m.min_daemon_version} or newer; this is ${ctx.daemonVersion}`);
  }
  const installed = ctx.installedVersion;
  if (installed !== undefined && isVersion(installed)) {
    const order = compareVersions(m.version, installed);
    if (order === 0) return reject('not-newer', `release ${m.version} is already installed`);
    // Refusing older versions stops downgrade attacks with old (still unexpired) signed
    // releases; a deliberate rollback says so in the signed manifest.
    if (!isNewer(m.version, installed) && !m.rollback) {
      return reject('not-newer', `release ${m.version} is not newer than the installed ${installed} (and not marked as a rollback)`);
    }
  }
  if (!inRollout(ctx.deviceId, { version: m.version, salt: m.rollout.salt }, m.rollout.percent)) {
    return reject('waiting-for-rollout', `waiting for rollout: release ${m.version} is at ${m.rollout.percent}% and this device is not included yet`);
  }
  return { ok: true, manifest: m };
}
