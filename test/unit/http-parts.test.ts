import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import sharp from 'sharp';
import { matchRoute } from '../../src/service/http/routes.js';
import { sseComment, sseEvent } from '../../src/service/http/sse.js';
import { LatestThrottle } from '../../src/service/http/throttle.js';
import { previewFrame, PreviewFeed } from '../../src/service/http/preview-feed.js';
import { PREVIEW_CSP, PREVIEW_HTML } from '../../src/service/http/preview-page.js';
import { bindErrorMessage } from '../../src/service/http/listener.js';
import { frameJpeg } from '../../src/camera/frame-jpeg.js';
import type { ClassifiedFrame } from '../../src/daemon/pipeline.js';
import type { DaemonView } from '../../src/service/http/daemon-view.js';

describe('routes', () => {
  const on = { preview: true };
  it.each([
    ['GET', '/healthz', { name: 'healthz' }],
    ['HEAD', '/readyz', { name: 'readyz' }],
    ['GET', '/metrics?x=1', { name: 'metrics' }],
    ['GET', '/', { name: 'preview' }],
    ['GET', '/events', { name: 'events' }],
    ['GET', '/snapshot/door.jpg?seq=12', { name: 'snapshot', camera: 'door' }],
    ['GET', '/snapshot/back_yard-2.jpg', { name: 'snapshot', camera: 'back_yard-2' }],
  ])('%s %s', (method, url, route) => {
    expect(matchRoute(method, url, on)).toEqual({ route });
  });

  it.each([['/nope'], ['/snapshot/.jpg'], ['/snapshot/a/b.jpg'], ['/snapshot/door.png'], ['/snapshot/%2e%2e.jpg'], ['/snapshot/%E0%A4%A.jpg'], ['/healthz/']])(
    '404 for %s',
    (url) => {
      expect(matchRoute('GET', url, on)).toMatchObject({ status: 404 });
    },
  );

  it('405 with Allow for other methods on known paths, 404 stays 404', () => {
    expect(matchRoute('POST', '/metrics', on)).toMatchObject({ status: 405, allow: 'GET, HEAD' });
    expect(matchRoute('DELETE', '/snapshot/door.jpg', on)).toMatchObject({ status: 405 });
    expect(matchRoute('POST', '/nope', on)).toMatchObject({ status: 404 });
  });

  it('without the preview: no page, no events, no images', () => {
    const off = { preview: false };
    for (const url of ['/', '/events', '/snapshot/door.jpg']) expect(matchRoute('GET', url, off)).toMatchObject({ status: 404 });
    expect(matchRoute('GET', '/metrics', off)).toEqual({ route: { name: 'metrics' } });
  });
});

describe('SSE framing', () => {
  it('frames an event as JSON data lines ended by a blank line', () => {
    expect(sseEvent('frame', { camera: 'door', top: [{ label: 'a\nb', score: 1 }] })).toBe(
      'event: frame\ndata: {"camera":"door","top":[{"label":"a\\nb","score":1}]}\n\n',
    );
  });

  it('refuses an event name that would break the framing', () => {
    expect(() => sseEvent('a\nevent: x', {})).toThrow(/one line/);
  });

  it('keeps comments on one line', () => {
    expect(sseComment('heart\r\nbeat')).toBe(': heart beat\n\n');
  });
});

describe('LatestThrottle', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function setup() {
    const out: [string, number, number][] = [];
    const throttle = new LatestThrottle<number>({
      clock: { monotonic: () => performance.now() },
      intervalMs: 250,
      emit: (key, v) => out.push([key, v, performance.now()]),
    });
    return { out, throttle };
  }

  it('sends the first value at once and the latest of a burst at the end of the interval', () => {
    const { out, throttle } = setup();
    const t0 = performance.now();
    for (let i = 1; i <= 30; i++) {
      throttle.offer('door', i);
      vi.advanceTimersByTime(33); // a 30 fps camera for one second
    }
    vi.advanceTimersByTime(1000);
    expect(out[0]).toEqual(['door', 1, t0]);
    // About one per 250 ms over a second, never two within the interval, and the last value is not lost.
    expect(out.length).toBeGreaterThanOrEqual(4);
    expect(out.length).toBeLessThanOrEqual(6);
    for (let i = 1; i < out.length; i++) expect(out[i]![2] - out[i - 1]![2]).toBeGreaterThanOrEqual(250);
    expect(out.at(-1)![1]).toBe(30);
  });

  it('limits each key on its own', () => {
    const { out, throttle } = setup();
    throttle.offer('a', 1);
    throttle.offer('b', 1);
    throttle.offer('a', 2);
    expect(out.map(([k, v]) => `${k}${v}`)).toEqual(['a1', 'b1']);
    vi.advanceTimersByTime(250);
    expect(out.map(([k, v]) => `${k}${v}`)).toEqual(['a1', 'b1', 'a2']);
  });

  it('drops what is pending on stop', () => {
    const { out, throttle } = setup();
    throttle.offer('a', 1);
    throttle.offer('a', 2);
    throttle.stop();
    vi.advanceTimersByTime(1000);
    expect(out.map(([, v]) => v)).toEqual([1]);
  });
});

function classified(camera: string, seq: number, labels: string[]): ClassifiedFrame {
  return {
    frame: { camera, seq, capturedAt: Date.UTC(2024, 0, 1), source: `f${seq}.jpg` },
    width: 640,
    height: 480,
    top: labels.map((label, index) => ({ index, label, score: 1 / (index + 2) + 1e-7 })),
    scores: [],
    latency: { preprocess: 3.14159, inference: 12.3456, total: 20 },
  };
}

describe('preview events', () => {
  it('carry at most topN labels with rounded scores and latencies', () => {
    const f = previewFrame(classified('door', 7, ['a', 'b', 'c', 'd', 'e', 'f', 'g']), 2.5, 5);
    expect(f).toEqual({
      camera: 'door',
      seq: 7,
      ts: '2024-01-01T00:00:00.000Z',
      source: 'f7.jpg',
      width: 640,
      height: 480,
      top: [0.5, 0.3333, 0.25, 0.2, 0.1667].map((score, i) => ({ label: 'abcde'[i], score })),
      latency_ms: { preprocess: 3.14, inference: 12.35, total: 20 },
      fps: 2.5,
    });
  });

  it('send the status once per change, and frames throttled per camera', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    try {
      let connected = true;
      const view: DaemonView = {
        model: () => ({ name: 'm', version: '1', sha256: 'x', provider: 'cpu' }),
        cameras: () => ({ ids: () => ['door'], health: () => ({ door: { state: 'online', since: 0, lastError: null, fps: 3, reconnectsLastHour: 0, stallsLastHour: 0 } }), latest: () => undefined }),
        counters: () => ({}),
        mqtt: () => ({ connected, queued: 0, sent: 0, droppedOffline: 0 }),
        updates: () => undefined,
      };
      const sent: { event: string; data: unknown; sticky?: string }[] = [];
      const feed = new PreviewFeed({
        clock: { monotonic: () => performance.now() },
        view,
        hub: { broadcast: (event, data, sticky) => void sent.push({ event, data, ...(sticky ? { sticky } : {}) }) },
        device: 'dev',
        version: '0.1.0',
        frameIntervalMs: 250,
        statusIntervalMs: 1000,
        topN: 5,
      });
      feed.start();
      vi.advanceTimersByTime(3000);
      expect(sent.map((s) => s.event)).toEqual(['status']);
      expect(sent[0]).toMatchObject({ sticky: 'status', data: { device: 'dev', ready: true, mqtt: { connected: true }, update: 'disabled', cameras: [{ id: 'door', state: 'online', fps: 3 }] } });
      connected = false;
      vi.advanceTimersByTime(1000);
      expect(sent.at(-1)).toMatchObject({ event: 'status', data: { mqtt: { connected: false } } });
      sent.length = 0;
      for (let i = 1; i <= 10; i++) feed.publish(classified('door', i, ['a']));
      vi.advanceTimersByTime(300);
      expect(sent.map((s) => [s.event, s.sticky, (s.data as { seq: number }).seq])).toEqual([
        ['frame', 'frame:door', 1],
        ['frame', 'frame:door', 10],
      ]);
      feed.stop();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('preview page', () => {
  it('allows exactly its own inline script and style, and nothing from elsewhere', () => {
    const script = /<script>([\s\S]*)<\/script>/.exec(PREVIEW_HTML)![1]!;
    const style = /<style>([\s\S]*)<\/style>/.exec(PREVIEW_HTML)![1]!;
    const sha = (t: string) => `'sha256-${createHash('sha256').update(t).digest('base64')}'`;
    expect(PREVIEW_CSP).toContain(`script-src ${sha(script)}`);
    expect(PREVIEW_CSP).toContain(`style-src ${sha(style)}`);
    expect(PREVIEW_CSP).toContain("default-src 'none'");
    // No external resources: no URL with a scheme or protocol-relative (the data: favicon aside).
    expect(PREVIEW_HTML.replace('href="data:,"', '')).not.toMatch(/(https?:)?\/\/[a-z0-9]/i);
    // Labels come from files: never through innerHTML.
    expect(script).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });
});

describe('bind errors', () => {
  const err = (code: string) => Object.assign(new Error(`listen ${code}`), { code });
  it('name the config key to change', () => {
    expect(bindErrorMessage(err('EADDRINUSE'), '127.0.0.1', 8089)).toMatch(/^http\.port: 127\.0\.0\.1:8089 is already in use/);
    expect(bindErrorMessage(err('EACCES'), '0.0.0.0', 80)).toMatch(/^http\.port: no permission/);
    expect(bindErrorMessage(err('EADDRNOTAVAIL'), '10.9.9.9', 8089)).toMatch(/^http\.host: 10\.9\.9\.9 is not an address of this machine/);
    expect(bindErrorMessage(err('ENOTFOUND'), 'nohost.invalid', 8089)).toMatch(/^http\.host: cannot resolve "nohost.invalid"/);
  });
});

describe('frameJpeg', () => {
  const rgb = Buffer.alloc(32 * 24 * 3, 200);
  it('encodes raw RGB frames', async () => {
    const jpeg = await frameJpeg({ data: rgb, raw: { width: 32, height: 24 } });
    expect(await sharp(jpeg).metadata()).toMatchObject({ format: 'jpeg', width: 32, height: 24 });
  });
  it('transcodes PNG (a directory source may deliver any image) and passes JPEG through untouched', async () => {
    const png = await sharp(rgb, { raw: { width: 32, height: 24, channels: 3 } }).png().toBuffer();
    const fromPng = await frameJpeg({ data: png });
    expect(await sharp(fromPng).metadata()).toMatchObject({ format: 'jpeg', width: 32, height: 24 });
    expect(await frameJpeg({ data: fromPng })).toBe(fromPng);
  });
  it('rejects what is not an image', async () => {
    await expect(frameJpeg({ data: Buffer.from('not an image') })).rejects.toThrow();
  });
});
