/** Exit status for an unusable configuration (sysexits.h EX_CONFIG): systemd's unit stops restarting on it. */
export const EX_CONFIG = 78;

/** A configuration that cannot be used; each problem names its key path and what was expected. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** `cameras[0].source.fps`: the key path as a user would write it. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out || '(root)';
}
