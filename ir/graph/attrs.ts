// Typed attribute access with defaults; a wrong or missing attribute names the node.

import { FhecError, nodeLabel } from '../errors.js';
import type { AttrValue, LazyTensor, Node } from './types.js';

function get(node: Node, name: string, kind: AttrValue['kind']): AttrValue | undefined {
  const a = node.attrs[name];
  if (a === undefined) return undefined;
  if (a.kind !== kind) {
    throw new FhecError(`attribute '${name}' must be ${kind}, got ${a.kind}`, { node: nodeLabel(node) });
  }
  return a;
}

function missing(node: Node, name: string): never {
  throw new FhecError(`required attribute '${name}' is missing`, { node: nodeLabel(node) });
}

export function attrInt(node: Node, name: string, dflt?: number): number {
  const a = get(node, name, 'int');
  if (a) return a.value as number;
  if (dflt === undefined) missing(node, name);
  return dflt;
}

export function attrFloat(node: Node, name: string, dflt?: number): number {
  const a = node.attrs[name];
  if (a?.kind === 'int') return a.value; // tolerate ints where floats are expected
  const f = get(node, name, 'float');
  if (f) return f.value as number;
  if (dflt === undefined) missing(node, name);
  return dflt;
}

export function attrString(node: Node, name: string, dflt?: string): string {
  const a = get(node, name, 'string');
  if (a) return a.value as string;
  if (dflt === undefined) missing(node, name);
  return dflt;
}

export function attrInts(node: Node, name: string, dflt?: number[]): number[] {
  const a = get(node, name, 'ints');
  if (a) return a.value as number[];
  if (dflt === undefined) missing(node, name);
  return dflt;
}

export function attrFloats(node: Node, name: string, dflt?: number[]): number[] {
  const a = get(node, name, 'floats');
  if (a) return a.value as number[];
  if (dflt === undefined) missing(node, name);
  return dflt;
}

export function attrTensor(node: Node, name: string): LazyTensor | undefined {
  const a = get(node, name, 'tensor');
  return a ? (a.value as LazyTensor) : undefined;
}

export function hasAttr(node: Node, name: string): boolean {
  return node.attrs[name] !== undefined;
}
