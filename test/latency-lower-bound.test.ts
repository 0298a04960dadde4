// The parameter search's branch and bound (passes/fhe/parameters/latency-lower-bound.ts): the bound taken
// before a candidate's refreshes are placed never exceeds the latency the search then predicts for it,
// and skipping the candidates whose bound is above the best so far chooses what the full search chooses.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildLlamaGraph, LLAMA32_1B, type LlamaConfig } from '../bench/llama-synth.js';
import { exportOnnx } from '../compiler/onnx/export.js';
import { assumeRanges, DEFAULT_INTERVALS, uniformMaskNeeds } from '../compiler/cost-estimate.js';
import { loadModel } from '../compiler/driver.js';
import { modelFloors } from '../compiler/model-parameters.js';
import { importOnnx } from '../compiler/onnx/import.js';
import { defaultCostTable } from '../ir/ckks/cost-table.js';
import { makeParameters, topLevel, type CkksParameters } from '../ir/ckks/params.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import { lowerCanonicalModel, type LoweredModel } from '../passes/fhe/lower-canonical/lower-model.js';
import { latencyLowerBound } from '../passes/fhe/parameters/latency-lower-bound.js';
import { searchParameters, type ParameterSearchOptions } from '../passes/fhe/parameters/parameter-search.js';
import { floorPlanner } from '../passes/fhe/parameters/select-parameters-pass.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-bound-'));
// Llama-3.2-1B's structure at a small size (two layers, GQA, KV cache), weights by shape only.
const SMALL: LlamaConfig = { ...LLAMA32_1B, layers: 2, hidden: 128, heads: 8, kvHeads: 2, headDim: 16, ffn: 256, vocab: 512, maxPositions: 64, dtype: 'float32', kvCache: true };

function loweringOf(): (slots: number) => LoweredModel {
  const file = path.join(tmp, 'small.onnx');
  exportOnnx(buildLlamaGraph(SMALL), file, { externalData: { location: 'small.onnx.data', sparse: true } });
  const graph = loadModel(file, { canonical: true, bindings: generatorBindings(importOnnx(file).graph, { kind: 'decode', past: 4 }), verifyEach: false }).graph;
  const attention = assumeRanges(graph, DEFAULT_INTERVALS);
  return (slots) => lowerCanonicalModel(graph, { slots, attention, weights: 'shapes' });
}

describe('the parameter search bound', () => {
  const costs = defaultCostTable();
  const lower = loweringOf();
  const lowered = new Map<FheProgram, LoweredModel>();
  const floorsOf = (program: FheProgram, params: CkksParameters) =>
    modelFloors(program, params, uniformMaskNeeds(lowered.get(program)!, 1024));
  // A planner select-parameters uses: the greedy placement above each value's floor.
  const planner = floorPlanner(floorsOf, 'greedy');
  const options: ParameterSearchOptions = {
    build: (slots) => {
      const l = lower(slots);
      lowered.set(l.program, l);
      return l.program;
    },
    costs,
    refresh: planner,
    scaleBits: [40],
    integerBits: 20,
    precision: () => ({}),
  };
  const bound: ParameterSearchOptions['lowerBound'] = (program, params) => {
    const floors = floorsOf(program, params);
    return 'refused' in floors ? undefined : latencyLowerBound(program, costs, params.ringDegree, topLevel(params), floors.floor);
  };
  const full = searchParameters(options);

  it('never exceeds the latency the search predicts for a candidate, and is not trivial', () => {
    const feasible = full.candidates.filter((c) => c.feasible);
    expect(feasible.length).toBeGreaterThanOrEqual(3);
    const programs = new Map([...lowered.keys()].map((p) => [p.slots * 2, p]));
    let tightest = 0;
    for (const c of feasible) {
      const program = programs.get(c.ringDegree)!;
      const b = bound(program, makeParameters({ ringDegree: c.ringDegree, bitSizes: c.bitSizes, scale: 2 ** c.scaleBits }));
      expect(b).toBeDefined();
      expect(b!).toBeLessThanOrEqual(c.latencyMs!);
      tightest = Math.max(tightest, b! / c.latencyMs!);
    }
    // Encodes priced at the chain's top and every product at its floor: a large part of a decode step (0.44 here).
    console.log(`tightest bound: ${tightest.toFixed(3)} of the predicted latency`);
    expect(tightest).toBeGreaterThan(0.3);
  }, 120000);

  it('prices with the optimal placement when asked: never more refreshes than greedy, chain by chain, and fewer on most', () => {
    const optimal = searchParameters({ ...options, refresh: floorPlanner(floorsOf, 'optimal') });
    const key = (c: { ringDegree: number; levels: number }) => `${c.ringDegree}/${c.levels}`;
    const byChain = new Map(optimal.candidates.filter((c) => c.feasible).map((c) => [key(c), c]));
    const greedy = full.candidates.filter((c) => c.feasible);
    expect(byChain.size).toBe(greedy.length);
    let fewer = 0;
    for (const c of greedy) {
      const o = byChain.get(key(c))!;
      expect(o.refreshes!, key(c)).toBeLessThanOrEqual(c.refreshes!);
      if (o.refreshes! < c.refreshes!) fewer++;
    }
    // And it is the optimal placement, not greedy's again: on this program it needs fewer on every chain of
    // 4 levels or more (e.g. 254 against 304 at N=16384 with 4 levels).
    expect(fewer).toBeGreaterThan(greedy.length / 2);
    // The bound holds for it too, though it folds constant products into refreshes (ops removed).
    const programs = new Map([...lowered.keys()].map((p) => [p.slots * 2, p]));
    for (const o of byChain.values()) {
      const b = bound(programs.get(o.ringDegree)!, makeParameters({ ringDegree: o.ringDegree, bitSizes: o.bitSizes, scale: 2 ** o.scaleBits }));
      expect(b!).toBeLessThanOrEqual(o.latencyMs!);
    }
  }, 120000);

  it('skips candidates that cannot win and chooses what the full search chooses', () => {
    const pruned = searchParameters({ ...options, lowerBound: bound });
    const skipped = pruned.candidates.filter((c) => c.lowerBoundMs !== undefined);
    expect(skipped.length).toBeGreaterThan(0);
    const best = pruned.best!.candidate;
    for (const c of skipped) {
      expect(c.feasible).toBe(false);
      expect(c.reason).toMatch(/^pruned: at least [\d.]+ ms before any refresh/);
      expect(c.lowerBoundMs!).toBeGreaterThan(best.latencyMs!);
    }
    expect([best.ringDegree, best.levels, best.latencyMs, best.refreshes]).toEqual([
      full.best!.candidate.ringDegree, full.best!.candidate.levels, full.best!.candidate.latencyMs, full.best!.candidate.refreshes,
    ]);
  }, 120000);
});
