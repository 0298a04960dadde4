// What an error bound says about a value: some guaranteed bits (below the value's magnitude), nothing
// (finite but at least the magnitude: "the error is no larger than the value" holds for a zero output
// too), or no bound at all. Precision tests count these classes so that a check like
// "measured <= bound" is not reported as meaningful on rows where it holds trivially.

export type BoundClass = 'informative' | 'vacuous' | 'infinite';
export const BOUND_CLASSES: readonly BoundClass[] = ['informative', 'vacuous', 'infinite'];

export function boundClass(bound: number, magnitude: number): BoundClass {
  if (!Number.isFinite(bound)) return 'infinite';
  return bound < magnitude ? 'informative' : 'vacuous';
}

/** Items grouped by the class of their bound (every class present, possibly empty). */
export function byBoundClass<T>(items: T[], bound: (t: T) => number, magnitude: (t: T) => number): Record<BoundClass, T[]> {
  const out: Record<BoundClass, T[]> = { informative: [], vacuous: [], infinite: [] };
  for (const t of items) out[boundClass(bound(t), magnitude(t))].push(t);
  return out;
}
