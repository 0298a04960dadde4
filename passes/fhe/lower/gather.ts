// Relayout: brings elements already in ciphertexts to the slots a consumer needs, with rotations and
// masks. Target slots are grouped by (source ciphertext, rotation step); a greedy cover picks few groups,
// and each group costs one rotation (none for step 0) and one plaintext mask multiplication (skipped
// when a single rotation already gives exactly what is needed). When the requirement repeats with a
// period inside equal segments (a replicated vector, one per token), only the first period is gathered
// and the rest is filled by doubling: log2(copies) rotations instead of one per copy.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import { addMovedHolds, ANY, normalizeRotation, rotateHolds, satisfies, ZERO, type Block, type Holds, type Want } from './placement.js';

/** Sources per element considered by the cover (replicated elements have many). */
const MAX_SOURCES = 16;

interface Group {
  block: number;
  step: number;
  targets: number[];
}

/** Greedy cover of the wanted slots by (block, step) groups. */
function coverGroups(blocks: Block[], want: Want, slots: number): Group[] {
  const sources = new Map<number, number[]>();
  blocks.forEach((b, k) => {
    for (let s = 0; s < slots; s++) {
      const e = b.holds[s]!;
      if (e < 0) continue;
      let list = sources.get(e);
      if (!list) sources.set(e, (list = []));
      if (list.length < MAX_SOURCES) list.push(k * slots + s);
    }
  });
  const targets: number[] = [];
  for (let s = 0; s < slots; s++) if (want[s]! >= 0) targets.push(s);
  // Candidate key = block * slots + (step mod slots).
  const candOf = new Map<number, number[]>();
  const count = new Map<number, number>();
  for (const t of targets) {
    const e = want[t]!;
    const list = sources.get(e);
    if (!list) throw new FhecError(`internal: element ${e} is in no ciphertext`);
    const keys = [...new Set(list.map((src) => {
      const k = Math.floor(src / slots);
      const s = src % slots;
      return k * slots + ((((s - t) % slots) + slots) % slots);
    }))];
    candOf.set(t, keys);
    for (const key of keys) count.set(key, (count.get(key) ?? 0) + 1);
  }
  const covered = new Set<number>();
  const groups: Group[] = [];
  while (covered.size < targets.length) {
    let best = -1;
    let bestScore = -1;
    for (const [key, c] of count) {
      // Prefer no rotation, then lower blocks/steps (deterministic).
      const score = c * 2 + (key % slots === 0 ? 1 : 0);
      if (score > bestScore || (score === bestScore && key < best)) {
        best = key;
        bestScore = score;
      }
    }
    const group: Group = { block: Math.floor(best / slots), step: normalizeRotation(best % slots, slots), targets: [] };
    for (const t of targets) {
      if (covered.has(t) || !candOf.get(t)!.includes(best)) continue;
      group.targets.push(t);
      covered.add(t);
      for (const key of candOf.get(t)!) {
        const c = count.get(key)! - 1;
        if (c === 0) count.delete(key);
        else count.set(key, c);
      }
    }
    groups.push(group);
  }
  return groups;
}

/** The (period, segment) of a requirement that repeats inside equal segments, if any. */
function periodicity(want: Want, slots: number): { period: number; segment: number } | undefined {
  for (let period = 1; period <= slots / 2; period *= 2) {
    let best: number | undefined;
    for (let segment = slots; segment >= 2 * period; segment /= 2) {
      let ok = true;
      for (let s = 0; s < slots && ok; s++) {
        const u = s % segment;
        if (u < period) continue;
        const w = want[s]!;
        const base = want[s - u + (u % period)]!;
        if (w === ANY) continue;
        if (base === ANY || base !== w) ok = false;
      }
      if (ok) {
        best = segment;
        break;
      }
    }
    if (best !== undefined) {
      // Worth it only when the base period actually holds something.
      let any = false;
      for (let s = 0; s < slots && !any; s++) if (s % best < period && want[s]! >= 0) any = true;
      if (any) return { period, segment: best };
    }
  }
  return undefined;
}

export interface GatherCost {
  rotations: number;
  plainMultiplications: number;
}

function emitGroups(b: FheBuilder, blocks: Block[], want: Want, groups: Group[], cost: GatherCost): Block {
  const slots = b.slots;
  const rotated = groups.map((g) => {
    const src = blocks[g.block]!;
    if (g.step === 0) return src;
    cost.rotations++;
    return { ct: b.rotate(src.ct, g.step), holds: rotateHolds(src.holds, g.step) };
  });
  if (groups.length === 1 && satisfies(rotated[0]!.holds, want)) return rotated[0]!;
  let acc: Block | undefined;
  groups.forEach((g, i) => {
    const mask = new Float64Array(slots);
    const holds: Holds = new Int32Array(slots).fill(ZERO);
    for (const t of g.targets) {
      mask[t] = 1;
      holds[t] = want[t]!;
    }
    cost.plainMultiplications++;
    const part: Block = { ct: b.mulConst(rotated[i]!.ct, { kind: 'dense', values: mask }, 'mask'), holds };
    acc = acc ? { ct: b.add(acc.ct, part.ct), holds: addMovedHolds(acc.holds, part.holds) } : part;
  });
  return acc!;
}

/** A ciphertext meeting `want`, built from `blocks` by rotations and masks. */
export function gather(b: FheBuilder, blocks: Block[], want: Want, cost: GatherCost): Block {
  const slots = b.slots;
  const direct = coverGroups(blocks, want, slots);
  const per = periodicity(want, slots);
  if (per) {
    const base = new Int32Array(slots).fill(ZERO);
    for (let s = 0; s < slots; s++) if (s % per.segment < per.period) base[s] = want[s] === ANY ? ZERO : want[s]!;
    const baseGroups = coverGroups(blocks, base, slots);
    const copies = per.segment / per.period;
    const doublingCost = baseGroups.filter((g) => g.step !== 0).length + Math.log2(copies);
    const directCost = direct.filter((g) => g.step !== 0).length;
    if (doublingCost < directCost) {
      let x = emitGroups(b, blocks, base, baseGroups, cost);
      if (!satisfies(x.holds, base)) throw new Error('internal: gathered base period is not clean');
      for (let width = per.period; width < per.segment; width *= 2) {
        const r = { ct: b.rotate(x.ct, -width), holds: rotateHolds(x.holds, -width) };
        cost.rotations++;
        x = { ct: b.add(x.ct, r.ct), holds: addMovedHolds(x.holds, r.holds) };
      }
      if (!satisfies(x.holds, want)) throw new Error('internal: replication does not meet the requirement');
      return x;
    }
  }
  return emitGroups(b, blocks, want, direct, cost);
}
