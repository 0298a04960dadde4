// Which (domain, op) pairs the reference interpreter implements, and their kernels.
// Domain '' is ai.onnx; 'com.microsoft' holds the ORT contrib ops used by ORT-exported LLMs.

import type { Kernel } from './kernel.js';
import { attentionKernels, msAttentionKernels } from './ops/attention.js';
import { canonicalKernels } from './ops/canonical.js';
import { elementwiseKernels } from './ops/elementwise.js';
import { matmulKernels } from './ops/matmul.js';
import { movementKernels } from './ops/movement.js';
import { msNormalizationKernels, normalizationKernels } from './ops/normalization.js';
import { reduceKernels } from './ops/reduce.js';
import { msRotaryKernels, rotaryKernels } from './ops/rotary.js';
import { shapeKernels } from './ops/shape.js';
import { softmaxKernels } from './ops/softmax.js';

const ONNX = '';
const MS = 'com.microsoft';

const KERNELS: Record<string, Record<string, Kernel>> = {
  [ONNX]: {
    ...elementwiseKernels,
    ...reduceKernels,
    ...matmulKernels,
    ...shapeKernels,
    ...movementKernels,
    ...softmaxKernels,
    ...normalizationKernels,
    ...rotaryKernels,
    ...attentionKernels,
  },
  [MS]: { ...msNormalizationKernels, ...msRotaryKernels, ...msAttentionKernels },
  fhec: canonicalKernels,
};

function normDomain(domain: string): string {
  return domain === 'ai.onnx' ? ONNX : domain;
}

export function kernelFor(domain: string, op: string): Kernel | undefined {
  const table = KERNELS[normDomain(domain)];
  return table && Object.hasOwn(table, op) ? table[op] : undefined;
}

export function isOpSupported(domain: string, op: string): boolean {
  return kernelFor(domain, op) !== undefined;
}

export function supportedOps(): { domain: string; op: string }[] {
  return Object.entries(KERNELS).flatMap(([domain, table]) =>
    Object.keys(table)
      .sort()
      .map((op) => ({ domain, op })),
  );
}
