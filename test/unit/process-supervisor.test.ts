import { describe, expect, it } from 'vitest';
import { backoffDelay, effectiveStallTimeout } from '../../src/camera/process/process-supervisor.js';
import { StderrTail } from '../../src/camera/process/stderr-tail.js';

describe('backoffDelay', () => {
  const timing = { backoffInitialMs: 1000, backoffMaxMs: 30_000 };

  it('doubles from the initial delay up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffDelay(n, timing, 0))).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it('adds 0-20% jitter', () => {
    expect(backoffDelay(1, timing, 0.5)).toBe(1100);
    expect(backoffDelay(10, timing, 0.999)).toBeLessThanOrEqual(36_000);
  });
});

describe('effectiveStallTimeout', () => {
  it('is stall_timeout_ms, or three frame intervals for very slow cameras', () => {
    expect(effectiveStallTimeout(10_000, 5)).toBe(10_000);
    expect(effectiveStallTimeout(10_000, 0.05)).toBe(60_000);
  });
});

describe('StderrTail', () => {
  it('keeps the last lines, redacted, and joins a few of them', () => {
    const tail = new StderrTail((t) => t.replace(/secret/g, '***'));
    tail.add('line 1\nline 2\r\nprogress\rline ');
    tail.add(Buffer.from('3 with secret\n\n'));
    for (let i = 4; i <= 20; i++) tail.add(`line ${i}\n`);
    tail.add('partial secret');
    expect(tail.text()).toBe('line 18; line 19; line 20; partial ***');
    const early = new StderrTail((t) => t);
    early.add('a\nb with secret\n');
    expect(early.text()).toBe('a; b with secret');
  });

  it('bounds very long lines and silent processes', () => {
    const tail = new StderrTail((t) => t);
    expect(tail.text()).toBe('');
    tail.add(`${'x'.repeat(10_000)}\n`);
    expect(tail.text().length).toBeLessThan(310);
  });
});
