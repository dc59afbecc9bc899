import { createHash } from 'node:crypto';

/**
 * Staged rollouts without a server: every device computes its own bucket in [0, 100) from
 * sha256(device id, release identity) and takes part when the bucket falls under the release's
 * `rollout.percent`.
 *
 * - Deterministic: a device stays in (or out) for a given release across checks and restarts.
 * - Monotonic: the bucket does not depend on the percent, so raising the percent (re-publishing
 *   the same version with a higher value) only adds devices; none that already updated drop out.
 * - Independent per release: the identity is the rollout salt, or the version when there is no
 *   salt, so each version picks a fresh random cohort and no device is always first. A publisher
 *   that wants a fixed canary group reuses one salt across releases instead.
 */

export interface RolloutRelease {
  version: string;
  salt?: string | undefined;
}

// Domain separation: these hashes never collide with any other sha256 use of the same strings.
const DOMAIN = 'edge-classifier/rollout/v1';

/** The device's bucket for this release, uniform in [0, 100). */
export function rolloutBucket(deviceId: string, release: RolloutRelease): number {
  const identity = release.salt ?? release.version;
  // NUL separators: ("ab", "c") and ("a", "bc") must not hash alike.
  const digest = createHash('sha256').update(`${DOMAIN}\0${identity}\0${deviceId}`, 'utf8').digest();
  // 48 bits fit a double exactly; far finer than any percent anyone will configure.
  return (digest.readUIntBE(0, 6) / 2 ** 48) * 100;
}

/** Whether the device takes part in the release at `percent` (0: nobody, 100: everybody). */
export function inRollout(deviceId: string, release: RolloutRelease, percent: number): boolean {
  if (percent >= 100) return true;
  if (percent <= 0) return false;
  return rolloutBucket(deviceId, release) < percent;
}
