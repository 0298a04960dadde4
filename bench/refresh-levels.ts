// Refresh round trips per step with and without batching, from the step plans alone: without, one
// round trip per refresh op; batched by dependency level, one per distinct refresh level (a refresh's
// level: 1 + the most refreshes on any path from an input to it), which is the fewest round trips an
// executor that sends every refresh of a level together makes. Decode steps add one KV-cache carry.
//   node dist/bench/refresh-levels.js STEP_PLAN.json...

import * as path from 'node:path';
import { loadModelPlan } from '../runtime/model-session.js';

for (const file of process.argv.slice(2)) {
  const program = loadModelPlan(file).plan.program;
  const depth = new Map<string, number>();
  const levels = new Set<number>();
  let refreshes = 0;
  for (const op of program.ops) {
    let d = 0;
    for (const a of op.args) d = Math.max(d, depth.get(a.name) ?? 0);
    if (op.kind === 'refresh') {
      refreshes++;
      d++;
      levels.add(d);
    }
    if (op.result) depth.set(op.result.name, d);
  }
  console.log(`${path.basename(file)}: ${refreshes} refresh ops, ${levels.size} refresh levels`);
}
