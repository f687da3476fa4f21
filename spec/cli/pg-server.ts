import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * The PostgreSQL server the CLI tests use (SLUICE_PG_URL, default 127.0.0.1:5432/test).
 * Without one those tests are skipped, and say so; with SLUICE_REQUIRE_POSTGRES=1 (CI)
 * an unreachable server fails the suite instead.
 */
const CANDIDATES =
  process.env.SLUICE_PG_URL !== undefined
    ? [process.env.SLUICE_PG_URL]
    : ['postgres://postgres@127.0.0.1:5432/test', 'postgres://root@127.0.0.1:5432/test'];

/** Probed synchronously (in a child) so that describe/describe.skip can be chosen at load time. */
function probe(): { url: string | undefined; why: string } {
  let why = '';
  for (const url of CANDIDATES) {
    const script = `const { Client } = require('pg'); const c = new Client({ connectionString: process.argv[1], connectionTimeoutMillis: 3000 });
      c.connect().then(() => c.query('SELECT 1')).then(() => c.end()).then(() => process.exit(0), (e) => { console.error(e.message || e.code); process.exit(1); });`;
    const result = spawnSync(process.execPath, ['-e', script, url], {
      cwd: join(__dirname, '..', '..'),
      encoding: 'utf8',
      timeout: 10_000,
    });
    if (result.status === 0) return { url, why: '' };
    why = `${url}: ${result.stderr.trim() || 'no answer'}`;
  }
  return { url: undefined, why };
}

const found = probe();
export const PG_URL = found.url;
export const PG_WHY = found.why;
export const PG_REQUIRED = process.env.SLUICE_REQUIRE_POSTGRES === '1';

/**
 * describe, or describe.skip with a warning saying why, for a suite that needs the
 * server. (With SLUICE_REQUIRE_POSTGRES=1, postgres.spec.ts's availability test fails.)
 */
export function describePg(name: string, suite: (url: string) => void): void {
  if (PG_URL === undefined) {
    console.warn(
      `SKIPPING "${name}": PostgreSQL is unreachable (${PG_WHY}). Set SLUICE_REQUIRE_POSTGRES=1 to make this a failure.`,
    );
    describe.skip(name, () => suite('postgres://unreachable.invalid/test'));
    return;
  }
  describe(name, () => suite(PG_URL));
}

/** A table name no other test (or run) uses. */
let counter = 0;
export function uniqueTable(prefix = 'sluice_cli'): string {
  return `${prefix}_${process.pid}_${Date.now()}_${counter++}`;
}
