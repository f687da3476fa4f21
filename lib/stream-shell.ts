import { Writable } from 'node:stream';
import type { Engine } from './engine';
import type { WriteCallback } from './types';

/**
 * What the two stream shapes (the Writable and the Transform) share: how
 * `write()`/`end()` reach the engine, and the buffer getters Node's own
 * machinery would otherwise answer from its unused buffer.
 */

/** Key of the engine behind a sluice stream; internal (not exported from the package). */
export const kEngine = Symbol('sluice.engine');

/** A stream with a sluice engine behind it. */
export type SluiceStream<T> = Writable & { readonly [kEngine]: Engine<T> };

// The Duplex has these same functions: Node copies Writable's methods onto Duplex.prototype.
// They are only ever called with .call(stream), so unbound is what is wanted here.
/* eslint-disable @typescript-eslint/unbound-method */
const nodeWrite = Writable.prototype.write as (
  this: Writable,
  chunk: unknown,
  callback?: (error?: Error | null) => void,
) => boolean;
const nodeEnd = Writable.prototype.end as (this: Writable, callback?: () => void) => Writable;
/* eslint-enable @typescript-eslint/unbound-method */

/** write(): the item goes straight to the engine; Node's buffer stays empty. */
export function writeToEngine<T>(
  stream: SluiceStream<T>,
  chunk: T,
  encoding: BufferEncoding | WriteCallback | undefined,
  callback: WriteCallback | undefined,
): boolean {
  const cb = typeof encoding === 'function' ? encoding : callback;
  // Null, after end() and after destroy(): Node's own coded errors and return value.
  if (chunk === null || stream.writableEnded || stream.destroyed) {
    return nodeWrite.call(stream, chunk, cb as (error?: Error | null) => void);
  }
  return stream[kEngine].offer(chunk, cb);
}

/** end(): Node's end(chunk) bypasses write(); route the last chunk through the strategy like any other. */
export function endThroughEngine<T>(
  stream: SluiceStream<T>,
  chunk: unknown,
  encoding: unknown,
  callback: unknown,
): void {
  if (typeof chunk === 'function') {
    nodeEnd.call(stream, chunk as () => void);
    return;
  }
  const cb = (typeof encoding === 'function' ? encoding : callback) as (() => void) | undefined;
  if (chunk !== undefined && chunk !== null && !stream.writableEnded) stream.write(chunk);
  nodeEnd.call(stream, cb);
}

/** Node keeps these in its own (unused here) buffer state; report sluice's instead. */
export function reportEngineBuffer(prototype: SluiceStream<unknown>): void {
  Object.defineProperties(prototype, {
    writableLength: {
      get(this: SluiceStream<unknown>): number {
        return this[kEngine].length;
      },
    },
    writableNeedDrain: {
      get(this: SluiceStream<unknown>): boolean {
        return !this.destroyed && !this.writableEnded && this[kEngine].needDrain;
      },
    },
  });
}
