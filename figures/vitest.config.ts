// The runner of `npm run figures`'s sections (bench/figures/main.ts starts one vitest run per section):
// each figures/<section>.figures.ts measures one README table's figures and writes figures/<section>.json.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('..', import.meta.url)),
    include: ['figures/**/*.figures.ts'],
    // Scratch plans under one folder per run, removed at the end (test/global-setup.ts).
    globalSetup: ['test/global-setup.ts'],
    // SEAL accuracy over 4 windows of 64 takes an hour on 2 shared cores.
    testTimeout: 6 * 3600_000,
    hookTimeout: 900_000,
    // One file at a time: the machine is shared and the timings in the JSON should not race each other.
    fileParallelism: false,
    reporters: ['default'],
  },
});
