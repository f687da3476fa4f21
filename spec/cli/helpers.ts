import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';

/** The built CLI (`pretest` builds dist/): tests run it the way users do, as a child process. */
export const CLI = resolve(__dirname, '../../dist/cli/main.js');
export const FIXTURES = resolve(__dirname, 'fixtures');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function startCli(args: string[], cwd: string): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [CLI, ...args], { cwd, stdio: 'pipe' });
}

/** Runs the CLI to completion; `input` (if any) is written to its stdin, which is then closed. */
export function runCli(args: string[], cwd: string, input?: string): Promise<CliResult> {
  const child = startCli(args, cwd);
  child.stdin.end(input ?? '');
  return collect(child);
}

export function collect(child: ChildProcessWithoutNullStreams): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  return new Promise((resolvePromise, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
}

/** Resolves once the child's stderr has a line matching `pattern` (the status line reports progress). */
export function waitForStderr(child: ChildProcessWithoutNullStreams, pattern: RegExp): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('utf8');
      if (pattern.test(seen)) {
        child.stderr.off('data', onData);
        resolvePromise();
      }
    };
    child.stderr.on('data', onData);
    child.once('close', (code) =>
      reject(new Error(`the CLI exited (${code}) before printing ${pattern}; stderr: ${seen}`)),
    );
  });
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RejectLine {
  line: number;
  stage: string;
  error: string;
  raw: string;
}

export function readRejects(path: string): RejectLine[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as RejectLine);
}

/** The JSON summary `--json` prints on stdout. */
export function summaryOf(
  result: CliResult,
): Record<string, unknown> & { read: number; inserted: number; rejected: number } {
  const line = result.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as never;
  } catch {
    throw new Error(`no JSON summary on stdout; stdout: ${result.stdout}; stderr: ${result.stderr}`);
  }
}

/** NDJSON lines `{ id, name }` for ids from..to, with every `badEvery`-th line malformed. */
export function ndjsonLines(from: number, to: number, badEvery = 0): string {
  let text = '';
  for (let id = from; id <= to; id++) {
    text +=
      badEvery > 0 && id % badEvery === 0 ? `{"id":${id},"name":\n` : `${JSON.stringify({ id, name: `user-${id}` })}\n`;
  }
  return text;
}

/** Sends SIGINT `times` times, each once the CLI has said it saw the one before (the OS merges pending signals). */
export async function interrupt(child: ChildProcessWithoutNullStreams, times: number): Promise<void> {
  const seen = [/SIGINT: reading stopped/, /SIGINT again: giving up/];
  for (let i = 0; i < times; i++) {
    const said = waitForStderr(child, seen[i] as RegExp);
    child.kill('SIGINT');
    await said;
  }
}

/**
 * Two ways to end a run that waits on the database: the deadline alone ends the first;
 * in the second it is ten minutes away, so only the second signal can end the run
 * before the test times out.
 */
export const ENDINGS = [
  ['one SIGINT, then the --shutdown-timeout deadline', ['--shutdown-timeout', '300'], 1],
  ['a second SIGINT, long before the deadline', ['--shutdown-timeout', '600000'], 2],
] as const;
