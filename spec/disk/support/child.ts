import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const SCRIPT = join(__dirname, 'disk-child.js');
export const DIST_LOG = join(__dirname, '..', '..', '..', 'dist', 'disk', 'log.js');

export function assertBuilt(): void {
  if (!existsSync(DIST_LOG)) throw new Error(`${DIST_LOG} is missing: run \`npm run build\` first`);
}

/** A running disk-child.js: its parsed stdout lines as they come, and its end. */
export interface Child {
  process: ChildProcess;
  lines: Array<Record<string, unknown>>;
  /** Resolves on the first line for which `match` is true. */
  waitFor(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Resolves once the process has exited and its output is read. */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

export function startChild(mode: 'hold' | 'open' | 'crash' | 'race', dir: string, ...rest: string[]): Child {
  const child = spawn(process.execPath, [SCRIPT, mode, dir, ...rest], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{
    match: (line: Record<string, unknown>) => boolean;
    resolve: (line: Record<string, unknown>) => void;
  }> = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const stdoutDone = new Promise<void>((resolve) => {
    const reader = createInterface({ input: child.stdout });
    reader.on('line', (text) => {
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push(line);
      for (const waiter of waiters.splice(0)) {
        if (waiter.match(line)) waiter.resolve(line);
        else waiters.push(waiter);
      }
    });
    reader.on('close', resolve);
  });
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => void stdoutDone.then(() => resolve({ code, signal, stderr })));
    },
  );
  return {
    process: child,
    lines,
    closed,
    waitFor: (match) =>
      new Promise((resolve, reject) => {
        const seen = lines.find(match);
        if (seen !== undefined) return resolve(seen);
        waiters.push({ match, resolve });
        void closed.then(({ stderr: text }) =>
          reject(new Error(`the child exited without that line; stderr: ${text}`)),
        );
      }),
  };
}
