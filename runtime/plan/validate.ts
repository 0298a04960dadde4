// Schema validation shared by every plan reader (arithmetic plans, model sections, generation
// manifests, step files): zod parsing with messages that say what was expected and what was found,
// and one error shape, `malformed <what>: <json path>: <message>` with the file, so a hand-edited or
// truncated file is reported where it is wrong instead of crashing or computing something else.

import { z } from 'zod';
import { FhecError } from '../../ir/errors.js';
import { checkLayout } from '../../ir/fhe/layout.js';
import type { SlotLayout } from '../../ir/fhe/types.js';

export type JsonPath = readonly PropertyKey[];

/** `model.outputs[2].blocks[0]`; keys that are not identifiers are quoted (`bounds["present.0.key"]`). */
export function jsonPath(path: JsonPath): string {
  let out = '';
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (typeof k === 'string' && /^[A-Za-z_$][\w$]*$/.test(k)) out += out ? `.${k}` : k;
    else out += `[${JSON.stringify(String(k))}]`;
  }
  return out || '(root)';
}

/** A short rendering of a found value for messages. */
function shown(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** A schema error in `file`: `malformed <what>: <path>: <message>`. */
export function malformed(file: string, what: string, path: JsonPath, message: string): FhecError {
  return new FhecError(`malformed ${what}: ${jsonPath(path)}: ${message}`, { file });
}

type Issue = z.core.$ZodRawIssue;

/** Messages for the issues the builders below do not word themselves. */
function issueMessage(iss: Issue): string | undefined {
  const got = `got ${shown(iss.input)}`;
  switch (iss.code) {
    case 'invalid_type':
      return iss.input === undefined ? `missing (expected ${iss.expected})` : `expected ${iss.expected}, ${got}`;
    case 'invalid_value': {
      const expected = iss.values.map((v) => JSON.stringify(v)).join(' or ');
      return iss.input === undefined ? `missing (expected ${expected})` : `expected ${expected}, ${got}`;
    }
    case 'too_small':
      return iss.origin === 'array' ? `expected at least ${iss.minimum} item(s), got ${(iss.input as unknown[]).length}` : undefined;
    case 'too_big':
      return iss.origin === 'array' ? `expected at most ${iss.maximum} item(s), got ${(iss.input as unknown[]).length}` : undefined;
    default:
      return undefined;
  }
}

/** Parses `value` (found at `at` in the file) or throws the first issue as a FhecError naming file and path. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, file: string, what: string, at: JsonPath = []): z.output<S> {
  const r = schema.safeParse(value, { error: issueMessage });
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  let path = [...at, ...issue.path];
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    // Name the unknown field itself: usually a typo of an optional one, which would be ignored.
    path = [...path, issue.keys[0]!];
    message = issue.keys.length > 1 ? `unknown field (and ${issue.keys.slice(1).map((k) => JSON.stringify(k)).join(', ')})` : 'unknown field';
  }
  throw malformed(file, what, path, message);
}

/** A word for a check's failure, with the value found ("missing" when there is none). */
function expecting(what: string) {
  return (iss: { input?: unknown }) => (iss.input === undefined ? `missing (expected ${what})` : `expected ${what}, got ${shown(iss.input)}`);
}

export const int = () => z.number({ error: expecting('an integer') }).int({ error: expecting('an integer') });
export const nonNegInt = () => z.number({ error: expecting('a non-negative integer') }).int({ error: expecting('a non-negative integer') }).nonnegative({ error: expecting('a non-negative integer') });
export const posInt = () => z.number({ error: expecting('a positive integer') }).int({ error: expecting('a positive integer') }).positive({ error: expecting('a positive integer') });
const finite = () => z.number({ error: expecting('a finite number') });
export const posNumber = () => z.number({ error: expecting('a positive number') }).positive({ error: expecting('a positive number') });
export const nonNegNumber = () => z.number({ error: expecting('a non-negative number') }).nonnegative({ error: expecting('a non-negative number') });
export const name = () => z.string({ error: expecting('a name') }).min(1, { error: expecting('a non-empty name') });
/** A file beside the plan: a plain file name, so an edited plan cannot point elsewhere. */
export const fileName = () =>
  z.string({ error: expecting('a file name') }).regex(/^(?!\.\.?$)[^/\\]+$/, { error: expecting('a plain file name beside the plan (no directories)') });
export const sha256 = () => z.string({ error: expecting('a sha256') }).regex(/^[0-9a-f]{64}$/, { error: expecting('a sha256 (64 lowercase hex digits)') });
export const ringDegree = () =>
  posInt().refine((n) => n >= 2 && (n & (n - 1)) === 0, { error: expecting('a power of two') });
export const interval = () =>
  z.tuple([finite(), finite()], { error: expecting('[lo, hi]') }).refine(([lo, hi]) => lo <= hi, { error: expecting('[lo, hi] with lo <= hi') });

/** A slot layout's fields (that it fits the slots is checked where the slot count is known: layoutFits). */
export const slotLayoutSchema = z.strictObject({
  length: posInt(),
  tokens: posInt(),
  stride: posInt(),
  period: posInt(),
  copies: posInt(),
});

/** Layout and the IR type cannot drift apart: the schema's output is a SlotLayout and back. */
const _layoutTypes: [z.infer<typeof slotLayoutSchema>, SlotLayout] = [{} as SlotLayout, {} as z.infer<typeof slotLayoutSchema>];
void _layoutTypes;

/** Throws unless the layout fits `slots` (the IR's own rule), naming the layout's place in the file. */
export function layoutFits(layout: SlotLayout, slots: number, file: string, what: string, at: JsonPath): void {
  try {
    checkLayout(layout, slots);
  } catch (e) {
    if (!(e instanceof FhecError)) throw e;
    const { length, tokens, stride, period, copies } = layout;
    throw malformed(
      file,
      what,
      at,
      `layout {length ${length}, tokens ${tokens}, stride ${stride}, period ${period}, copies ${copies}} does not fit ${slots} slots ` +
        '(needs length <= period, period * copies <= stride, stride * tokens <= slots)',
    );
  }
}
