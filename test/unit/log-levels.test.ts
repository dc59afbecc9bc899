import { describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../src/core/logger.js';
import { LogLevels } from '../../src/core/log-levels.js';

function capture(levels?: LogLevels): { root: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = { write: (s: string): void => void lines.push(JSON.parse(s) as Record<string, unknown>) };
  const root = createLogger({ level: 'info', stream, ...(levels ? { onChild: levels.onChild } : {}) });
  return { root, lines };
}

describe('LogLevels', () => {
  it('reaches a child with a level of its own, which a change of the parent alone does not', () => {
    const levels = new LogLevels();
    const { root, lines } = capture(levels);
    const own = root.child({ module: 'quiet' }, { level: 'warn' });
    root.level = 'debug';
    own.info('not shown: the child keeps its own level');
    expect(lines).toEqual([]);
    levels.set(root, 'debug');
    own.debug('shown');
    expect(lines.map((l) => [l.msg, l.module])).toEqual([['shown', 'quiet']]);
  });

  it('sets the level of children and grandchildren created before the change', () => {
    const levels = new LogLevels();
    const { root, lines } = capture(levels);
    const module = root.child({ module: 'pipeline' });
    const camera = module.child({ camera: 'gate' });
    module.debug('before');
    expect(lines).toEqual([]);

    levels.set(root, 'debug');
    module.debug('module after');
    camera.debug('camera after');
    root.debug('root after');
    expect(lines.map((l) => [l.msg, l.module, l.camera, l.level])).toEqual([
      ['module after', 'pipeline', undefined, 20],
      ['camera after', 'pipeline', 'gate', 20],
      ['root after', undefined, undefined, 20],
    ]);

    levels.set(root, 'warn');
    module.info('quiet');
    camera.info('quiet');
    module.warn('loud');
    expect(lines.at(-1)).toMatchObject({ msg: 'loud', level: 40 });
    expect(lines).toHaveLength(4);
  });

  it('children created after a change start at the new level', () => {
    const levels = new LogLevels();
    const { root, lines } = capture(levels);
    levels.set(root, 'debug');
    const late = root.child({ module: 'late' });
    late.debug('late child');
    expect(lines.map((l) => l.msg)).toEqual(['late child']);
    // Tracked like the others (the one child, held here): the next change reaches it.
    expect(levels.size).toBe(1);
    levels.set(root, 'warn');
    expect(late.level).toBe('warn');
  });
});
