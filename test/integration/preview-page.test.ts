import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { startCli, waitForLog, REPO, type Started } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { tempDir, writeColourModel } from '../helpers/fixtures.js';
import { until } from '../helpers/sse-client.js';
import { DEMO_PALETTE } from '../../src/camera/palette.js';

// The live preview page in a real headless Chromium (Debian's package, driven by
// playwright-core) against the real daemon: a synthetic camera painting colour scenes and the
// generated colour model, so the top label changes every few frames.

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`preview-page.test.ts SKIPPED: ${CHROMIUM} not found (Debian/Ubuntu: apt-get install chromium)`);

// Labels come from files: one with markup in it must show as text, never as HTML.
const TRICKY = 'red <b class="injected">&amp;</b> "co"';
const LABELS = DEMO_PALETTE.map((c) => (c.name === 'red' ? TRICKY : c.name));
const SCREENSHOT = join(REPO, 'test-artifacts', 'preview.png');

describe.skipIf(!hasChromium)('preview page in headless Chromium', () => {
  let browser: Browser;
  let daemon: Started | undefined;
  let url: string;

  beforeAll(async () => {
    const dir = tempDir('ec-preview-');
    const { model, labels } = writeColourModel(join(dir, 'model'));
    writeFileSync(labels, `${LABELS.join('\n')}\n`);
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `device_id: preview-it
model: { path: ${model}, labels: ${labels}, preset: imagenet, execution_providers: [cpu] }
cameras:
  - id: bench
    source: { type: synthetic, fps: 4, width: 320, height: 240 }
mqtt: { url: embedded, embedded: { host: 127.0.0.1, port: ${await freePort()} } }
http: { port: 0 }
state_dir: ${join(dir, 'state')}
stats_interval: 0
`,
    );
    daemon = startCli(['run', '--config', config]);
    url = String((await waitForLog(daemon, (l) => l.msg === 'HTTP server listening', 30_000)).url);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // The network here is closed: without the background-networking flags Chromium hangs on refused connections.
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 60_000,
    });
  });

  afterAll(async () => {
    await browser?.close();
    daemon?.proc.kill('SIGKILL');
  });

  it('shows the frame, label bars that change as frames are classified, the status fields, and only talks to the daemon', async () => {
    const page = await browser.newPage({ viewport: { width: 900, height: 760 } });
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    // A Content-Security-Policy violation (a script or style the policy does not allow) shows up here.
    page.on('console', (m) => void (m.type() === 'error' && problems.push(`console: ${m.text()}`)));

    await page.goto(url);
    const card = page.locator('section.cam[data-camera="bench"]');
    await card.waitFor({ timeout: 30_000 });

    // The frame: the <img> loads a real JPEG of the camera's size.
    // Browser-side code as strings: this project's TypeScript has no DOM types.
    const IMG = 'document.querySelector(\'section.cam[data-camera="bench"] img\')';
    // Read in the same evaluation that sees it loaded: the page swaps src as frames arrive, and
    // the size reads 0 while the next one loads.
    const size = await page.waitForFunction(`(${IMG}?.naturalWidth ?? 0) > 0 && [${IMG}.naturalWidth, ${IMG}.naturalHeight]`, null, { timeout: 30_000 });
    expect(await size.jsonValue()).toEqual([320, 240]);

    // The bars: five, scores between 0 and 1 in descending order, and the top label changes with the scene.
    const read = () =>
      page.evaluate<{ label: string; text: string; score: number; width: string }[]>(`[...document.querySelectorAll('section.cam[data-camera="bench"] .bar')].map((b) => ({
        label: b.dataset.label ?? '',
        text: b.querySelector('.label')?.textContent ?? '',
        score: Number(b.dataset.score),
        width: b.querySelector('.fill')?.style.width ?? '',
      }))`);
    const tops = new Set<string>();
    const srcs = new Set<string>();
    await until(async () => {
      const bars = await read();
      if (bars[0]) tops.add(bars[0].label);
      srcs.add(await card.locator('img').getAttribute('src') ?? '');
      return tops.size >= 3 && srcs.size >= 3;
    }, 'three different top labels and three different frames', 45_000);
    const bars = await read();
    expect(bars).toHaveLength(5);
    for (const [i, b] of bars.entries()) {
      expect(b.text).toBe(b.label);
      expect(LABELS).toContain(b.label);
      expect(b.score).toBeGreaterThanOrEqual(0);
      expect(b.score).toBeLessThanOrEqual(1);
      if (i > 0) expect(b.score).toBeLessThanOrEqual(bars[i - 1]!.score);
      expect(b.width).toMatch(/^\d+(\.\d)?%$/);
    }
    for (const t of tops) expect(LABELS).toContain(t);

    // The label with markup appears as plain text (its colour comes round every 6 s).
    await until(async () => (await read()).some((b) => b.label === TRICKY), 'the red label in the bars', 45_000);
    const tricky = (await read()).find((b) => b.label === TRICKY)!;
    expect(tricky.text).toBe(TRICKY);
    expect(await page.locator('.injected').count()).toBe(0);

    // The status fields.
    await expect.poll(() => page.locator('#conn').textContent()).toBe('live');
    expect(await page.locator('#model').textContent()).toMatch(/^colors [0-9a-f]{12}$/);
    expect(await page.locator('#provider').textContent()).toBe('cpu');
    expect(await page.locator('#mqtt').textContent()).toMatch(/^connected/);
    expect(await page.locator('#ready').textContent()).toBe('yes');
    expect(Number(await card.locator('.fps').textContent())).toBeGreaterThan(0);
    expect(await card.locator('.inference').textContent()).toMatch(/^\d+\.\d ms$/);
    expect(await card.locator('.state').textContent()).toBe('online');

    mkdirSync(join(REPO, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // Nothing but the daemon: no CDN, no fonts, nothing outside localhost.
    const origin = new URL(url).origin;
    expect(requests.length).toBeGreaterThan(3);
    expect(requests.filter((r) => !r.startsWith(`${origin}/`) && !r.startsWith('data:'))).toEqual([]);
    expect(problems).toEqual([]);

    // The daemon goes away: the page says so (EventSource keeps retrying on its own).
    daemon!.proc.kill('SIGTERM');
    const done = await daemon!.finished;
    expect(done.code).toBe(0);
    await expect.poll(() => page.locator('#conn').textContent(), { timeout: 15_000 }).toBe('disconnected, retrying\u2026');
    await page.close();
  });
});
