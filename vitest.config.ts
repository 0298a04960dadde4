import * as os from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Scratch files under one folder per run, removed at the end (test/global-setup.ts).
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    // One test file per core: the heavy files (SEAL, the simulator) are single-threaded, and vitest's
    // default (cores - 1) runs them one at a time on a 2-core machine.
    maxWorkers: os.availableParallelism(),
  },
});
