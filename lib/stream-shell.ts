import { Writable } from 'node:stream';
import type { Engine, EngineHost } from './engine';
import type { WriteCallback } from './types';

/**
 * What the two stream shapes (the Writable and the Transform) share: how
 * `write()`/`end()`/`_final`/`_destroy` reach the engine, and the parts of
 * Node's own Writable state that sluice's buffer must answer for.
 */

/** Key of the engine behind a sluice stream; internal (not exported from the package). */
export const kEngine = Symbol('sluice.engine');

/** A stream with a sluice engine behind it. */
export type SluiceStream<T> = Writable & { readonly [kEngine]: Engine<T> };

/** The fields of Node's internal WritableState that sluice keeps in step, or reads. */
interface NodeWritableState {
  needDrain: boolean;
  length: number;
  finished: boolean;
  /** end() was called (what `writableEnded` reports). */
  readonly ending: boolean;
  readonly destroyed: boolean;
}

function nodeState(stream: Writable): NodeWritableState {
  return (stream as unknown as { _writableState: NodeWritableState })._writableState;
}

// The Duplex has these same functions: Node copies Writable's methods onto Duplex.prototype.
// They are only ever called with .call(stream), so unbound is what is wanted here.
/* eslint-disable @typescript-eslint/unbound-method */
const nodeWrite = Writable.prototype.write as (
  this: Writable,
  chunk: unknown,
  callback?: (error?: Error | null) => void,
) => boolean;
const nodeEnd = Writable.prototype.end as (this: Writable, ...args: unknown[]) => Writable;
/* eslint-enable @typescript-eslint/unbound-method */

/** The engine's view of its stream. */
export function engineHost(stream: Writable): EngineHost {
  return {
    emit: stream.emit.bind(stream),
    listenerCount: stream.listenerCount.bind(stream),
    destroy: (error) => stream.destroy(error),
    // pipe()'s cleanup reads Node's own needDrain to decide whether to resume the source on unpipe().
    setNeedDrain: (needDrain) => {
      nodeState(stream).needDrain = needDrain;
    },
  };
}

/** write(): the item goes straight to the engine; Node's buffer stays empty. */
export function writeToEngine<T>(
  stream: SluiceStream<T>,
  chunk: T,
  encoding: BufferEncoding | WriteCallback | undefined,
  callback: WriteCallback | undefined,
): boolean {
  const cb = typeof encoding === 'function' ? encoding : callback;
  // Null, after end() and after destroy(): Node's own coded errors and return value. Read from
  // Node's state object, whose class is always the same: the `writableEnded` and `destroyed`
  // getters of Writable.prototype see every Writable class in the process and were not inlined
  // (about 8 ns of a write's 40 when measured alone). In a pipeline it measured neutral: Node's
  // bit-flag getter deoptimizes the compiled write() once per run when it meets a second map.
  const state = nodeState(stream);
  if (chunk === null || state.ending || state.destroyed) {
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
  // After end() (or destroy), Node's own end() gives a chunk ERR_STREAM_WRITE_AFTER_END and 'error'.
  if (typeof chunk === 'function' || stream.writableEnded || stream.destroyed) {
    nodeEnd.call(stream, chunk, encoding, callback);
    return;
  }
  const cb = typeof encoding === 'function' ? encoding : callback;
  if (chunk !== undefined && chunk !== null) stream.write(chunk);
  nodeEnd.call(stream, cb);
  // finished()/pipeline() take an ended Writable whose (Node) buffer is empty for finished, and would
  // then call a destroy() before 'finish' a success. Node's buffer stays unused; mark it non-empty
  // until the engine has delivered everything (finalThroughEngine clears it).
  if (stream[kEngine].busy && !stream.destroyed) nodeState(stream).length = 1;
}

/**
 * _final: the engine flushes everything, then Node may emit 'finish'. The engine calls back only
 * if nothing was lost: never once destroyed (a destroy() gives its idle callbacks an error).
 */
export function finalThroughEngine<T>(stream: SluiceStream<T>, done: (error?: Error | null) => void): void {
  const engine = stream[kEngine];
  engine.end(() => {
    nodeState(stream).length = 0;
    // disk: 'finish' once every delivery is recorded and the log is closed (its lock released).
    const closing = engine.closeDisk();
    if (closing === undefined) done();
    else closing.then(() => done(), done);
  });
}

/**
 * _destroy: the engine takes what it held. Node's own buffer length is set to what
 * was lost: finished() and pipeline() treat an ended Writable whose buffer is empty
 * as finished, and must report a premature close instead.
 */
export function destroyThroughEngine<T>(
  stream: SluiceStream<T>,
  error: Error | null,
  callback: (error?: Error | null) => void,
): void {
  const engine = stream[kEngine];
  const result = engine.destroy(error) ?? null;
  nodeState(stream).length = engine.lost.length;
  // disk: 'close' once the log is closed, so that a new sluice may open it right after.
  const closing = engine.closeDisk();
  if (closing === undefined) callback(result);
  else
    closing.then(
      () => callback(result),
      (closeError: unknown) => callback(result ?? (closeError as Error)),
    );
}

/**
 * Node keeps these in its own (unused here) buffer state; report sluice's instead.
 * Also: no 'finish' once destroyed. Node's `_final` path schedules 'finish' a tick
 * after the final callback without checking again (a plain Writable does check), so
 * `end()` and `destroy()` in the same tick would otherwise give 'finish' after 'close'.
 */
export function reportEngineBuffer(prototype: SluiceStream<unknown>): void {
  /* eslint-disable @typescript-eslint/unbound-method */
  const emit = prototype.emit;
  const cork = prototype.cork;
  const uncork = prototype.uncork;
  /* eslint-enable @typescript-eslint/unbound-method */
  Object.defineProperties(prototype, {
    // cork(): partial batches wait for the last uncork(), which sends them at once; full batches still
    // go, so the memory bound holds. Admission, the bound and the states apply as ever. end() uncorks.
    cork: {
      value: function (this: SluiceStream<unknown>): void {
        cork.call(this);
        this[kEngine].setCorked(true);
      },
      writable: true,
      configurable: true,
    },
    uncork: {
      value: function (this: SluiceStream<unknown>): void {
        uncork.call(this);
        if (this.writableCorked === 0) this[kEngine].setCorked(false);
      },
      writable: true,
      configurable: true,
    },
    emit: {
      value: function (this: SluiceStream<unknown>, event: string | symbol, ...args: unknown[]): boolean {
        if (event === 'finish' && this.destroyed) {
          nodeState(this).finished = false; // Node set it just before; a destroyed stream did not finish
          return false;
        }
        return emit.call(this, event, ...args);
      },
      writable: true,
      configurable: true,
    },
    writableLength: {
      get(this: SluiceStream<unknown>): number {
        return this[kEngine].length;
      },
    },
    // Node's is `!destroyed && !ending && needDrain`; the engine's needDrain is already false once
    // ending (end() runs _final, which tells the engine, in the same call).
    writableNeedDrain: {
      get(this: SluiceStream<unknown>): boolean {
        return !this.destroyed && this[kEngine].needDrain;
      },
    },
  });
}
