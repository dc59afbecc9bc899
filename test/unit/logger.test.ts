import { describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../src/core/logger.js';
import { LogLevels } from '../../src/core/log-levels.js';

/** The raw JSON lines a real logger writes (JSON.parse would hide a repeated key: the last one wins). */
function capture(level = 'info', levels?: LogLevels): { root: Logger; raw: string[] } {
  const raw: string[] = [];
  const stream = { write: (s: string): void => void raw.push(s) };
  return { root: createLogger({ level, stream, ...(levels ? { onChild: levels.onChild } : {}) }), raw };
}

/** How often `key` occurs as a key in the JSON text (keys in string values are escaped: \"key\"). */
const keyCount = (line: string, key: string): number => line.match(new RegExp(`(?<!\\\\)"${key}":`, 'g'))?.length ?? 0;

describe('createLogger', () => {
  it('writes one module, the innermost, when a part adds its own to its owner\'s (classifier, then inference)', () => {
    const { root, raw } = capture();
    const classifier = root.child({ module: 'classifier' });
    const inference = classifier.child({ module: 'inference' });
    inference.warn({ attempt: 1 }, 'inference worker restarted');
    classifier.info('model loaded');
    expect(raw).toHaveLength(2);
    expect(raw.map((l) => keyCount(l, 'module'))).toEqual([1, 1]);
    expect(JSON.parse(raw[0]!)).toMatchObject({ module: 'inference', attempt: 1, msg: 'inference worker restarted', pid: process.pid, level: 40 });
    expect(JSON.parse(raw[1]!)).toMatchObject({ module: 'classifier', msg: 'model loaded' });
  });

  it('keeps the other bindings, and children without a module keep their parent\'s', () => {
    const { root, raw } = capture();
    const camera = root.child({ module: 'cameras' }).child({ camera: 'gate' });
    camera.child({ module: 'camera', source: 'rtsp' }).info('a');
    camera.info('b');
    root.info('c');
    expect(raw.map((l) => [keyCount(l, 'module'), keyCount(l, 'camera')])).toEqual([[1, 1], [1, 1], [0, 0]]);
    expect(raw.map((l) => JSON.parse(l) as Record<string, unknown>).map((l) => [l.msg, l.module, l.camera, l.source])).toEqual([
      ['a', 'camera', 'gate', 'rtsp'],
      ['b', 'cameras', 'gate', undefined],
      ['c', undefined, undefined, undefined],
    ]);
  });

  it('a module in the logged object itself wins, still once', () => {
    const { root, raw } = capture();
    root.child({ module: 'daemon' }).info({ module: 'explicit' }, 'x');
    expect(keyCount(raw[0]!, 'module')).toBe(1);
    expect(JSON.parse(raw[0]!)).toMatchObject({ module: 'explicit' });
  });

  it('children with a module of their own are still children for levels (LogLevels) and child options', () => {
    const levels = new LogLevels();
    const { root, raw } = capture('info', levels);
    const quiet = root.child({ module: 'a' }).child({ module: 'b' }, { level: 'error' });
    quiet.warn('not shown');
    levels.set(root, 'debug');
    quiet.debug('shown');
    expect(raw.map((l) => JSON.parse(l) as Record<string, unknown>).map((l) => [l.msg, l.module])).toEqual([['shown', 'b']]);
  });
});
