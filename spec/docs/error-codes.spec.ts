/**
 * Every error and warning code the library can raise is documented in docs/errors.md:
 * adding a code without documenting it fails here.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '../..');
const LIB = join(ROOT, 'lib');
const DOC = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');

/** `'ERR_…'`, `'SLUICE_…'` and `'ABORT_ERR'` string literals in the library's own modules (the CLI documents its own). */
function codesInLibrary(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const files = readdirSync(LIB, { recursive: true, encoding: 'utf8' }).filter(
    (name) => name.endsWith('.ts') && !name.startsWith('cli'),
  );
  for (const file of files) {
    const source = readFileSync(join(LIB, file), 'utf8');
    for (const match of source.matchAll(/['"`]((?:ERR|SLUICE)_[A-Z0-9_]+|ABORT_ERR)['"`]/g)) {
      const code = match[1] as string;
      found.set(code, [...(found.get(code) ?? []), file]);
    }
  }
  return found;
}

describe('docs/errors.md', () => {
  const codes = codesInLibrary();

  it('finds the codes of lib/errors.ts and lib/engine/', () => {
    for (const code of [
      'ERR_FLUSH_FAILED',
      'ERR_OUT_OF_RANGE',
      'SLUICE_ITEMS_DROPPED',
      'SLUICE_DEAD_LETTER_FAILED',
      'SLUICE_ITEMS_DISCARDED',
      'SLUICE_ITEMS_HELD_AT_EXIT',
    ]) {
      expect(codes.has(code)).toBe(true);
    }
  });

  it.each([...codes.keys()].sort())('documents %s', (code) => {
    expect(DOC).toContain(`\`${code}\``);
    // …with its own section (a heading or a table row), not just a passing mention.
    expect(DOC).toMatch(new RegExp(`^(#+ .*${code}|\\| \\[?\`${code}\`)`, 'm'));
  });
});
