// Section `sim-accuracy-s8` (README "Conformance and accuracy", row "model A, prefill S=8 (N=16384, 61
// refreshes), on sim"; its compile also gives the refresh-placement row's prefill-of-8 counts).
import { it } from 'vitest';
import { modelASimAccuracy } from './model-a-sim.js';

it('sim-accuracy-s8: model A prefill 8 at N=16384 on sim, 64 positions of each text', () => modelASimAccuracy('sim-accuracy-s8', 8, 16384, 8));
