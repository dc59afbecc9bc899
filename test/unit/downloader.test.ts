import { describe, expect, it } from 'vitest';
import { backoffDelay, parseContentRange, rangeValidator } from '../../src/updates/downloader.js';
import { startWatchdog } from '../../src/updates/download-protocol.js';
import { redactUrl, splitCredentials } from '../../src/updates/http-poll.js';
import type { Clock } from '../../src/core/clock.js';

// The pure parts of the downloader; the HTTP behaviour is tested against nginx in
// test/integration/downloader.test.ts.

describe('backoffDelay', () => {
  it('doubles from the base up to the cap, with half of each step random', () => {
    const lo = (n: number): number => backoffDelay(n, 100, 1000, () => 0);
    const hi = (n: number): number => backoffDelay(n, 100, 1000, () => 0.999999);
    expect([1, 2, 3, 4, 5, 6].map(lo)).toEqual([50, 100, 200, 400, 500, 500]);
    expect([1, 2, 3, 4, 5, 6].map(hi)).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(10_000, 100, 1000, () => 0.5)).toBe(750); // no overflow to Infinity
  });
});

describe('parseContentRange', () => {
  it('reads start, end and total', () => {
    expect(parseContentRange('bytes 100-199/1000')).toEqual({ start: 100, end: 199, total: 1000 });
    expect(parseContentRange('bytes 0-0/*')).toEqual({ start: 0, end: 0, total: undefined });
  });
  it.each([null, '', 'bytes */1000', 'bytes 5-4/10', 'bytes 0-10/10', 'items 0-1/2', 'bytes 1-2/3 junk'])('rejects %j', (h) => {
    expect(parseContentRange(h)).toBeUndefined();
  });
});

describe('rangeValidator', () => {
  it('prefers a strong ETag, never a weak one, else Last-Modified', () => {
    const lm = 'Tue, 01 Jul 2025 10:00:00 GMT';
    expect(rangeValidator(new Headers({ etag: '"abc"', 'last-modified': lm }))).toBe('"abc"');
    expect(rangeValidator(new Headers({ etag: 'W/"abc"', 'last-modified': lm }))).toBe(lm);
    expect(rangeValidator(new Headers({ etag: 'W/"abc"' }))).toBeNull();
    expect(rangeValidator(new Headers())).toBeNull();
  });
});

describe('URL hygiene', () => {
  it('redacts credentials, query and fragment', () => {
    expect(redactUrl('https://u:p@h.example/m/model.onnx?X-Amz-Signature=abc#f')).toBe('https://h.example/m/model.onnx?<redacted>');
    expect(redactUrl('http://h.example/model.onnx')).toBe('http://h.example/model.onnx');
    expect(redactUrl('not a url')).toBe('<invalid URL>');
  });
  it('moves user:password into a Basic Authorization header', () => {
    expect(splitCredentials('https://bob:p%40ss@h.example/x')).toEqual({ url: 'https://h.example/x', authorization: `Basic ${Buffer.from('bob:p@ss').toString('base64')}` });
    expect(splitCredentials('https://h.example/x')).toEqual({ url: 'https://h.example/x' });
  });
});

describe('startWatchdog', () => {
  /** A manual clock: sleeps resolve when the test advances time past them. */
  function manualClock(): Clock & { advance(ms: number): Promise<void> } {
    let now = 0;
    const sleepers: { until: number; resolve: () => void }[] = [];
    const flush = async (): Promise<void> => {
      for (let i = 0; i < 10; i++) await Promise.resolve();
    };
    return {
      now: () => now,
      monotonic: () => now,
      sleep: (ms, signal) =>
        new Promise<void>((resolve) => {
          const s = { until: now + ms, resolve };
          sleepers.push(s);
          signal?.addEventListener('abort', () => resolve(), { once: true });
        }),
      advance: async (ms) => {
        now += ms;
        for (const s of sleepers.splice(0)) if (s.until <= now) s.resolve(); else sleepers.push(s);
        await flush();
      },
    };
  }

  it('fires after timeoutMs without touch(), not while bytes keep coming, and not after stop()', async () => {
    const clock = manualClock();
    let stalls = 0;
    const w = startWatchdog(clock, 1000, () => void stalls++);
    await clock.advance(600);
    w.touch();
    await clock.advance(600); // 600 since the last touch
    expect(stalls).toBe(0);
    await clock.advance(400);
    expect(stalls).toBe(1);

    const w2 = startWatchdog(clock, 1000, () => void stalls++);
    w2.stop();
    await clock.advance(5000);
    expect(stalls).toBe(1);
    w.stop();
  });
});
