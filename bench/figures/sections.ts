// The sections of `npm run figures`: one per README table (or group of rows of one table), each a
// vitest file figures/<file>.figures.ts that runs the commands or library calls behind the table and
// writes figures/<name>.json. `minutes` is what the section took on the development machine (2 cores
// shared with other jobs, load average 20-38 for the quick ones; the long ones are estimates from the
// README's own runs); `quick` sections are simulator and compile-only work (`--quick` runs just those).

export interface Section {
  name: string;
  /** The README table (and rows) it reproduces. */
  table: string;
  /** figures/<file>.figures.ts */
  file: string;
  minutes: number;
  quick: boolean;
}

export const SECTIONS: Section[] = [
  { name: 'conformance', table: 'Conformance and accuracy: ONNX backend node tests', file: 'conformance', minutes: 0.5, quick: true },
  { name: 'reference-ort', table: 'Conformance and accuracy: fhec eval vs onnxruntime (model A files, genai fp16 model)', file: 'reference-ort', minutes: 0.5, quick: true },
  { name: 'sim-genai', table: 'Conformance and accuracy: the genai fp16 model on sim', file: 'sim-genai', minutes: 1, quick: true },
  { name: 'sim-accuracy-s8', table: 'Conformance and accuracy: model A prefill S=8 on sim; refresh placement (prefill of 8)', file: 'sim-accuracy-s8', minutes: 8, quick: true },
  { name: 'refresh-placement', table: 'Conformance and accuracy: refresh placement (decode P = 8, 20)', file: 'refresh-placement', minutes: 7, quick: true },
  { name: 'prefill16-n32768', table: 'Conformance and accuracy: model A prefill 16 at N=32768 --report; refresh placement (N=32768)', file: 'prefill16-n32768', minutes: 8, quick: true },
  { name: 'softmax', table: 'Encrypted transformer kernels: softmax methods on model A layer 1', file: 'softmax', minutes: 1, quick: true },
  { name: 'cost-only-1b', table: 'Tokenizers and real Llama 3 shapes: cost-only Llama-3.2-1B row', file: 'cost-only-1b', minutes: 2, quick: true },
  { name: 'inspect-8b', table: 'Benchmarks: fhec inspect on a Llama-3-8B-shaped model', file: 'bench-inspect-8b', minutes: 0.5, quick: true },
  { name: 'refresh-rounds', table: 'Benchmarks: refresh rounds and the link (model A decode after 8)', file: 'refresh-rounds', minutes: 3.5, quick: true },
  { name: 'ckks-ops', table: 'Benchmarks: CKKS ops on node-seal (timings)', file: 'bench-ckks-ops', minutes: 2, quick: false },
  { name: 'generate-bench', table: 'Benchmarks: encrypted generation vs plaintext (SEAL, prefill of 8, 3 decode steps)', file: 'bench-generate', minutes: 4, quick: false },
  { name: 'sim-accuracy-s64', table: 'Conformance and accuracy: model A prefill S=64 at N=32768 on sim, 512 positions of each text', file: 'sim-accuracy-s64', minutes: 10, quick: false },
  { name: 'zoo', table: 'Model zoo: sim agreement and logit errors per model (512 positions each)', file: 'zoo', minutes: 150, quick: false },
  { name: 'zoo-seal', table: 'Model zoo: encrypted generation of 8 bytes on SEAL (Z1 MHA tied, Z2 GQA 3)', file: 'zoo-seal', minutes: 40, quick: false },
  { name: 'seal-accuracy', table: 'Conformance and accuracy: model A prefill 64 on SEAL, 256 positions', file: 'seal-accuracy', minutes: 30, quick: false },
];

export const sectionNamed = (name: string): Section | undefined => SECTIONS.find((s) => s.name === name);
