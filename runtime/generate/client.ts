// The client side of encrypted generation. It holds the secret key (inside its backend client), the
// tokenizer and the embedding table: it turns the prompt into bytes, looks the tokens up, encrypts
// the embeddings, decrypts the logits and picks the next token greedily. It is also the refresh key
// holder: the evaluator sends it masked ciphertexts (refresh ops, and the KV cache carried between
// steps), and it answers with fresh encryptions, but only those its own copy of the (public) plans
// schedules, step by step (step-schedule.ts, runtime/refresh/schedule.ts). It reaches the evaluator only
// through a byte channel.

import { FhecError } from '../../ir/errors.js';
import { packSlots, unpackSlots } from '../../ir/fhe/layout.js';
import type { SlotLayout } from '../../ir/fhe/types.js';
import type { CkksBackend, CkksClient, RefreshThreadStats } from '../backend.js';
import { makeParameters, parametersId, slotsOf } from '../../ir/ckks/params.js';
import { embedTokens } from '../model-session.js';
import { RefreshKeyHolder } from '../refresh/key-holder.js';
import { RefreshScheduleGuard } from '../refresh/schedule.js';
import { handleCacheRefresh } from './cache-refresh.js';
import { stepRefreshPoints } from './step-schedule.js';
import type { OpenReply, StepStats } from './evaluator.js';
import type { ClientModel } from './manifest.js';
import { decodeMessage, encodeKeys, encodeMessage, isGenerationMessage, type LogitsBlock } from './messages.js';
import { generationSteps, shapeName, type GenerationPlanSource, type StepShape } from './plan-source.js';
import { tokenizerFor, type TextTokenizer } from './tokenizer.js';
import type { HfTokenizer } from './hf-tokenizer.js';
import type { RefreshPoint } from '../refresh/schedule.js';
import type { AsyncChannel, SyncChannel } from './transport.js';

export interface StepRecord {
  shape: StepShape;
  /** Prompt or generated tokens this step fed in. */
  tokens: number[];
  /** The token picked from this step's logits, if the step's logits were needed. */
  next?: number;
  /** Wall time of the step: embed, encrypt, the evaluator's work, decrypt (not the evaluator's plan loading). */
  ms: number;
  clientMs: number;
  evaluator: StepStats;
}

export interface GenerationResult {
  prompt: number[];
  /** Greedy tokens, up to and including a stop token (BOS, EOS, end of turn) if one came first. */
  generated: number[];
  /** The stop token that ended generation early, if any. */
  stoppedAt?: number;
  text: string;
  steps: StepRecord[];
  /** Key generation and setup (not part of any token's latency). */
  setupMs: number;
  /** `threadRounds`: rounds the key holder's own thread answered (startRefreshThread), else 0. */
  keyHolder: { requests: number; ciphertexts: number; rotatedCopies: number; ms: number; threadRounds: number; repliesAhead: number };
}

export interface GenerateHooks {
  /** Called after every step (for a progress bar). */
  onStep?: (done: number, total: number, record: StepRecord) => void;
}

/**
 * What the client needs of the (public) plans: the prefill lengths (to know the steps) and each step's
 * refresh schedule, which its key holder checks every request against. In one process it comes from
 * the plans themselves (scheduleFromPlans); a remote client gets it from the service.
 */
export interface ClientPlans {
  prefillLengths(): number[];
  /** The refresh points of step `index` of `steps`, in the order the evaluator must request them. */
  refreshPoints(steps: readonly StepShape[], index: number): readonly RefreshPoint[];
}

/** The client's schedule from the step plans (compiled or loaded by the source). */
export function scheduleFromPlans(plans: Pick<GenerationPlanSource, 'load' | 'prefillLengths'>): ClientPlans {
  return {
    prefillLengths: () => plans.prefillLengths(),
    refreshPoints: (steps, i) => stepRefreshPoints(i > 0 ? plans.load(steps[i - 1]!) : undefined, plans.load(steps[i]!)),
  };
}

export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/** The client's tokenizer: the manifest's Hugging Face folder (its tokenizer.json must be the one compiled with), or bytes. */
export function clientTokenizer(model: ClientModel): TextTokenizer {
  const t = model.tokenizer;
  if (t === undefined || t === 'bytes') return tokenizerFor(model.vocab);
  const hf = tokenizerFor(model.vocab, t.dir) as HfTokenizer;
  if (hf.sha256 !== t.sha256) {
    throw new FhecError(`this tokenizer.json is not the one the generation plan was compiled with (sha256 ${hf.sha256.slice(0, 12)}..., the plan records ${t.sha256.slice(0, 12)}...)`, { file: t.dir, field: '--tokenizer' });
  }
  return hf;
}

export class GenerationClient {
  readonly tokenizer: TextTokenizer;
  private ckks?: CkksClient;
  private guard?: RefreshScheduleGuard;
  private refreshHolder?: RefreshKeyHolder;
  private readonly holderStats = { requests: 0, ciphertexts: 0, rotatedCopies: 0, ms: 0 };

  /** `plans`: the generation plan's step plans (public), or the schedule they make (ClientPlans). */
  constructor(
    private readonly backend: CkksBackend,
    private readonly model: ClientModel,
    plans: Pick<GenerationPlanSource, 'load' | 'prefillLengths'> | ClientPlans,
    /** The key holder's minimum hiding per refreshed ciphertext (default 40 bits, runtime/refresh/mask.ts). */
    private readonly minHidingBits?: number,
    /**
     * Refresh rounds on a thread of the client's own (SEAL in Node: CkksClient.startRefreshThread), so
     * that an evaluator in the same process does its waiting work meanwhile (`fhec generate`).
     */
    private readonly refreshThread = false,
  ) {
    this.tokenizer = clientTokenizer(model);
    this.plans = 'refreshPoints' in plans ? plans : scheduleFromPlans(plans);
  }
  private readonly plans: ClientPlans;

  /** The key holder's channel: masked ciphertexts in, fresh ciphertexts out. */
  readonly keyHolder: SyncChannel = (request, whileWaiting) => {
    if (!this.ckks || !this.guard) throw new FhecError('the key holder has no keys yet');
    const t0 = performance.now();
    // The key holder's work: its time on this thread, less the caller's work and the wait for its
    // refresh thread, plus that thread's own time.
    const thread = this.threadStats;
    const [waited0, threadMs0] = [thread?.waitedMs ?? 0, thread?.ms ?? 0];
    let idleMs = 0;
    const idle = whileWaiting
      ? (answered: () => boolean) => {
          const s = performance.now();
          try {
            whileWaiting(answered);
          } finally {
            idleMs += performance.now() - s;
          }
        }
      : undefined;
    let reply: Uint8Array;
    if (isGenerationMessage(request)) {
      const r = handleCacheRefresh(this.ckks, this.guard, request, this.minHidingBits, idle);
      reply = r.reply;
      this.holderStats.ciphertexts += r.ciphertexts;
    } else {
      const before = { ...this.refreshHolder!.stats };
      reply = this.refreshHolder!.handle(request, idle);
      this.holderStats.ciphertexts += this.refreshHolder!.stats.ciphertexts - before.ciphertexts;
      this.holderStats.rotatedCopies += this.refreshHolder!.stats.rotatedCopies - before.rotatedCopies;
    }
    this.holderStats.requests++;
    this.holderStats.ms += performance.now() - t0 - idleMs - ((thread?.waitedMs ?? 0) - waited0) + ((thread?.ms ?? 0) - threadMs0);
    return reply;
  };
  private threadStats?: RefreshThreadStats;

  /** The evaluator was replaced and resumes the session; `rerun`: it runs the open step again (RefreshScheduleGuard.restart). */
  restartEvaluator(rerun: boolean): void {
    this.guard?.restart(rerun);
  }

  async generate(prompt: string | Uint8Array, maxNewTokens: number, evaluator: AsyncChannel, hooks: GenerateHooks = {}): Promise<GenerationResult> {
    const t0 = performance.now();
    const ids = this.tokenizer.encode(prompt);
    if (ids.length === 0) throw new FhecError('the prompt is empty', { field: '--prompt' });
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new FhecError(`--max-new-tokens must be a positive integer, got ${maxNewTokens}`, { field: '--max-new-tokens' });
    const plan = decodeMessage<OpenReply>(await evaluator(encodeMessage({ kind: 'open', promptTokens: ids.length, maxNewTokens } as { kind: string })), ['plan']).header;
    const params = makeParameters({ ringDegree: plan.params.ringDegree, bitSizes: plan.params.bitSizes, scale: plan.params.scale });
    const mine = this.model.params;
    if (parametersId(params) !== plan.params.id || mine.ringDegree !== params.ringDegree || mine.scale !== params.scale || mine.bitSizes.join() !== params.bitSizes.join()) {
      throw new FhecError('the evaluator proposes other CKKS parameters than the generation plan');
    }
    this.ckks?.dispose();
    // The steps follow from the prompt length and the plan: the evaluator's list must be that one.
    const shapes = generationSteps(this.plans, ids.length, maxNewTokens);
    if (shapes.map(shapeName).join() !== plan.steps.map(shapeName).join()) {
      throw new FhecError(`the evaluator proposes the steps ${plan.steps.map(shapeName).join(', ')}, the generation plan makes ${shapes.map(shapeName).join(', ')}`);
    }
    this.ckks = await this.backend.createClient(params, plan.keys);
    this.threadStats = this.refreshThread && this.ckks.startRefreshThread ? await this.ckks.startRefreshThread() : undefined;
    const { plans } = this;
    this.guard = new RefreshScheduleGuard((i) => plans.refreshPoints(shapes, i));
    this.refreshHolder = new RefreshKeyHolder(this.ckks, this.guard, this.minHidingBits);
    decodeMessage(await evaluator(encodeKeys(this.ckks.evaluationKeys())), ['ready']);
    const setupMs = performance.now() - t0;

    const n = ids.length;
    const generated: number[] = [];
    const steps: StepRecord[] = [];
    const tokenAt = (pos: number) => (pos < n ? ids[pos]! : generated[pos - n]!);
    for (const [index, step] of plan.steps.entries()) {
      // The step's refresh schedule, from the client's copy of the plans (loading them is not step time).
      this.guard.beginStep(index);
      const s0 = performance.now();
      const first = step.kind === 'prefill' ? 0 : step.past;
      const count = step.kind === 'prefill' ? step.tokens : 1;
      const tokens = Array.from({ length: count }, (_, i) => tokenAt(first + i));
      const last = first + count - 1;
      const wantLogits = last >= n - 1;
      const ct = this.encryptEmbeddings(tokens, step.input.layout, step.input.level, step.input.scale);
      const c1 = performance.now();
      const reply = decodeMessage<{ kind: 'logits'; width: number; blocks: LogitsBlock[]; stats: StepStats }>(
        await evaluator(encodeMessage({ kind: 'step', index, logits: wantLogits } as { kind: string }, [ct])),
        ['logits'],
      );
      const c2 = performance.now();
      this.guard.endStep();
      const record: StepRecord = { shape: step.kind === 'prefill' ? { kind: 'prefill', tokens: step.tokens } : { kind: 'decode', past: step.past }, tokens, ms: 0, clientMs: 0, evaluator: reply.header.stats };
      if (wantLogits) {
        record.next = argmax(this.lastLogits(reply.header, reply.blobs));
        generated.push(record.next);
      }
      const stop = record.next !== undefined && this.tokenizer.stopIds.has(record.next);
      const s1 = performance.now();
      record.ms = s1 - s0 - reply.header.stats.loadMs;
      record.clientMs = c1 - s0 + (s1 - c2);
      steps.push(record);
      hooks.onStep?.(index + 1, plan.steps.length, record);
      if (stop) break;
    }
    await evaluator(encodeMessage({ kind: 'close' }));
    const stoppedAt = generated.length > 0 && this.tokenizer.stopIds.has(generated[generated.length - 1]!) ? generated[generated.length - 1] : undefined;
    if (generated.length !== maxNewTokens && stoppedAt === undefined) throw new FhecError(`internal: generated ${generated.length} tokens, expected ${maxNewTokens}`);
    const text = this.tokenizer.decode(stoppedAt === undefined ? generated : generated.slice(0, -1));
    return { prompt: ids, generated, ...(stoppedAt !== undefined ? { stoppedAt } : {}), text, steps, setupMs, keyHolder: { ...this.holderStats, threadRounds: this.threadStats?.rounds ?? 0, repliesAhead: this.threadStats?.repliesAhead ?? this.ckks.repliesEncryptedAhead?.() ?? 0 } };
  }

  /** The last token's logits, assembled from the evaluator's column blocks (one per ciphertext). */
  private lastLogits(header: { width: number; blocks: LogitsBlock[] }, blobs: readonly Uint8Array[]): Float64Array {
    const { width, blocks } = header;
    if (blobs.length === 0) throw new FhecError('the evaluator sent no logits');
    if (blobs.length !== blocks.length) throw new FhecError(`the evaluator sent ${blobs.length} logits ciphertexts for ${blocks.length} blocks`);
    const row = new Float64Array(width);
    const filled = new Uint8Array(width);
    blocks.forEach((blk, i) => {
      const { tokens, length } = blk.layout;
      const rows = unpackSlots(blk.layout, this.ckks!.decrypt(blobs[i]!));
      const n = Math.min(length, width - blk.colStart);
      if (blk.colStart < 0 || n <= 0) throw new FhecError(`logits block ${i} starts at column ${blk.colStart}, outside the ${width} logits`);
      row.set(rows.subarray((tokens - 1) * length, (tokens - 1) * length + n), blk.colStart);
      filled.fill(1, blk.colStart, blk.colStart + n);
    });
    if (filled.includes(0)) throw new FhecError(`the evaluator's logits blocks do not cover all ${width} logits`);
    return row;
  }

  private encryptEmbeddings(tokens: number[], layout: SlotLayout, level: number, scale: number): Uint8Array {
    const { table, vocab, dim } = this.model;
    if (layout.length !== dim || layout.tokens !== tokens.length) throw new FhecError(`the evaluator asks for ${layout.tokens} x ${layout.length} embeddings, the step has ${tokens.length} x ${dim}`);
    const emb = embedTokens(table, vocab, dim, tokens);
    return this.ckks!.encrypt(packSlots(layout, slotsOf(this.ckks!.params), emb), level, scale);
  }

  dispose(): void {
    this.ckks?.dispose();
    this.ckks = undefined;
  }
}
