import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { SkipLog } from '../../src/camera/skip-log.js';

interface Line {
  msg: string;
  file: string;
  reason: string;
  not_logged?: number;
}

function setup() {
  let now = 0;
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  const log = new SkipLog(logger, () => now);
  return { log, lines, advance: (ms: number) => void (now += ms) };
}

describe('SkipLog', () => {
  it('names a file once per reason, however many passes skip it, and again after 10 minutes', () => {
    const t = setup();
    for (let pass = 0; pass < 50; pass++) {
      t.log.note('zero.jpg', 'a character device, not a regular file');
      t.advance(1_000);
    }
    expect(t.lines.map((l) => [l.msg, l.file, l.reason])).toEqual([['image file skipped', 'zero.jpg', 'a character device, not a regular file']]);
    t.log.note('zero.jpg', '40.0 MiB, more than max_file_bytes (32.0 MiB)'); // a new reason: a new line
    t.advance(10 * 60_000);
    t.log.note('zero.jpg', '40.0 MiB, more than max_file_bytes (32.0 MiB)');
    expect(t.lines.map((l) => l.reason)).toEqual(['a character device, not a regular file', '40.0 MiB, more than max_file_bytes (32.0 MiB)', '40.0 MiB, more than max_file_bytes (32.0 MiB)']);
    expect(t.lines[1]!.not_logged).toBe(49);
  });

  it('writes at most 10 lines a minute; the rest are counted into the next line and logged later', () => {
    const t = setup();
    for (let i = 0; i < 1_000; i++) t.log.note(`f${i}.jpg`, 'a FIFO, not a regular file');
    expect(t.lines).toHaveLength(10);
    t.advance(60_000);
    t.log.note('f500.jpg', 'a FIFO, not a regular file');
    expect(t.lines.at(-1)).toMatchObject({ file: 'f500.jpg', not_logged: 990 });
  });

  it('forgets files that are no longer listed', () => {
    const t = setup();
    t.log.note('a.jpg', 'a FIFO, not a regular file');
    t.log.retain(['b.jpg']);
    t.log.note('a.jpg', 'a FIFO, not a regular file'); // back again: named again
    expect(t.lines.map((l) => l.file)).toEqual(['a.jpg', 'a.jpg']);
  });
});
