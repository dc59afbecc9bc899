/**
 * Child process for the SIGKILL test in test/integration/downloader.test.ts (bundled by the
 * test with esbuild, since Node 20 cannot run TypeScript): one Downloader downloading one file
 * until done, unless the test kills it first.
 *
 *   node child.mjs <url> <size> <sha256> <dest>
 *
 * stdout (pipes are synchronous on Linux, so a printed line was printed before any kill):
 *   ready
 *   P <bytes>       progress: bytes in the .part
 *   done <json>     the DownloadResult
 */
import { pino } from 'pino';
import { createSystemClock } from '../../src/core/clock.js';
import { Downloader } from '../../src/updates/downloader.js';
import { updatesFetch } from '../../src/updates/http-client.js';

const [url, size, sha256, dest] = process.argv.slice(2);
if (!url || !size || !sha256 || !dest) throw new Error('usage: child <url> <size> <sha256> <dest>');

const downloader = new Downloader({
  logger: pino({ level: 'warn' }, pino.destination(2)),
  clock: createSystemClock(),
  fetch: updatesFetch,
  config: { timeout_ms: 5000, retries: 0 },
});
process.stdout.write('ready\n');
const result = await downloader.download({
  url,
  size: Number(size),
  sha256,
  dest,
  onProgress: (p) => void process.stdout.write(`P ${p.received}\n`),
});
process.stdout.write(`done ${JSON.stringify(result)}\n`);
