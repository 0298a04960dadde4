// Section `sim-accuracy-s64` (README "Conformance and accuracy", row "model A compiled with --calibration
// calibration.txt and run on sim": prefill S=64 at N=32768 over 512 positions of each text). Long.
import { it } from 'vitest';
import { modelASimAccuracy } from './model-a-sim.js';

it('sim-accuracy-s64: model A prefill 64 at N=32768 on sim, 512 positions of each text', () => modelASimAccuracy('sim-accuracy-s64', 64, 32768, 8));
