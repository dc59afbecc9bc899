/**
 * Release versions and their order.
 *
 * Grammar: one or more dot-separated decimal numbers, optionally followed by `-N` (a decimal
 * release counter): `1.2.3`, `4`, `2026.11.26`, `2026.11.26-1`.
 *
 * Order: compare the numbers left to right numerically (leading zeros do not matter, a missing
 * component counts as 0, so `1.2` = `1.2.0` and `2026.01.05` = `2026.1.5`); when they are equal,
 * the larger counter wins, no counter counting as 0 (`2026.11.26` < `2026.11.26-1` <
 * `2026.11.26-2`).
 *
 * Why not full semver: the `-N` suffix is a "second release that day" counter, which must sort
 * *after* the bare version, where semver would make it a pre-release sorting *before*. Pre-release
 * tags (`-rc.1`) and build metadata are refused outright, so every version a device ever sees has
 * one unambiguous place in the order. Both styles share the rule, so switching a channel from
 * `1.x` to date versions is an upgrade (2026 > 1), never the reverse.
 */

export interface Version {
  parts: number[];
  /** The `-N` counter, 0 when absent. */
  revision: number;
}

// At most 15 digits per number: every component stays an exact integer in a double.
const VERSION = /^(\d{1,15}(?:\.\d{1,15})*)(?:-(\d{1,15}))?$/;

export function isVersion(text: string): boolean {
  return VERSION.test(text);
}

export function parseVersion(text: string): Version {
  const m = VERSION.exec(text);
  if (!m?.[1]) {
    throw new Error(`invalid version "${text}": expected numbers separated by dots with an optional -N counter, e.g. 1.2.3 or 2026.11.26-1`);
  }
  return { parts: m[1].split('.').map(Number), revision: m[2] === undefined ? 0 : Number(m[2]) };
}

function compareParsed(a: Version, b: Version): -1 | 0 | 1 {
  const n = Math.max(a.parts.length, b.parts.length);
  for (let i = 0; i < n; i++) {
    const x = a.parts[i] ?? 0;
    const y = b.parts[i] ?? 0;
    if (x !== y) return x < y ? -1 : 1;
  }
  if (a.revision !== b.revision) return a.revision < b.revision ? -1 : 1;
  return 0;
}

/** -1, 0 or 1 as `a` sorts before, equal to or after `b`; throws on an invalid version. */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  return compareParsed(parseVersion(a), parseVersion(b));
}

/** True when `candidate` is strictly newer than `installed`. */
export function isNewer(candidate: string, installed: string): boolean {
  return compareVersions(candidate, installed) > 0;
}

// The daemon's own version comes from package.json, which may carry a semver pre-release or
// build suffix (0.2.0-beta.1, 0.2.0+abc) that the release grammar refuses.
const DAEMON_VERSION = /^(\d{1,15}(?:\.\d{1,15})*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

/**
 * Whether a daemon of version `daemonVersion` may install a release requiring `minVersion`.
 * A daemon pre-release (`0.2.0-beta.1`) counts as just below its release (semver): it does not
 * satisfy a minimum of `0.2.0`, since the feature the release needs may have landed after it.
 */
export function daemonSatisfies(daemonVersion: string, minVersion: string): boolean {
  const min = parseVersion(minVersion);
  if (isVersion(daemonVersion)) return compareParsed(parseVersion(daemonVersion), min) >= 0;
  const m = DAEMON_VERSION.exec(daemonVersion);
  if (!m?.[1]) throw new Error(`invalid daemon version "${daemonVersion}"`);
  const core: Version = { parts: m[1].split('.').map(Number), revision: 0 };
  const order = compareParsed(core, min);
  // A pre-release sorts before everything with the same core, including core-0.
  return m[2] === undefined ? order >= 0 : order > 0;
}
