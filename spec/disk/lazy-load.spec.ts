import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The disk log's code (lib/disk/log, the spool, and `node:crypto` through the lock) is a third of what
 * requiring sluice costs, so it is loaded by the first sluice with a `disk` option, not before. Checked
 * on the built package, in a fresh process each: `npm test` builds dist/ first.
 */
const DIST = join(__dirname, '..', '..', 'dist');

/** The disk modules a fresh process has loaded after running `script` (with `sluice` required). */
function diskModulesLoadedBy(script: string): string[] {
  const program = `
    const sluice = require(${JSON.stringify(DIST)});
    ${script}
    const loaded = Object.keys(require.cache)
      .filter((file) => /[\\\\/](disk[\\\\/](log|lock|writer|reader|recovery)|engine[\\\\/]spool)\\.js$/.test(file))
      .map((file) => file.replace(/^.*[\\\\/](disk|engine)[\\\\/]/, '$1/'));
    process.stdout.write(JSON.stringify(loaded.sort()));
  `;
  const child = spawnSync(process.execPath, ['-e', program], { encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`the child failed (${child.status}): ${child.stderr}`);
  return JSON.parse(child.stdout) as string[];
}

describe('the disk log is loaded on first use', () => {
  it('requiring sluice and running a sluice without `disk` loads none of it', () => {
    expect(
      diskModulesLoadedBy(`
        const { Readable } = require('node:stream');
        const { pipeline } = require('node:stream/promises');
        pipeline(Readable.from([1, 2, 3]), sluice.createBackpressureStream(async () => {}, { strategy: 'block' }));
      `),
    ).toEqual([]);
  });

  it('a sluice with `disk` loads it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-lazy-'));
    try {
      expect(
        diskModulesLoadedBy(`
          const s = sluice.createBackpressureStream(async () => {}, { strategy: 'block', disk: { path: ${JSON.stringify(dir)} } });
          s.destroy();
        `),
      ).toEqual([
        'disk/lock.js',
        'disk/log.js',
        'disk/reader.js',
        'disk/recovery.js',
        'disk/writer.js',
        'engine/spool.js',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
