// The weight blocks a streaming plan has read, kept under a byte budget (least recently used first
// out), one cache per thread. Each external region is checked against the sha256 its plan recorded
// before its first read in this thread: a replaced or damaged data file is an error, not wrong values.

import * as fs from 'node:fs';
import { FhecError } from '../errors.js';
import { fileReader, regionSha256, type RegionReader, type WeightBlock, type WeightRecipe } from './recipe.js';

const MiB = 2 ** 20;
/** Default budget for decoded weight blocks (float64), per thread. */
export const DEFAULT_WEIGHT_CACHE_BYTES = 1024 * MiB;

export interface WeightCacheStats {
  /** Blocks read and decoded from the data files. */
  loads: number;
  hits: number;
  evictions: number;
  /** Bytes read from data files for blocks (not counting the one-time digest checks). */
  bytesRead: number;
  /** Bytes read to check regions' digests, and how many regions were checked. */
  bytesVerified: number;
  regionsVerified: number;
  /** Most bytes of decoded blocks held at once, and the budget. */
  peakBytes: number;
  budgetBytes: number;
}

type Region = Extract<WeightRecipe, { op: 'external' }>;

export class WeightCache {
  private readonly blocks = new Map<string, WeightBlock>();
  private held = 0;
  /** Regions whose digest was checked, with their file's size and mtime then. */
  private readonly verified = new Map<string, string>();
  readonly stats: WeightCacheStats;

  constructor(budgetBytes = DEFAULT_WEIGHT_CACHE_BYTES) {
    this.stats = { loads: 0, hits: 0, evictions: 0, bytesRead: 0, bytesVerified: 0, regionsVerified: 0, peakBytes: 0, budgetBytes };
  }

  /** Drops every block and every region's checked digest (their files may have changed since). */
  clear(): void {
    this.blocks.clear();
    this.held = 0;
    this.verified.clear();
  }

  setBudget(bytes: number): void {
    this.stats.budgetBytes = bytes;
    this.evictTo(bytes);
  }

  /** The block under `key`, loaded by `load` (given a reader that checks digests) when it is not held. */
  get(key: string, load: (reader: RegionReader) => WeightBlock): WeightBlock {
    const hit = this.blocks.get(key);
    if (hit) {
      this.blocks.delete(key);
      this.blocks.set(key, hit);
      this.stats.hits++;
      return hit;
    }
    const reader: RegionReader = {
      read: (region, ranges) => {
        const where = { file: region.file, field: `weight bytes ${region.offset}..${region.offset + region.length}` };
        this.verify(region);
        const bytes = fileReader(where).read(region, ranges);
        this.stats.bytesRead += bytes.length;
        return bytes;
      },
    };
    const block = load(reader);
    this.stats.loads++;
    const bytes = block.data.byteLength;
    // A block larger than the budget is used once and not kept.
    if (bytes <= this.stats.budgetBytes) {
      this.evictTo(this.stats.budgetBytes - bytes);
      this.blocks.set(key, block);
      this.held += bytes;
    }
    this.stats.peakBytes = Math.max(this.stats.peakBytes, this.held, bytes);
    return block;
  }

  private evictTo(limit: number): void {
    for (const [k, b] of this.blocks) {
      if (this.held <= limit) break;
      this.blocks.delete(k);
      this.held -= b.data.byteLength;
      this.stats.evictions++;
    }
  }

  /**
   * Checks a region against its recorded sha256: once per region per cache, and again when its file's
   * size or modification time changed since (a file replaced during a run).
   */
  private verify(region: Region): void {
    if (region.sha256 === undefined) return;
    const key = `${region.file}@${region.offset}+${region.length}:${region.sha256}`;
    let stamp: string;
    try {
      const st = fs.statSync(region.file);
      stamp = `${st.size}:${st.mtimeMs}:${st.ino}`;
    } catch {
      stamp = 'missing'; // the read below names the problem
    }
    if (this.verified.get(key) === stamp) return;
    const got = regionSha256(region);
    this.stats.bytesVerified += region.length;
    this.stats.regionsVerified++;
    if (got !== region.sha256) {
      throw new FhecError(`weight bytes ${region.offset}..${region.offset + region.length} have sha256 ${got.slice(0, 16)}..., the plan recorded ${region.sha256.slice(0, 16)}... (the data file changed since the plan was compiled)`, { file: region.file });
    }
    this.verified.set(key, stamp);
  }
}

/** This thread's cache (each worker thread has its own). */
export const weightCache = new WeightCache();

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** A summary line for a run that streamed weights on this thread (undefined when none were read). */
export function weightStreamSummary(cache: WeightCache = weightCache): string | undefined {
  const s = cache.stats;
  if (s.loads === 0) return undefined;
  return (
    `streamed weights (this thread): ${s.loads} blocks read (${mib(s.bytesRead)} from the data files), ${s.hits} reuses, ${s.evictions} evictions, ` +
    `peak ${mib(s.peakBytes)} held of a ${mib(s.budgetBytes)} budget; ${s.regionsVerified} regions checked against their sha256 (${mib(s.bytesVerified)})`
  );
}
