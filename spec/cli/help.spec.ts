import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempDir } from './helpers';

/**
 * `sluice --help` against docs/cli.md: every flag in the doc's flag tables (ingest, ingest from a
 * broker, publish) is listed by --help, and every flag --help lists is documented.
 */
const DOC = readFileSync(join(__dirname, '..', '..', 'docs', 'cli.md'), 'utf8');

/** The flags named in the first column of the tables whose header is `| flag | ...`. */
function documentedFlags(): string[] {
  const flags = new Set<string>();
  let inTable = false;
  for (const line of DOC.split('\n')) {
    if (/^\|\s*flag\s*\|/.test(line)) {
      inTable = true;
      continue;
    }
    if (!line.startsWith('|')) {
      inTable = false;
      continue;
    }
    if (!inTable) continue;
    // Cells are split at pipes that are not escaped (`--format ndjson\|csv`).
    const first = line.split(/(?<!\\)\|/)[1] ?? '';
    for (const match of first.matchAll(/`(--?[a-z][a-z-]*)/g)) flags.add(match[1] as string);
  }
  return [...flags];
}

/** `flag` as a word of its own in `text` (not `--max-buffer` inside `--max-buffer-bytes`). */
function mentions(text: string, flag: string): boolean {
  return new RegExp(`(?<![\\w-])${flag}(?![\\w-])`).test(text);
}

describe('sluice --help and docs/cli.md list the same flags', () => {
  let dir: string;
  let cleanup: () => void;
  let help: string;
  beforeAll(async () => {
    ({ dir, cleanup } = tempDir());
    const result = await runCli(['--help'], dir);
    expect(result.code).toBe(0);
    help = result.stdout;
  });
  afterAll(() => cleanup());

  it('finds the flag tables', () => {
    const flags = documentedFlags();
    for (const flag of ['--into', '--batch-size', '--disk', '--dedupe', '--idle-exit', '--id-field', '-q', '--json'])
      expect(flags).toContain(flag);
  });

  it.each(documentedFlags())('--help lists %s', (flag) => {
    expect(mentions(help, flag)).toBe(true);
  });

  it('every flag --help lists is documented in docs/cli.md', () => {
    const listed = new Set([...help.matchAll(/(?<![\w-])(--?[a-z][a-z-]*)/g)].map((match) => match[1] as string));
    expect(listed.size).toBeGreaterThan(20);
    expect([...listed].filter((flag) => !mentions(DOC, flag))).toEqual([]);
  });
});
