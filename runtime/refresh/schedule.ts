// The refresh schedule: what the key holder agrees to re-encrypt, derived from the plan alone. The plan
// is public and the client holds it, so the client knows, for every step, the ordered list of refresh
// points the evaluator must ask for: each refresh op of the program (round by round, rounds.ts) and each
// KV-cache carry into the step (before the program runs), with the level and scale the masked
// ciphertext must have, the level and scale it comes back at, the slot count, the slot layouts of a
// carry, and the bound on |x| the evaluator's mask was sized for. The guard accepts exactly that
// sequence, request ids counting up from 1 on each channel, and nothing else: another scale, level or
// layout, an extra, missing or reordered refresh, a request for another step, a replayed request. The
// first violation ends the session (every later request is refused too), so a dishonest evaluator
// gets one error and no re-encryption it could use as an oracle.

import { FhecError } from '../../ir/errors.js';
import { layoutsEqual } from '../../ir/fhe/layout.js';
import { maskedScale, scalesClose, type FheProgram, type SlotLayout } from '../../ir/fhe/types.js';
import { refreshRotations, refreshStages } from './rounds.js';

/** Token offsets of a piece of a split cache: the first token the source and the destination hold. */
export interface RelayoutPiece {
  fromStart: number;
  toStart: number;
}

export type RefreshPointKind = 'refresh' | 'carry';

export interface RefreshPoint {
  /** The refreshed value's name (refresh ops) or the cache input it fills (carries). */
  id: string;
  kind: RefreshPointKind;
  /** Level and scale of the masked ciphertext the evaluator sends. */
  level: number;
  scale: number;
  /** Level and scale of the fresh ciphertext the key holder returns. */
  toLevel: number;
  toScale: number;
  slots: number;
  /** Bound on |x| in every slot: the evaluator's mask is sized from it. */
  bound: number;
  /** Carries: the slot layout the value has, and the one the step wants. */
  from?: SlotLayout;
  to?: SlotLayout;
  /** Carries of a split cache: the tokens' first positions in source and destination. */
  piece?: RelayoutPiece;
  /** 3: the refresh of an unrelinearized product (manage-scales refreshProducts); absent: 2. */
  size?: 3;
  /** Refreshes: the rotation steps the reply may also carry (rounds.ts refreshRotations); an item asks for all of them or none. */
  rotations?: number[];
}

/** One item of a request, as the key holder reads it (the ciphertext's own level and scale, the request's fields). */
export interface RequestedItem {
  id: string;
  kind: RefreshPointKind;
  level: number;
  scale: number;
  /** Polynomials in the ciphertext (2 after relinearization). */
  size: number;
  toLevel: number;
  toScale: number;
  slots: number;
  from?: SlotLayout;
  to?: SlotLayout;
  piece?: RelayoutPiece;
  /** Rotation steps asked for besides the fresh value. */
  rotations?: number[];
}

/**
 * The refresh points of a managed program, in the order the evaluator sends them: round by round
 * (rounds.ts: all refreshes of a round share one message), program order within a round. One per
 * refresh op, identified by the refreshed value's name, with its bound from `bounds` (a point without
 * one is a malformed plan).
 */
export function refreshPointsOf(program: FheProgram, bounds: ReadonlyMap<string, number>, file?: string): RefreshPoint[] {
  const points: RefreshPoint[] = [];
  const rotations = refreshRotations(program);
  for (const i of refreshStages(program).stages.flatMap((s) => s.refreshes)) {
    const op = program.ops[i]!;
    const x = op.args[0]!;
    const bound = bounds.get(x.name);
    if (bound === undefined || !(bound > 0) || !Number.isFinite(bound)) {
      throw new FhecError(`refresh of %${x.name} has no bound on |x|: the plan must carry one per refresh point (recompile it)`, { ...(file ? { file } : {}), node: `%${x.name}` });
    }
    points.push({
      id: x.name,
      kind: 'refresh',
      level: x.type.level!,
      scale: maskedScale(op),
      toLevel: op.result!.type.level!,
      toScale: op.result!.type.scale!,
      slots: program.slots,
      bound,
      ...(x.type.kind === 'ct' && x.type.size === 3 ? { size: 3 } : {}),
      ...(rotations.has(i) ? { rotations: rotations.get(i)!.map((r) => r.step) } : {}),
    });
  }
  return points;
}

function showLayout(l?: SlotLayout): string {
  return l ? `{length ${l.length}, tokens ${l.tokens}, stride ${l.stride}, period ${l.period}, copies ${l.copies}}` : 'none';
}

/** Why a requested item is not the expected point, or undefined if it is. */
function mismatch(want: RefreshPoint, got: RequestedItem): string | undefined {
  if (got.kind !== want.kind || got.id !== want.id) return `asks for ${got.kind} of '${got.id}', the plan's next refresh point is the ${want.kind} of '${want.id}'`;
  if (got.level !== want.level) return `sends '${got.id}' at level ${got.level}, the plan has it at level ${want.level}`;
  if (!scalesClose(got.scale, want.scale)) return `sends '${got.id}' at scale ${got.scale}, the plan has it at scale ${want.scale}`;
  if (got.size !== (want.size ?? 2)) return `sends '${got.id}' as a ciphertext of ${got.size} polynomials, the plan has ${want.size ?? 2}`;
  if (got.toLevel !== want.toLevel) return `asks for '${got.id}' back at level ${got.toLevel}, the plan wants level ${want.toLevel}`;
  if (!scalesClose(got.toScale, want.toScale)) return `asks for '${got.id}' back at scale ${got.toScale}, the plan wants scale ${want.toScale}`;
  if (got.slots !== want.slots) return `sends '${got.id}' with ${got.slots} slots, the plan has ${want.slots}`;
  if (want.kind === 'carry' && !(got.from && got.to && layoutsEqual(got.from, want.from!) && layoutsEqual(got.to, want.to!))) {
    return `asks to move '${got.id}' from ${showLayout(got.from)} to ${showLayout(got.to)}, the plan moves it from ${showLayout(want.from)} to ${showLayout(want.to)}`;
  }
  if (want.kind === 'carry' && (got.piece?.fromStart !== want.piece?.fromStart || got.piece?.toStart !== want.piece?.toStart)) {
    return `asks to move tokens ${got.piece ? `${got.piece.fromStart} -> ${got.piece.toStart}` : 'whole'} of '${got.id}', the plan moves ${want.piece ? `${want.piece.fromStart} -> ${want.piece.toStart}` : 'the whole cache'}`;
  }
  const asked = got.rotations ?? [];
  const planned = want.rotations ?? [];
  if (asked.length > 0 && (asked.length !== planned.length || asked.some((s, k) => s !== planned[k]))) {
    return `asks for '${got.id}' rotated by [${asked.join(', ')}], the plan rotates it by [${planned.join(', ')}] (all of them or none)`;
  }
  return undefined;
}

/** The key holder's check of every request against the schedule. */
export class RefreshScheduleGuard {
  private step: number | undefined;
  private points: readonly RefreshPoint[] = [];
  private next = 0;
  private readonly lastRequest = new Map<string, number>();
  private ended?: string;

  /** `stepPoints(step)`: the refresh points of step `step`, carries first, in the order they must come. */
  constructor(private readonly stepPoints: (step: number) => readonly RefreshPoint[]) {}

  private fail(message: string): never {
    this.ended = message;
    throw new FhecError(`refresh request refused, session ended: ${message}`);
  }

  private checkOpen(): void {
    if (this.ended !== undefined) throw new FhecError(`refresh request refused: the key holder ended this session (${this.ended})`);
  }

  /** The client starts step `step`: from now on requests must follow that step's schedule. */
  beginStep(step: number): void {
    this.checkOpen();
    if (this.step !== undefined) this.fail(`step ${step} begins while step ${this.step} is still open`);
    this.step = step;
    this.points = this.stepPoints(step);
    this.next = 0;
  }

  /**
   * The evaluator was replaced (a restarted server resuming the session from its last completed step):
   * the new one's request ids count from 1 again. `rerun`: it runs the open step again from its start,
   * so the step's refresh points start over (they are the plan's, so a rerun asks for nothing the
   * schedule does not hold; the caller bounds how often it allows one). Without `rerun` the open step
   * was completed before the evaluator went away and its reply is delivered from the saved state.
   */
  restart(rerun: boolean): void {
    this.checkOpen();
    if (rerun) this.next = 0;
    this.lastRequest.clear();
  }

  /** The step's reply arrived: every refresh point of the step must have been requested. */
  endStep(): void {
    this.checkOpen();
    if (this.step === undefined) this.fail('no step is open');
    if (this.next !== this.points.length) {
      const missing = this.points.slice(this.next).map((p) => `${p.kind} of '${p.id}'`);
      this.fail(`step ${this.step} ended with ${missing.length} refresh point(s) never requested: ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}`);
    }
    this.step = undefined;
  }

  /** A request on `channel` with id `id` for step `step`: ids count up by one per channel (no replay). */
  acceptRequest(channel: RefreshPointKind, id: number, step: number): void {
    this.checkOpen();
    if (this.step === undefined) this.fail(`a ${channel} request (id ${id}) arrived while no step is running`);
    if (step !== this.step) this.fail(`a ${channel} request (id ${id}) is for step ${step}, the running step is ${this.step}`);
    const expected = (this.lastRequest.get(channel) ?? 0) + 1;
    if (id !== expected) this.fail(`${channel} request id ${id}, expected ${expected} (a replayed or skipped request)`);
    this.lastRequest.set(channel, id);
  }

  /** The next item of the current request: it must be the schedule's next point. Returns that point. */
  acceptItem(item: RequestedItem): RefreshPoint {
    this.checkOpen();
    const want = this.points[this.next];
    if (!want) this.fail(`step ${this.step} has ${this.points.length} refresh point(s), the evaluator asks for one more (${item.kind} of '${item.id}')`);
    const why = mismatch(want, item);
    if (why) this.fail(`step ${this.step}, refresh point ${this.next + 1} of ${this.points.length}: the evaluator ${why}`);
    this.next++;
    return want;
  }
}
