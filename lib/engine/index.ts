export { Engine } from './engine';
export type { EngineHost } from './engine';
export type { AdmissionPolicy, Gate, Settle } from './admission';
export { belowCritical, criticalCount, fillingBatchSize } from './thresholds';
