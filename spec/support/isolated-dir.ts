import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A new temporary directory none of whose ancestors holds a node_modules that resolves one of
 * `packages`: Node resolves packages up the directory tree, so a stray /tmp/node_modules would hide
 * a missing one. Named `<prefix><random>`.
 */
export function isolatedTempDir(packages: readonly string[], prefix: string): string {
  const bases = [tmpdir(), '/dev/shm', '/var/tmp'];
  for (const base of bases) {
    const resolves = packages.some((name) => {
      try {
        require.resolve(name, { paths: [base] });
        return true;
      } catch {
        return false;
      }
    });
    if (!resolves) return mkdtempSync(join(base, prefix));
  }
  throw new Error(
    `every candidate temporary directory (${bases.join(', ')}) can resolve one of ${packages.join(', ')}`,
  );
}
