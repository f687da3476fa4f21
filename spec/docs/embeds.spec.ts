/**
 * The guide and recipes embed regions of docs/examples/*.ts (which examples.spec.ts
 * compiles and runs). A block marked
 *
 *   <!-- embed: docs/examples/file.ts#region -->
 *   ```ts
 *   ...
 *   ```
 *   <!-- /embed -->
 *
 * must hold exactly the `// #region region` … `// #endregion region` lines of that file,
 * dedented, with `'../../lib'` shown as `'sluice'`. Prettier leaves code in Markdown alone
 * (`embeddedLanguageFormatting: off`), so this spec is the only owner of those blocks. To refresh every block: `npm run docs:embed`.
 */
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(__dirname, '../..');
const UPDATE = process.env.SLUICE_UPDATE_EMBEDS === '1';
const EMBED = /(<!-- embed: ([^#\s]+)#([\w-]+) -->\n)([\s\S]*?)(<!-- \/embed -->)/g;

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'api' ? [] : markdownFiles(path);
    return name.endsWith('.md') ? [path] : [];
  });
}

function region(file: string, name: string): string {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const start = lines.findIndex((line) => line.trim() === `// #region ${name}`);
  const end = lines.findIndex((line, i) => i > start && line.trim() === `// #endregion ${name}`);
  if (start < 0 || end < 0) throw new Error(`${file} has no region "${name}"`);
  const body = lines.slice(start + 1, end);
  // Dedent, so a region inside a function reads as top-level code.
  const indent = Math.min(...body.filter((line) => line.trim() !== '').map((line) => /^ */.exec(line)![0].length));
  return body
    .map((line) => line.slice(indent))
    .join('\n')
    .replaceAll("'../../lib'", "'sluice'");
}

function render(file: string, name: string): string {
  // Blank lines around the fence, as Prettier writes Markdown.
  return '\n```ts\n' + region(file, name) + '\n```\n\n';
}

const docs = markdownFiles(join(ROOT, 'docs'));
const embeds = docs.flatMap((doc) =>
  [...readFileSync(doc, 'utf8').matchAll(EMBED)].map((m) => ({
    doc: relative(ROOT, doc),
    file: m[2] as string,
    name: m[3] as string,
    body: m[4] as string,
  })),
);

describe('embedded examples', () => {
  if (UPDATE) {
    it('rewrites every embedded block', () => {
      for (const doc of docs) {
        const text = readFileSync(doc, 'utf8');
        const next = text.replace(EMBED, (_all, open: string, file: string, name: string, _body, close: string) => {
          return open + render(file, name) + close;
        });
        if (next !== text) writeFileSync(doc, next);
      }
    });
    return;
  }

  it('the docs embed at least the recipes', () => {
    expect(embeds.length).toBeGreaterThanOrEqual(8);
  });

  it.each(embeds.map((e) => [`${e.doc} ← ${e.file}#${e.name}`, e] as const))('%s is up to date', (_label, e) => {
    // Out of date? Run `npm run docs:embed`.
    expect(e.body).toBe(render(e.file, e.name));
  });

  it('every example file is embedded or linked from a doc', () => {
    const text = docs.map((doc) => readFileSync(doc, 'utf8')).join('\n');
    const examples = readdirSync(join(ROOT, 'docs/examples')).filter((name) => name.endsWith('.ts'));
    for (const example of examples)
      expect({ example, linked: text.includes(`examples/${example}`) }).toEqual({ example, linked: true });
  });
});
