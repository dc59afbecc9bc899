import { defineConfig } from 'vitest/config';

// Four suites: `unit` (pure code), `integration` (real mosquitto, fswebcam, worker threads,
// the built CLI), `real` (the real models and images in ../shared; run by `npm run test:real`)
// and `arm64` (the arm64 build under qemu as a Raspberry Pi 4, on ../shared; `npm run test:arm64`,
// which prepares .tmp/arm64 first; docs/arm64.md).
export default defineConfig({
  test: {
    // Integration tests start real processes (mosquitto, fswebcam, the daemon) and a worker
    // thread each: on two cores, one file at a time keeps them honest.
    fileParallelism: false,
    // Every process a test file starts is killed when its test or file ends, or at the latest
    // when the run does, even after a failure or a timeout (test/helpers/leftovers.ts).
    globalSetup: ['test/setup/global-leftovers.ts'],
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 20_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          setupFiles: ['test/setup/kill-leftovers.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'real',
          include: ['test/real/**/*.test.ts'],
          setupFiles: ['test/setup/kill-leftovers.ts'],
          testTimeout: 180_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'arm64',
          include: ['test/arm64/**/*.test.ts'],
          setupFiles: ['test/setup/kill-leftovers.ts'],
          // Emulated arm64 runs 10-100x slower than the host: generous limits. One file at a time
          // (fileParallelism: false above; vitest takes it only at the root, not per project).
          testTimeout: 900_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
