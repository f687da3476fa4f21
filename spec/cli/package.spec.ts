import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tempDir } from './helpers';

const ROOT = resolve(__dirname, '..', '..');

/** Runs a command to completion; throws with its output if it fails. */
function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

describe('the package as a user installs it', () => {
  it('npm pack builds dist/ first (prepack)', () => {
    const scripts = (
      JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
    ).scripts;
    expect(scripts.prepack).toMatch(/npm run build$/);
  });

  it('the tarball holds the CLI and the docs its help points to; installed, `sluice --help` names a file that exists', () => {
    const { dir, cleanup } = tempDir();
    try {
      // dist/ is already built (pretest): --ignore-scripts keeps this test from rebuilding it under the others.
      run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], ROOT);
      const tarball = readdirSync(dir).find((name) => name.endsWith('.tgz')) as string;
      const app = join(dir, 'app');
      mkdirSync(app);
      writeFileSync(join(app, 'package.json'), '{"name":"app","version":"1.0.0","private":true}\n');
      run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(dir, tarball)], app);

      const installed = join(app, 'node_modules', 'sluice');
      expect(existsSync(join(installed, 'dist', 'cli', 'main.js'))).toBe(true);
      expect(existsSync(join(installed, 'dist', 'index.js'))).toBe(true);
      const help = run(join(app, 'node_modules', '.bin', 'sluice'), ['--help'], app);
      const docs = /^Docs: (.+)$/m.exec(help)?.[1] ?? '';
      expect(docs).toBe(join(installed, 'docs', 'cli.md'));
      expect(readFileSync(docs, 'utf8')).toMatch(/^# The `sluice` command/);
    } finally {
      cleanup();
    }
  });
});
