import { PassThrough } from 'node:stream';
import { main } from '../../lib/cli/main';
import { collect, readRejects, startCli, summaryOf } from './helpers';
import type { CliResult, RejectLine } from './helpers';
import type { Io } from '../../lib/cli/ingest';

/** Lines longer than this (in bytes) are rejected: the inputs below have some. */
export const MAX_RECORD_BYTES = 256;

/**
 * An NDJSON input of `lines` lines whose every line says what must become of it. A good line is
 * `{"n": LINE, "k": KEY, "s": TEXT}`, so the table shows which lines it holds; the test's table has
 * `k` UNIQUE, and every 37th line repeats the key of the line 5 before it: the database refuses it
 * when that line is a row. Every 53rd line is invalid JSON, every 97th over MAX_RECORD_BYTES (both
 * parse rejects), every 71st blank; every 89th ends with CRLF; texts have multi-byte characters.
 */
export interface Input {
  text: string;
  /** Lines stored as rows, lines rejected while parsing, lines the database refuses. */
  rows: number[];
  parse: number[];
  database: number[];
  /** Non-blank lines: rows + rejects must add up to this. */
  records: number;
}

export function makeInput(lines: number): Input {
  const kind = (n: number): 'blank' | 'bad' | 'long' | 'row' =>
    n % 71 === 0 ? 'blank' : n % 53 === 0 ? 'bad' : n % 97 === 0 ? 'long' : 'row';
  const input: Input = { text: '', rows: [], parse: [], database: [], records: 0 };
  const parts: string[] = [];
  for (let n = 1; n <= lines; n++) {
    const end = n % 89 === 0 ? '\r\n' : '\n';
    switch (kind(n)) {
      case 'blank':
        parts.push(n % 2 === 0 ? end : `  ${end}`);
        continue;
      case 'bad':
        parts.push(`{"n":${n},"k":${end}`);
        input.parse.push(n);
        break;
      case 'long':
        parts.push(`${JSON.stringify({ n, k: n, s: 'é'.repeat(MAX_RECORD_BYTES) })}${end}`);
        input.parse.push(n);
        break;
      case 'row': {
        const repeats = n % 37 === 0;
        parts.push(`${JSON.stringify({ n, k: repeats ? n - 5 : n, s: `ligne ${n} é 😀` })}${end}`);
        if (repeats && kind(n - 5) === 'row') input.database.push(n);
        else input.rows.push(n);
      }
    }
    input.records++;
  }
  input.text = parts.join('');
  return input;
}

/** What the load must end with: each line once, as a row or as a reject, and the summary's totals agreeing. */
export function expectExactlyOnce(input: Input, stored: number[], rejectsPath: string): RejectLine[] {
  const rejects = readRejects(rejectsPath);
  expect([...stored].sort((a, b) => a - b)).toEqual(input.rows);
  const byStage = (stage: string): number[] =>
    rejects
      .filter((r) => r.stage === stage)
      .map((r) => r.line)
      .sort((a, b) => a - b);
  expect({
    parse: byStage('parse'),
    database: byStage('database'),
    other: rejects.length - byStage('parse').length - byStage('database').length,
  }).toEqual({
    parse: input.parse,
    database: input.database,
    other: 0,
  });
  expect(stored.length + rejects.length).toBe(input.records);
  return rejects;
}

/** The progress row of the load, as the test reads it (undefined before the first run made it). */
export interface Progress {
  records: number;
  inserted: number;
  rejected: number;
  rejectsOffset: number;
  runs: number;
  finished: boolean;
}

export interface KillLoop {
  /** The command line of every run. */
  args: string[];
  cwd: string;
  /** The table must be slow enough for kills to land mid-load: the specs give it a trigger that takes time. */
  progress(): Promise<Progress | undefined>;
  /** Runs killed at most before one is let finish. */
  maxKills: number;
  /** Records the whole input has: kills are aimed at fractions of it. */
  records: number;
  /** Milliseconds after the start within which a random kill falls. */
  randomKillMs: number;
}

export interface KillReport {
  kills: number;
  /** Kills after which the load was not finished: they landed mid-load. */
  midLoad: number;
  /** The run that finished the load. */
  last: CliResult;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs the command again and again, each run killed with SIGKILL: one in two once the progress row has
 * moved past a goal (a random fraction of the input ahead of where the run started: a kill a batch or
 * two after the k-th commit, often inside a transaction), the others at a random moment after the start
 * (starting up, reading the progress, loading). After `maxKills`, one run is let finish (a run may also
 * finish before it is killed). Whatever the kills hit, the load must end exactly once: for the caller
 * to check.
 */
export async function killUntilDone(loop: KillLoop): Promise<KillReport> {
  let kills = 0;
  let midLoad = 0;
  for (let run = 0; ; run++) {
    const lastRun = kills >= loop.maxKills;
    const paced = run % 2 === 0 && !lastRun;
    const before = (await loop.progress())?.records ?? 0;
    const child = startCli(loop.args, loop.cwd);
    const done = collect(child);
    let exited = false;
    void done.then(() => (exited = true));
    if (lastRun) {
      // Let it finish.
    } else if (paced) {
      const goal = before + 1 + Math.floor(Math.random() * (loop.records / 6));
      while (!exited && ((await loop.progress())?.records ?? 0) < goal) await sleep(5);
      child.kill('SIGKILL');
    } else {
      setTimeout(() => child.kill('SIGKILL'), Math.random() * loop.randomKillMs);
    }
    const result = await done;
    if (result.signal === 'SIGKILL') {
      kills++;
      if ((await loop.progress())?.finished !== true) midLoad++;
      continue;
    }
    return { kills, midLoad, last: result };
  }
}

/** The JSON summary of a run that must have succeeded, with its resume part. */
export function resumeSummary(result: CliResult): ReturnType<typeof summaryOf> & { resume: Record<string, unknown> } {
  expect({ code: result.code, stderr: result.code === 0 ? '' : result.stderr }).toEqual({ code: 0, stderr: '' });
  return summaryOf(result) as never;
}

/** Runs `sluice` in this process, to see the `code` of the error it throws (a child only shows the message). */
export async function runInProcess(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let outText = '';
  let errText = '';
  out.setEncoding('utf8').on('data', (text: string) => (outText += text));
  err.setEncoding('utf8').on('data', (text: string) => (errText += text));
  const io = { out, err, stdin: new PassThrough() } as unknown as Io;
  const code = await main(args, io);
  return { code, out: outText, err: errText };
}
