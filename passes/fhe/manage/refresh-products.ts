// Where manage-scales refreshes a ct x ct product as it is (size 3, unrescaled: manage-scales.ts
// refreshProducts) instead of relinearizing and rescaling it first. The evaluator's thread saves the
// relinearization's key switch and the rescale; the mask becomes a size-3 encryption with the client's
// product key (4/3 of an encryption, made ahead on the mask thread: runtime/seal/zero-encryptor.ts) and
// the key holder decrypts one more polynomial at one more prime, neither on the evaluator's thread.
// What the evaluator's side pays is the bigger request on the link: three polynomials at level l
// instead of two at l - 1. So a level absorbs when the link time the bigger request adds is below the
// key switch and the rescale it saves: in process, and on fast links, always; on a slow link
// (100 Mbit/s), never. The cost table prices each part at the chain's levels.

import { hasRingDegree, opCost, refreshRoundTrip, type CostTable } from '../../../ir/ckks/cost-table.js';

/** The rule for chain top `top` at ring degree `ringDegree`: whether a product at level `level` is refreshed as it is. */
export function refreshProductsRule(table: CostTable, ringDegree: number, top: number): (level: number) => boolean {
  if (!hasRingDegree(table, ringDegree)) return () => true;
  return (level) => {
    if (level < 1) return false;
    const added = refreshRoundTrip(table, ringDegree, level, top, top, 3).linkMs - refreshRoundTrip(table, ringDegree, level - 1, top, top, 2).linkMs;
    const saved = opCost(table, 'relinearize', ringDegree, level, top) + opCost(table, 'rescale', ringDegree, level, top);
    return added < saved;
  };
}
