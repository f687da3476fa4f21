import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import type * as Sluice from '../lib/index';

/**
 * sluice as built in dist/, with lib/'s types. SLUICE_DIST points the benchmarks at
 * another build (a patched copy, to measure a change before it lands).
 */

/** The repository root: the first directory above this file that holds tsconfig.build.json. */
export const repoRoot = ((): string => {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'tsconfig.build.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no tsconfig.build.json above ${__dirname}`);
  }
})();

export const distDir = path.resolve(process.env.SLUICE_DIST ?? path.join(repoRoot, 'dist'));

export const sluice = createRequire(__filename)(distDir) as typeof Sluice;
