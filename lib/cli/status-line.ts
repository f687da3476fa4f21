import type { BackpressureMetrics } from '../index';

/** What the status line reads: a sluice (or anything with its metrics) and a few counters of the run. */
export interface StatusSource {
  getMetrics(): BackpressureMetrics;
  maxBufferSize: number;
  /** Extra `label value` pairs shown after the sluice's own numbers (read, rejected...). */
  extra(): [string, number][];
}

export interface StatusOptions {
  stream: NodeJS.WriteStream;
  quiet: boolean;
  /** Milliseconds between lines; undefined: 100 on a TTY (10 redraws/s at most), 2000 otherwise. */
  intervalMs: number | undefined;
}

const GAUGE_WIDTH = 20;

/** One `sluice: …` line on stderr: above the status line while there is one, else straight to `err`. */
export function sayAbove(status: StatusLine | undefined, err: NodeJS.WritableStream, message: string): void {
  const line = `sluice: ${message}`;
  if (status !== undefined) status.print(line);
  else err.write(`${line}\n`);
}

/**
 * The live status: on a TTY one line redrawn in place, at most 10 times a
 * second; elsewhere (a log, a CI job) a plain line every few seconds; nothing
 * with `--quiet`. Also keeps the peaks the summary reports, so it samples even
 * when quiet.
 */
export class StatusLine {
  readonly #source: StatusSource;
  readonly #stream: NodeJS.WriteStream;
  readonly #quiet: boolean;
  readonly #tty: boolean;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #drawn = false;
  #lastFlushed = 0;
  #lastTime = 0;
  #rate = 0;
  peakBuffer = 0;

  constructor(source: StatusSource, options: StatusOptions) {
    this.#source = source;
    this.#stream = options.stream;
    this.#quiet = options.quiet;
    this.#tty = options.stream.isTTY === true;
    this.#intervalMs = Math.max(100, options.intervalMs ?? (this.#tty ? 100 : 2000));
  }

  start(): void {
    this.#lastTime = performance.now();
    // Deliberately not unref'd: it also keeps the process alive while a run is in progress. sluice's
    // own flush timers are unref'd, and when the producer waits for 'drain' while the sluice waits on
    // such a timer (a flush slower than targetLatencyMs spaces the next one), nothing else may hold
    // the loop open and Node exits 0 with rows still held (reported to the lead with a repro).
    // stop() clears it when the run settles.
    this.#timer = setInterval(this.#tick, this.#intervalMs);
  }

  /** Records the buffer level between ticks (called once per flush: O(1), one metrics object). */
  observe(bufferSize: number): void {
    if (bufferSize > this.peakBuffer) this.peakBuffer = bufferSize;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.observe(this.#source.getMetrics().bufferSize);
    if (this.#drawn && this.#tty) this.#stream.write('\r\x1b[K');
    this.#drawn = false;
  }

  /** A line of its own (a warning): a TTY status line is cleared first and redrawn at the next tick. */
  print(line: string): void {
    if (this.#drawn && this.#tty) this.#stream.write('\r\x1b[K');
    this.#drawn = false;
    this.#stream.write(`${line}\n`);
  }

  readonly #tick = (): void => {
    const metrics = this.#source.getMetrics();
    this.observe(metrics.bufferSize);
    const time = performance.now();
    const seconds = (time - this.#lastTime) / 1000;
    if (seconds > 0) {
      const instant = (metrics.eventsFlushed - this.#lastFlushed) / seconds;
      // Smoothed, so a TTY line does not flicker between batch boundaries.
      this.#rate = this.#lastFlushed === 0 ? instant : this.#rate * 0.7 + instant * 0.3;
    }
    this.#lastFlushed = metrics.eventsFlushed;
    this.#lastTime = time;
    if (this.#quiet) return;
    if (this.#tty) {
      this.#stream.write(`\r${this.#ttyLine(metrics)}\x1b[K`);
      this.#drawn = true;
    } else {
      this.#stream.write(`${this.#plainLine(metrics)}\n`);
    }
  };

  #ttyLine(m: BackpressureMetrics): string {
    const max = this.#source.maxBufferSize;
    const filled = Math.min(GAUGE_WIDTH, Math.round((m.bufferSize / max) * GAUGE_WIDTH));
    const gauge = `[${'#'.repeat(filled)}${'.'.repeat(GAUGE_WIDTH - filled)}]`;
    const extra = this.#source
      .extra()
      .map(([label, n]) => `${label} ${fmt(n)}`)
      .join('  ');
    return `${m.state.padEnd(8)} ${gauge} ${fmt(m.bufferSize)}/${fmt(max)}  ${fmt(Math.round(this.#rate))}/s  flush ${m.lastFlushLatencyMs.toFixed(1)} ms  batch ${m.currentBatchSize}  ${extra}`;
  }

  #plainLine(m: BackpressureMetrics): string {
    const extra = this.#source
      .extra()
      .map(([label, n]) => `${label}=${n}`)
      .join(' ');
    return `sluice: state=${m.state} buffer=${m.bufferSize}/${this.#source.maxBufferSize} rate=${Math.round(this.#rate)}/s flush_ms=${m.lastFlushLatencyMs.toFixed(1)} batch=${m.currentBatchSize} delivered=${m.eventsFlushed} ${extra}`;
  }
}

/** 1234567 → "1,234,567". */
export function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

/** Peak resident set size of this process so far, in bytes (the OS's own high-water mark). */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
