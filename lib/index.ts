export { BackpressureState, BackpressureStrategy } from './types';
export type {
  BackpressureConfig,
  BackpressureOptions,
  BackpressureMetrics,
  BatchSizeRange,
  ConcurrencyRange,
  DeadLetterHandler,
  DeadLetterReason,
  DiskOptions,
  DropReason,
  FlushContext,
  FlushFunction,
  FlushResult,
  RetryOptions,
  ShutdownOptions,
  ShutdownResult,
  WriteCallback,
} from './types';
export type { BackpressureWritableOptions, WritevCallback, WritevChunk, WritevChunks, WritevFunction } from './sink';
export type { BackpressureEvents, BackpressureTransformEvents } from './events';
export { DEFAULT_CONFIG } from './config';
export { BackpressureError } from './errors';
export { DiskError } from './disk/errors';
export type { DiskErrorCode } from './disk/errors';
export type { ArgumentErrorCode, BackpressureErrorCode } from './errors';
export { BoundedBuffer } from './bounded-buffer';
export { BackpressureWritable } from './backpressure-writable';
export { BlockingWritable } from './strategies/blocking';
export { DropOldestWritable } from './strategies/drop-oldest';
export { DropNewestWritable } from './strategies/drop-newest';
export { SamplingWritable } from './strategies/sampling';
export { createBackpressureStream } from './create';
export { BackpressureTransform } from './transform';
export { BackpressureController } from './controller';
