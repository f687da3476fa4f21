import { BackpressureError } from '../errors';
import type { FlushResult } from '../types';

/**
 * Reads what a flush function returned for its batch. Pure: counts nothing.
 *
 * Only an object with numeric `success` and `failed` is a FlushResult. Any other
 * value (`undefined`, `true`, `"OK"`, `[]`, a driver's own result object such as
 * better-sqlite3's `RunResult`) means "all delivered": a sink's ordinary return
 * value must never get stored rows dead-lettered.
 */

export type Outcome<T> =
  | { readonly kind: 'delivered' }
  /** `failed` holds the indices (into the batch, ascending) of the items to retry. */
  | {
      readonly kind: 'failed';
      readonly failed: number[] | undefined;
      readonly cause: unknown;
      readonly timedOut: boolean;
    }
  | { readonly kind: 'invalid'; readonly error: BackpressureError<T> };

export const DELIVERED: Outcome<never> = Object.freeze({ kind: 'delivered' });

/** Only an object with numeric `success` and `failed` is a FlushResult; its other fields are judged apart. */
export function isFlushResult(value: unknown): value is FlushResult<unknown> {
  if (value === null || typeof value !== 'object') return false;
  const { success, failed } = value as { success?: unknown; failed?: unknown };
  return typeof success === 'number' && typeof failed === 'number';
}

/**
 * Judges `result` against the call's items, `source[from, from + count)` (a range, so that a sink
 * handed a range of the batch costs no copy); a `failed` outcome with `failed: undefined` means the
 * whole batch, and its indices count from `from`'s item.
 */
export function judge<T>(source: readonly T[], from: number, count: number, result: unknown): Outcome<T> {
  if (!isFlushResult(result)) return DELIVERED;
  const { success, failed } = result;
  const { failedItems, errors } = result as { failedItems?: unknown; errors?: unknown };
  const invalid = (problem: string): Outcome<T> => ({
    kind: 'invalid',
    error: BackpressureError.invalidResult(source.slice(from, from + count), problem, result),
  });
  if (!isCount(success) || !isCount(failed)) return invalid('"success" and "failed" must be integers >= 0');
  if (success + failed !== count) {
    return invalid(`"success" (${success}) + "failed" (${failed}) must equal the batch length (${count})`);
  }
  if (failed === 0) return DELIVERED;
  const cause = sinkErrors(errors, failed);
  if (failedItems === undefined) return { kind: 'failed', failed: undefined, cause, timedOut: false };
  if (!Array.isArray(failedItems) || failedItems.length !== failed) {
    return invalid(`"failedItems" must be an array of the ${failed} failed items`);
  }
  const picked = indicesInBatch(source, from, count, failedItems as T[]);
  if (picked === undefined) return invalid('"failedItems" must hold items of the batch');
  return { kind: 'failed', failed: picked, cause, timedOut: false };
}

function isCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/**
 * Indices (from `from`'s item) of `failedItems` in `source[from, from + count)`, in batch order (a
 * multiset match, so repeated primitives count right); undefined if one is foreign.
 */
function indicesInBatch<T>(
  source: readonly T[],
  from: number,
  count: number,
  failedItems: readonly T[],
): number[] | undefined {
  const wanted = new Map<T, number>();
  for (const item of failedItems) wanted.set(item, (wanted.get(item) ?? 0) + 1);
  const picked: number[] = [];
  for (let i = 0; i < count; i++) {
    const item = source[from + i] as T;
    const n = wanted.get(item);
    if (n === undefined || n === 0) continue;
    wanted.set(item, n - 1);
    picked.push(i);
  }
  return picked.length === failedItems.length ? picked : undefined;
}

function sinkErrors(errors: unknown, failed: number): unknown {
  if (Array.isArray(errors) && errors.length === 1) return errors[0];
  if (Array.isArray(errors) && errors.length > 1)
    return new AggregateError(errors, `the sink reported ${errors.length} errors`);
  return new Error(`the sink reported ${failed} failed item(s)`);
}
