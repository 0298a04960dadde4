// `fhec/client`: encrypted generation against `fhec serve`, for Node 22+ and browsers.
export { generateRemote, fetchClientModel, fetchClientSchedule, formatRemoteSummary, type RemoteGenerateOptions, type RemoteGenerationResult } from './remote-generation.js';
export { SessionConnection, ConnectionLost, type Traffic } from './connection.js';
export type { PlanInfo } from '../protocol.js';
export { readClientSchedule, type ClientSchedule, type LoadedSchedule } from '../../runtime/generate/client-schedule.js';
export { sealBackend } from '../../runtime/seal/backend.js';
export { simBackend } from '../../runtime/sim/backend.js';
