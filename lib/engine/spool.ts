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
 * Memory holds the oldest undelivered items, at most `maxBufferSize` of them (queued, in flight,
 * or being appended); they enter the queue as soon as their append resolves. An item accepted
 * while memory is full, or while older items wait on disk, is *disk-only*: once appended, its
 * copy in memory is let go, and it is read back from the log, in order, as room frees. The log's
 * reader is told to pass over the records kept in memory (`skipBelow`), so nothing is read back
 * that memory already holds.
 *
 *   accept → staged → one append group at a time → memory: queue   (room, nothing on disk only)
 *                                                 → disk only: read back later, in order
 *
 * One group is appended at a time, so a failed group (a full disk) leaves no later item written
 * before it: order holds when it is retried. Records found in the log at open (a previous run's
 * undelivered items) are disk-only from the start: they are read back before anything new.
 */

/** An accepted item on its way into the log. */
export interface Staged<T> {
  readonly item: T;
  /** Its record's bytes (payload + header): what it counts for in the byte bound. */
  readonly size: number;
  readonly payload: Uint8Array;
  readonly settle: Settle | undefined;
  /** Read back from the log later (true), or kept in memory and queued once appended. */
  diskOnly: boolean;
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
  /** Items memory may hold: queued + in flight + being appended to stay in memory. */
  readonly #readAhead: number;
  readonly #opening: Promise<DiskLog | undefined>;
  #log: DiskLog | undefined;
  /** Accepted, waiting for the group being appended. */
  #staged: Staged<T>[] = [];
  /** The group being appended. */
  #appending = false;
  /** Staged or appending items that will be queued from memory. */
  #memoryPending = 0;
  /** Accepted items not in the log yet (staged or appending): in memory however they are marked. */
  #unwritten = 0;
  /** Disk-only items not read back yet (being appended or in the log). */
  #diskOnly = 0;
  /** Of them, those in the log (appended, or found at open). */
  #diskOnlyReady = 0;
  /** The next disk-only record appended starts a run: the reader must pass over what is before it. */
  #floorNeeded = false;
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
   * As many items wait to be written as memory may hold: the producer outruns the disk. Block
   * pauses it (write() returns false, later writes wait); the drop strategies drop the incoming
   * item. Keeps memory bounded when a producer writes faster than the log can append.
   */
  get congested(): boolean {
    return this.#unwritten >= this.#readAhead;
  }

  /** Items memory holds: read ahead (queued, in flight, appending to be queued) and not yet written. For tests. */
  get inMemory(): number {
    return this.#memoryHeld() + this.#unwritten - this.#memoryPending;
  }

  constructor(
    disk: ResolvedSluiceDisk<T>,
    parts: { queue: Queue<T>; ledger: Ledger; readAhead: number },
    host: SpoolHost<T>,
  ) {
    this.path = disk.log.path;
    this.#codec = createCodec(disk.log.path, { serialize: disk.serialize, deserialize: disk.deserialize });
    this.#queue = parts.queue;
    this.#ledger = parts.ledger;
    this.#readAhead = parts.readAhead;
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
  static sizeOf(payload: Uint8Array): number {
    return HEADER_BYTES + payload.length;
  }

  /** An item was accepted (counted in the ledger): appends it; its callback runs once it is written. */
  accept(item: T, size: number, payload: Uint8Array, settle: Settle | undefined): void {
    const diskOnly = this.#log === undefined || this.#diskOnly > 0 || this.#memoryHeld() >= this.#readAhead;
    if (!diskOnly) this.#memoryPending++;
    else {
      if (this.#diskOnly === 0) this.#floorNeeded = true;
      this.#diskOnly++;
    }
    this.#staged.push({ item, size, payload, settle, diskOnly });
    this.#unwritten++;
    this.#appendNext();
  }

  /** Memory has room and items wait on disk: reads the next ones back into the queue. */
  refill(): void {
    const log = this.#log;
    if (log === undefined || this.#reading || this.#diskOnlyReady === 0 || this.#closed) return;
    const room = this.#readAhead - this.#memoryHeld();
    if (room <= 0) return;
    // Only records whose append resolved here: the reader must not run ahead of the counts.
    const count = Math.min(room, this.#diskOnlyReady);
    this.#reading = true;
    log.read(count).then(
      (records) => {
        this.#reading = false;
        if (this.#closed) return;
        if (records.length === 0) {
          // Nothing readable although the counts say so: never spin on it.
          this.#diskOnly -= this.#diskOnlyReady;
          this.#diskOnlyReady = 0;
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
          this.#queue.push(item, Spool.sizeOf(record.payload), now, record.id);
        }
        this.#diskOnly -= records.length;
        this.#diskOnlyReady -= records.length;
        this.#host.queued();
        this.refill();
      },
      (error: unknown) => {
        this.#reading = false;
        if (!this.#closed) this.#host.fail(error as Error);
      },
    );
  }

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
    for (const entry of entries) {
      if (entry.diskOnly) {
        if (this.#diskOnly === 0) this.#floorNeeded = true;
        this.#diskOnly++;
      } else this.#memoryPending++;
    }
    this.#staged = entries.concat(this.#staged);
    this.#unwritten += entries.length;
    this.full = true;
    if (this.#retryTimer !== undefined || this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#appendNext();
    }, this.#retryDelayMs);
    this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, MAX_RETRY_MS);
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
    return this.#queue.size + this.#ledger.inFlight + this.#memoryPending;
  }

  #opened(log: DiskLog): DiskLog | undefined {
    this.opening = false;
    // Destroyed while opening: close() (which waits for this open) closes it.
    if (this.#closed) return log;
    this.#log = log;
    const { replayed, replayedBytes, corruptRecords } = log.stats();
    if (replayed > 0) {
      // Read before anything written by this run (which is disk-only so far: see accept()).
      this.#floorNeeded = false;
      this.#diskOnly += replayed;
      this.#diskOnlyReady += replayed;
    }
    this.#host.opened(replayed, replayedBytes, corruptRecords);
    this.#appendNext();
    this.refill();
    return log;
  }

  #appendNext(): void {
    const log = this.#log;
    if (log === undefined || this.#appending || this.#staged.length === 0 || this.#retryTimer !== undefined) return;
    const group = this.#staged;
    this.#staged = [];
    this.#appending = true;
    void log.appendGroup(group.map((entry) => entry.payload)).then((result) => this.#appended(group, result));
  }

  #appended(group: Staged<T>[], { firstId, written, error }: AppendedGroup): void {
    this.#appending = false;
    const wasCongested = this.congested;
    this.#unwritten -= group.length;
    if (this.#closed) {
      // Destroyed meanwhile: what was written stays in the log for the next run.
      group.forEach((entry, i) => {
        if (entry.settle !== undefined) process.nextTick(entry.settle, i < written ? null : error, i < written);
      });
      return;
    }
    let queued = false;
    for (let i = 0; i < written; i++) {
      const entry = group[i] as Staged<T>;
      const id = firstId + i;
      if (entry.diskOnly) {
        if (this.#floorNeeded) {
          (this.#log as DiskLog).skipBelow(id);
          this.#floorNeeded = false;
        }
        this.#diskOnlyReady++;
      } else {
        this.#memoryPending--;
        this.#queue.push(entry.item, entry.size, now, id);
        queued = true;
      }
      if (entry.settle !== undefined) process.nextTick(entry.settle, null, true);
    }
    const wasFull = written > 0 && this.full;
    if (wasFull) {
      this.full = false;
      this.#retryDelayMs = 10;
    }
    const spaceAgain = wasFull || (wasCongested && !this.congested);
    if (written < group.length) {
      const failed = group.slice(written);
      for (const entry of failed) {
        if (entry.diskOnly) this.#diskOnly--;
        else this.#memoryPending--;
      }
      this.#host.appendFailed(failed, error ?? DiskError.closed(this.path));
    }
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
