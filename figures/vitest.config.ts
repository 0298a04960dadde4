// `npm run figures`: reproduces the figures README.md states, one file per README row (or group of
// rows), each writing figures/out/<name>.json with the command, the figure as the README states it and
// as measured now. A figure that no longer matches the README fails its file (the README is stale).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('..', import.meta.url)),
    include: ['figures/**/*.figures.ts'],
    globalSetup: ['figures/summary.ts'],
    testTimeout: 900_000,
    hookTimeout: 900_000,
    // One file at a time: the machine is shared and the timings in the JSON should not race each other.
    fileParallelism: false,
    reporters: ['default'],
  },
});
