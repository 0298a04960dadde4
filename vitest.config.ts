import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Slowest files first (longest-processing-time order), by test/durations.json (seconds per file from a
 * full run; `node tools/test-durations.mjs` refreshes it): on a fresh clone vitest has no timings and
 * starts the largest files first, which left a 6-minute file for the end while the other core idled.
 * Files not in the table keep vitest's order, after the known ones.
 */
class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const table = path.join(import.meta.dirname, 'test', 'durations.json');
    const seconds = fs.existsSync(table) ? (JSON.parse(fs.readFileSync(table, 'utf8')) as Record<string, number>) : {};
    const of = (f: TestSpecification) => seconds[path.relative(import.meta.dirname, f.moduleId)] ?? -1;
    const base = await super.sort(files);
    return base.map((f, i) => ({ f, i, s: of(f) })).sort((a, b) => b.s - a.s || a.i - b.i).map((x) => x.f);
  }
}

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
    sequence: { sequencer: SlowestFirst },
  },
});
