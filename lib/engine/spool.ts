import { createCodec } from '../disk/codec';
import { DiskError } from '../disk/errors';
import { nodeFs } from '../disk/fs';
import { checkDirectorySync } from '../disk/lock';
import { DiskLog } from '../disk/log';
import { HEADER_BYTES } from '../disk/record';
import type { DiskCodec } from '../disk/codec';
import type { AppendedGroup } from '../disk/log';
import type { ResolvedSluiceDisk } from '../disk/options';
import type { Settle } from './admission';
import type { Ledger } from './ledger';
import type { Queue } from './queue';

/**
 * The disk spool, with the `disk` option: every accepted item is appended to a write-ahead log
 * (lib/disk) before its write callback runs, and acknowledged in the log once it is delivered.
 *
 *   accept → staged → one append group at a time → written: queued, if the queue has room and
 *                                                  nothing older waits in the log
 *                                                → else: disk-only, read back later, in order
 *
 * Memory holds at most `maxBufferSize` items queued or in flight (written items are kept up to
 * that, and reading back fills it to that) and at most `maxBufferSize` accepted items not written
 * yet (the staging bound, `congested`). Block asks the producer to wait already at two batches
 * (`pressing`), so a producer that honours `write()` runs ahead of the disk in short bursts.
 *
 * Where a written item goes is decided when its append resolves, so an item stays in memory
 * whenever there is room for it then; only what arrives while memory is full (or behind items
 * already on disk only) is let go and read back. Once some are, every later one is too until the
 * reader has caught up. (Keeping up to twice `maxBufferSize` cost a 5 GB burst into a stalled sink
 * 40 MiB more peak RSS and gained nothing measurable on the benchmarks' workloads:
 * docs/benchmarks.md.) The log's reader is told to pass over the records memory kept (`skipBelow`,
 * at the first record of each disk-only run), so nothing is read back twice.
 *
 * One group is appended at a time, so a failed group (a full disk) leaves no later item written
 * before it: order holds when it is retried. Records found in the log at open (a previous run's
 * undelivered items) are read back before anything new.
 */

/** An accepted item on its way into the log. */
export interface Staged<T> {
  readonly item: T;
  /** Its record's bytes (payload + header): what it counts for in the byte bound. */
  readonly size: number;
  readonly payload: Uint8Array;
  readonly settle: Settle | undefined;
}

export interface SpoolHost<T> {
  /** Items entered the queue. */
  queued(): void;
  /** The log is open; it held `replayed` undelivered records (`bytes` in all), read first. */
  opened(replayed: number, bytes: number, corrupt: number): void;
  /** Appending these accepted items failed (oldest first); the disk is full when `error.code` says so. */
  appendFailed(entries: Staged<T>[], error: DiskError): void;
  /** The log cannot go on (it did not open, a record cannot be read back): the stream fails. */
  fail(error: Error): void;
  /** Appends succeed again after a full disk, or the disk caught up with the producer: writes may come in. */
  spaceAgain(): void;
}

/** The longest wait between two tries to append to a full disk. */
const MAX_RETRY_MS = 1000;

const now = (): number => performance.now();

export class Spool<T> {
  readonly path: string;
  readonly #codec: DiskCodec<T>;
  readonly #queue: Queue<T>;
  readonly #ledger: Ledger;
  readonly #host: SpoolHost<T>;
  /**
   * `maxBufferSize`: the most items memory holds queued or in flight (a written item stays in memory
   * while there is room, and reading back fills it), and the most accepted items not written yet.
   */
  readonly #maxItems: number;
  /**
   * Accepted items not written yet at which block asks the producer to wait (`write()` returns
   * false): two batches. Small on purpose: it is how far an honouring producer runs ahead of the disk
   * in one synchronous go, and a long run of encoding starves the sink's own timers (measured: 10,000
   * gave a slow sink 0.78× of the in-memory sluice, 200 gave 0.93×; docs/benchmarks.md).
   */
  readonly #pauseLimit: number;
  readonly #opening: Promise<DiskLog | undefined>;
  #log: DiskLog | undefined;
  /** Accepted, waiting for the group being appended. */
  #staged: Staged<T>[] = [];
  /** The group being appended, if one is. */
  #appending: Staged<T>[] | undefined;
  /** Accepted items not in the log yet (staged or appending). */
  #unwritten = 0;
  /** Records in the log that memory let go (or found at open), not read back yet. */
  #diskOnly = 0;
  #reading = false;
  /** A full disk: appends wait for the retry timer. */
  #retryTimer: NodeJS.Timeout | undefined;
  #retryDelayMs = 10;
  /** Appends are failing for lack of space (block waits at the door meanwhile). */
  full = false;
  /** The log is not open yet: what it holds from a previous run is not counted yet, so nothing is idle. */
  opening = true;
  /** close() or destroy() began: nothing more is appended, read or acknowledged. */
  #closed = false;

  /**
   * The staging bound is reached: the producer outruns the disk. Block pauses it (write() returns
   * false, later writes wait); the drop strategies drop the incoming item. Keeps memory bounded when
   * a producer writes faster than the log can append.
   */
  get congested(): boolean {
    return this.#unwritten >= this.#maxItems;
  }

  /** Two batches wait to be written: block's `write()` says wait (a producer that honours it runs in short bursts). */
  get pressing(): boolean {
    return this.#unwritten >= this.#pauseLimit;
  }

  /** Items memory holds: read ahead (queued, in flight) and not yet written. For tests. */
  get inMemory(): number {
    return this.#memoryHeld() + this.#unwritten;
  }

  constructor(
    disk: ResolvedSluiceDisk<T>,
    parts: { queue: Queue<T>; ledger: Ledger; maxItems: number; pauseLimit: number },
    host: SpoolHost<T>,
  ) {
    this.path = disk.log.path;
    this.#codec = createCodec(disk.log.path, { serialize: disk.serialize, deserialize: disk.deserialize });
    this.#queue = parts.queue;
    this.#ledger = parts.ledger;
    this.#maxItems = parts.maxItems;
    this.#pauseLimit = Math.min(parts.maxItems, parts.pauseLimit);
    this.#host = host;
    // A missing directory that cannot be made, a read-only one, a live owner: errors of `new`.
    if (disk.log.fs === nodeFs) checkDirectorySync(disk.log.path);
    this.#opening = DiskLog.open(disk.log).then(
      (log) => this.#opened(log),
      (error: unknown) => {
        this.opening = false;
        if (!this.#closed) this.#host.fail(error as Error);
        return undefined;
      },
    );
  }

  /** The record bytes of an item; throws `ERR_DISK_UNSERIALIZABLE` (nothing is written then). */
  encode(item: T): Uint8Array {
    return this.#codec.encode(item);
  }

  /** What an encoded item counts for in the byte bound. */
  sizeOf(payload: Uint8Array): number {
    return HEADER_BYTES + payload.length;
  }

  /** An item was accepted (counted in the ledger): appends it; its callback runs once it is written. */
  accept(item: T, size: number, payload: Uint8Array, settle: Settle | undefined): void {
    this.#staged.push({ item, size, payload, settle });
    this.#unwritten++;
    this.#appendNext();
  }

  /** Memory has room and items wait on disk: reads the next ones back into the queue, after this turn. */
  refill(): void {
    if (this.#log === undefined || this.#reading || this.#diskOnly === 0 || this.#closed) return;
    if (this.#room() <= 0) return;
    // Not now: a delivery that just freed room is what calls this, and its sink's next call should
    // start before records are decoded (a read back often needs no I/O: the reader has the bytes).
    this.#reading = true;
    setImmediate(this.#readBack);
  }

  readonly #readBack = (): void => {
    const log = this.#log as DiskLog;
    const room = this.#room();
    if (this.#closed || room <= 0 || this.#diskOnly === 0) {
      this.#reading = false;
      return;
    }
    // Only records whose append resolved here: the reader must not run ahead of the counts. And two
    // batches at a time: decoding is synchronous, and 10,000 records decoded in one go kept a slow
    // sink's timers waiting (slow sink, interval: 0.91x of the in-memory sluice; 0.94x this way).
    const count = Math.min(room, this.#diskOnly, this.#pauseLimit);
    log.read(count).then(
      (records) => {
        this.#reading = false;
        if (this.#closed) return;
        if (records.length === 0) {
          // Nothing readable although the counts say so: never spin on it.
          this.#diskOnly = 0;
          return;
        }
        for (const record of records) {
          let item: T;
          try {
            item = this.#codec.decode(record.payload, record.id);
          } catch (error) {
            // ERR_DISK_UNDECODABLE: the stream fails; the record stays in the log (never skipped silently).
            this.#host.fail(error as Error);
            return;
          }
          this.#queue.push(item, this.sizeOf(record.payload), now, record.id);
        }
        this.#diskOnly -= records.length;
        this.#host.queued();
        this.refill();
      },
      (error: unknown) => {
        this.#reading = false;
        if (!this.#closed) this.#host.fail(error as Error);
      },
    );
  };

  /**
   * These records are delivered (or taken by the dead-letter path): never read again, also after a
   * restart. Resolves once that is recorded (never rejects: a failure is a warning, and the records
   * are delivered again after a restart).
   */
  settled(ids: number[]): Promise<void> | undefined {
    const log = this.#log;
    if (log === undefined || this.#closed) return undefined;
    return log.ack(ids).then(
      () => this.#wroteAcks(),
      (error: unknown) => warnAckFailed(error),
    );
  }

  /** Block on a full disk: these failed entries go first when the append is tried again. */
  retryLater(entries: Staged<T>[]): void {
    this.restage(entries);
    this.full = true;
    if (this.#retryTimer !== undefined || this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#appendNext();
    }, this.#retryDelayMs);
    this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, MAX_RETRY_MS);
  }

  /** Failed entries go back to the head of what waits to be written (a failed I/O: destroy() takes them). */
  restage(entries: Staged<T>[]): void {
    this.#staged = entries.concat(this.#staged);
    this.#unwritten += entries.length;
  }

  /** destroy(): accepted items not in the log yet (their callbacks have not run); appending stops. */
  takeUnwritten(): Staged<T>[] {
    const staged = this.#staged;
    this.#staged = [];
    this.#unwritten = 0;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#closed = true;
    return staged;
  }

  /** Waits for the open, the append in progress and the acks, then closes the log and releases its lock. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const log = await this.#opening;
    await log?.close();
  }

  #memoryHeld(): number {
    return this.#queue.size + this.#ledger.inFlight;
  }

  /** Items memory may still take, queued or in flight: written ones kept, or read back. */
  #room(): number {
    return this.#maxItems - this.#memoryHeld();
  }

  #opened(log: DiskLog): DiskLog | undefined {
    this.opening = false;
    // Destroyed while opening: close() (which waits for this open) closes it.
    if (this.#closed) return log;
    this.#log = log;
    const { replayed, replayedBytes, corruptRecords } = log.stats();
    // Read back before anything this run writes (the reader starts at the oldest unacknowledged record).
    this.#diskOnly = replayed;
    this.#host.opened(replayed, replayedBytes, corruptRecords);
    this.#appendNext();
    this.refill();
    return log;
  }

  #appendNext(): void {
    const log = this.#log;
    if (log === undefined || this.#appending !== undefined || this.#staged.length === 0) return;
    if (this.#retryTimer !== undefined) return;
    const group = this.#staged;
    this.#staged = [];
    this.#appending = group;
    void log.appendGroup(group.map((entry) => entry.payload)).then((result) => this.#appended(group, result));
  }

  #appended(group: Staged<T>[], { firstId, written, error }: AppendedGroup): void {
    this.#appending = undefined;
    const wasPressing = this.pressing;
    this.#unwritten -= group.length;
    if (this.#closed) {
      // Destroyed meanwhile: what was written stays in the log for the next run.
      group.forEach((entry, i) => {
        if (entry.settle !== undefined) process.nextTick(entry.settle, i < written ? null : error, i < written);
      });
      return;
    }
    let queued = false;
    const queue = this.#queue;
    for (let i = 0; i < written; i++) {
      const entry = group[i] as Staged<T>;
      const id = firstId + i;
      if (this.#diskOnly === 0 && this.#room() > 0) {
        queue.push(entry.item, entry.size, now, id);
        queued = true;
      } else {
        // The first of a disk-only run: everything before it is in memory (or was read back).
        if (this.#diskOnly === 0) (this.#log as DiskLog).skipBelow(id);
        this.#diskOnly++;
      }
      if (entry.settle !== undefined) process.nextTick(entry.settle, null, true);
    }
    const wasFull = written > 0 && this.full;
    if (wasFull) {
      this.full = false;
      this.#retryDelayMs = 10;
    }
    // (Not pressing implies not congested: the pause limit is the lower one.)
    const spaceAgain = wasFull || (wasPressing && !this.pressing);
    if (written < group.length) this.#host.appendFailed(group.slice(written), error ?? DiskError.closed(this.path));
    if (queued) this.#host.queued();
    if (spaceAgain) this.#host.spaceAgain();
    this.refill();
    this.#appendNext();
  }

  /** Acks can delete segments: a full disk may have room again. */
  #wroteAcks(): void {
    if (this.#retryTimer === undefined || this.#closed) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#appendNext();
  }
}

function warnAckFailed(error: unknown): void {
  const warning = new Error(
    `sluice could not record deliveries in its disk log (they will be delivered again after a restart): ${
      error instanceof Error ? error.message : String(error)
    }`,
  );
  warning.name = 'SluiceWarning';
  process.emitWarning(warning);
}
