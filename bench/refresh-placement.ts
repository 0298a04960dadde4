// `node dist/bench/refresh-placement.js [maxStates...] [--shapes prefill8,decode8,decode20,prefill16@32768]`:
// refresh placement on the lowered llama-byte-a. For each plan shape it compiles the model as the CLI
// does (greedy placement), then times greedy and the optimal search alone on the lowered program,
// checks the optimal placement through scale management and the managed verifier (as finishCompile
// does), and prints counts, exactness, peak states and times.

import * as path from 'node:path';
import { compileModel } from '../compiler/model-plan.js';
import { fheChain, topLevel } from '../ir/ckks/params.js';
import { verifyFhe } from '../ir/fhe/verify.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { multiplicativeDepth } from '../passes/fhe/analysis/depth.js';
import { placeRefreshesGreedy } from '../passes/fhe/refresh/refresh-greedy.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';

export interface PlacementRow {
  shape: string;
  ringDegree: number;
  levels: number;
  values: number;
  maxStates: number;
  greedy: number;
  optimal: number;
  exact: boolean;
  peakStates: number;
  frontier: number;
  greedyMs: number;
  optimalMs: number;
}

const MODEL = path.join('models', 'llama-byte-a', 'model.onnx');
const CALIBRATION = path.join('models', 'llama-byte-a', 'calibration.txt');

export function runPlacementBench(shapes: string[], maxStates: number[]): PlacementRow[] {
  const rows: PlacementRow[] = [];
  for (const spec of shapes) {
    const [shape, rd] = spec.split('@');
    const ringDegree = rd ? Number(rd) : 16384;
    const m = /^(prefill|decode)(\d+)$/.exec(shape!);
    if (!m) throw new Error(`shape ${spec}: expected prefillS or decodeP, optionally @ringDegree`);
    const c = compileModel(MODEL, {
      calibration: CALIBRATION,
      ringDegree,
      placement: 'greedy',
      ...(m[1] === 'prefill' ? { prefill: Number(m[2]) } : { decode: Number(m[2]) }),
    });
    const L = topLevel(c.params) - 1;
    const program = c.lowered.program;
    let t = performance.now();
    const greedy = placeRefreshesGreedy(program, L);
    const greedyMs = performance.now() - t;
    for (const states of maxStates) {
      t = performance.now();
      const p = placeRefreshes(program, { levels: L, maxStates: states });
      const optimalMs = performance.now() - t;
      if (p.greedyCount !== greedy.refreshed.length || p.count > p.greedyCount) throw new Error(`${spec}: optimal ${p.count} against greedy ${greedy.refreshed.length}`);
      if (multiplicativeDepth(p.program) > L) throw new Error(`${spec}: placed program needs more than ${L} levels`);
      const managed = manageScales(p.program, { chain: fheChain(c.params), topScale: c.params.scale, inputLevel: L + 1 });
      verifyFhe(managed, { managed: true });
      const row: PlacementRow = {
        shape: spec,
        ringDegree,
        levels: L,
        values: p.program.ops.length,
        maxStates: states,
        greedy: p.greedyCount,
        optimal: p.count,
        exact: p.exact,
        peakStates: p.peakStates,
        frontier: p.frontier,
        greedyMs,
        optimalMs,
      };
      rows.push(row);
      console.log(
        `| ${spec} | ${L} | ${states} | ${row.greedy} | ${row.optimal} | ${row.exact ? 'yes' : 'no'} | ${row.peakStates} | ${row.frontier} | ${greedyMs.toFixed(0)} | ${(optimalMs / 1000).toFixed(2)} |`,
      );
    }
  }
  return rows;
}

if (process.argv[1] && path.resolve(process.argv[1]).endsWith(path.join('bench', 'refresh-placement.js'))) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--shapes');
  const shapes = at >= 0 ? args.splice(at, 2)[1]!.split(',') : ['prefill8', 'decode8', 'decode20', 'prefill16@32768'];
  const maxStates = args.length ? args.map(Number) : [300];
  console.log('| plan | L | maxStates | greedy | optimal | exact | peak states | frontier | greedy ms | optimal s |');
  console.log('|---|---:|---:|---:|---:|---|---:|---:|---:|---:|');
  runPlacementBench(shapes, maxStates);
}
