export { Engine } from './engine';
export type { AdmissionPolicy, EngineHost, Gate, Settle } from './engine';
export { criticalCount } from './thresholds';
