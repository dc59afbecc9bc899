import { defineConfig } from 'vitest/config';

// Three suites: `unit` (pure code), `integration` (real mosquitto, fswebcam, worker threads,
// the built CLI) and `real` (the real models and images in ../shared; run by `npm run test:real`).
export default defineConfig({
  test: {
    // Integration tests start real processes (mosquitto, fswebcam, the daemon) and a worker
    // thread each: on two cores, one file at a time keeps them honest.
    fileParallelism: false,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 20_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'real',
          include: ['test/real/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
