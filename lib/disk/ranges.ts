/**
 * A set of record ids kept as sorted, disjoint, non-adjacent inclusive ranges. Acknowledgements
 * arrive mostly in order, so the set stays a handful of ranges however many ids it holds.
 */
export class IdRanges {
  /** Range i is [starts[i], ends[i]]; starts ascending; ends[i] + 1 < starts[i + 1]. */
  readonly #starts: number[] = [];
  readonly #ends: number[] = [];

  /** How many ranges (not ids). */
  get rangeCount(): number {
    return this.#starts.length;
  }

  /** The largest id held, or 0. */
  get max(): number {
    return this.#ends[this.#ends.length - 1] ?? 0;
  }

  has(id: number): boolean {
    const i = this.#rangeAtOrBefore(id);
    return i >= 0 && id <= (this.#ends[i] as number);
  }

  /** Whether every id of [from, to] is held. */
  covers(from: number, to: number): boolean {
    const i = this.#rangeAtOrBefore(from);
    return i >= 0 && to <= (this.#ends[i] as number);
  }

  /** Adds one id; `true` when it was not held yet. */
  add(id: number): boolean {
    if (this.has(id)) return false;
    this.addRange(id, id);
    return true;
  }

  /** Adds every id of [from, to], merging with the ranges it touches. */
  addRange(from: number, to: number): void {
    if (to < from) return;
    let first = this.#rangeAtOrBefore(from);
    if (first < 0 || (this.#ends[first] as number) + 1 < from) first++;
    let last = this.#rangeAtOrBefore(to + 1);
    const start = Math.min(from, this.#starts[first] ?? from);
    const end = last >= first ? Math.max(to, this.#ends[last] as number) : to;
    if (last < first) last = first - 1;
    this.#starts.splice(first, last - first + 1, start);
    this.#ends.splice(first, last - first + 1, end);
  }

  /** Forgets every id below `floor` (records already deleted). */
  pruneBelow(floor: number): void {
    let drop = 0;
    while (drop < this.#ends.length && (this.#ends[drop] as number) < floor) drop++;
    this.#starts.splice(0, drop);
    this.#ends.splice(0, drop);
    if (this.#starts.length > 0 && (this.#starts[0] as number) < floor) this.#starts[0] = floor;
  }

  /** The ranges as [start, end] pairs, ascending. */
  toPairs(): Array<[number, number]> {
    return this.#starts.map((start, i) => [start, this.#ends[i] as number]);
  }

  /** Index of the last range starting at or before `id`, or -1. */
  #rangeAtOrBefore(id: number): number {
    let low = 0;
    let high = this.#starts.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if ((this.#starts[middle] as number) <= id) low = middle + 1;
      else high = middle - 1;
    }
    return high;
  }
}
