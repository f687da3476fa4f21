import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The disk log's code (lib/disk/log and its readers and writers, the spool, and `node:crypto` through the
 * lock) is a third of what requiring sluice costs, so it is loaded by the first sluice with a `disk`
 * option, not before. Checked on the built package (`npm test` builds dist/ first), each case in a fresh
 * process running a script file: `node -e` loads `node:crypto` itself.
 */
const DIST = join(__dirname, '..', '..', 'dist');

/** The disk modules (and `crypto`) a fresh process has loaded once `body` (with `sluice` required) is done. */
function diskModulesLoadedBy(body: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-lazy-'));
  try {
    const script = join(dir, 'script.js');
    writeFileSync(
      script,
      `
      const sluice = require(${JSON.stringify(DIST)});
      (async () => {
        ${body.replace(/DIR/g, JSON.stringify(dir))}
        const loaded = Object.keys(require.cache)
          .filter((file) => /[\\/](disk[\\/](log|lock|writer|reader|recovery)|engine[\\/]spool)\\.js$/.test(file))
          .map((file) => file.replace(/^.*[\\/](disk|engine)[\\/]/, '$1/'));
        if (process.moduleLoadList.includes('NativeModule crypto')) loaded.push('crypto');
        process.stdout.write(JSON.stringify(loaded.sort()));
      })();
      `,
    );
    const child = spawnSync(process.execPath, [script], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`the child failed (${child.status}): ${child.stderr}`);
    return JSON.parse(child.stdout) as string[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the disk log is loaded on first use', () => {
  it('requiring sluice and running a sluice without `disk` to its end loads none of it', () => {
    expect(
      diskModulesLoadedBy(`
        const { Readable } = require('node:stream');
        const { pipeline } = require('node:stream/promises');
        await pipeline(Readable.from([1, 2, 3]), sluice.createBackpressureStream(async () => {}, { strategy: 'block' }));
      `),
    ).toEqual([]);
  });

  it('a sluice with `disk` loads it', () => {
    expect(
      diskModulesLoadedBy(`
        const s = sluice.createBackpressureStream(async () => {}, { strategy: 'block', disk: { path: DIR } });
        s.destroy();
      `),
    ).toEqual([
      'crypto',
      'disk/lock.js',
      'disk/log.js',
      'disk/reader.js',
      'disk/recovery.js',
      'disk/writer.js',
      'engine/spool.js',
    ]);
  });
});
