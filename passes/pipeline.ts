// Pipeline descriptions: `pass-a,pass-b{opt=1,other=x},pass-c`. Bindings-type options are
// given as `name=value` pairs inside the braces (e.g. specialize{sequence_length=16}).

import { FhecError } from '../ir/errors.js';

export interface PipelineStep {
  pass: string;
  options: Record<string, string>;
}

export function parsePipeline(text: string): PipelineStep[] {
  const steps: PipelineStep[] = [];
  let i = 0;
  const s = text.trim();
  while (i < s.length) {
    const m = /^[A-Za-z0-9_-]+/.exec(s.slice(i));
    if (!m) throw new FhecError(`malformed pipeline at column ${i + 1}: '${s.slice(i, i + 20)}'`);
    const pass = m[0];
    i += pass.length;
    const options: Record<string, string> = {};
    if (s[i] === '{') {
      const close = s.indexOf('}', i);
      if (close < 0) throw new FhecError(`malformed pipeline: '{' after '${pass}' is not closed`);
      for (const kv of s.slice(i + 1, close).split(',').map((x) => x.trim()).filter(Boolean)) {
        const eq = kv.indexOf('=');
        if (eq < 0) options[kv] = '';
        else options[kv.slice(0, eq).trim()] = kv.slice(eq + 1).trim();
      }
      i = close + 1;
    }
    steps.push({ pass, options });
    while (s[i] === ' ') i++;
    if (i < s.length) {
      if (s[i] !== ',') throw new FhecError(`malformed pipeline at column ${i + 1}: expected ','`);
      i++;
      while (s[i] === ' ') i++;
    }
  }
  return steps;
}
