// Range calibration: which values matter, streaming statistics, the pass, and its report.
export { Calibrator, calibrate, calibratePass, DEFAULT_MARGIN } from './calibrate.js';
export type { CalibrateOptions, CalibratedValue, CalibratePassOptions } from './calibrate.js';
export { RangeAccumulator } from './accumulator.js';
export { LogSketch, DEFAULT_ACCURACY, ZERO_CUTOFF } from './sketch.js';
export { nonlinearInputs, secretValues, defaultPlaintextInputs } from './roles.js';
export { probeFor } from './probes.js';
export type { Probe, InnerSink } from './probes.js';
export { calibrationRows, formatCalibrationTable } from './report.js';
export type { CalibrationRow } from './report.js';
