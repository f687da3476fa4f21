import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readRejects, runCli, summaryOf, tempDir } from './helpers';
import { selectAll } from './sqlite-db';

describe('sluice ingest of CSV: every physical line ends in a stored row or in a reject', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tempDir()));
  afterEach(() => cleanup());

  const ingest = (name: string, text: string, extra: string[] = []) => {
    const input = join(dir, name);
    writeFileSync(input, text);
    return runCli(
      [
        'ingest',
        input,
        '--into',
        `sqlite:${join(dir, 'out.db')}`,
        '--table',
        't',
        '--rejects',
        join(dir, 'rejects.ndjson'),
        '--json',
        '-q',
        ...extra,
      ],
      dir,
    );
  };
  const rows = <T = Record<string, string>>(sql = 'SELECT * FROM t'): T[] => selectAll<T>(join(dir, 'out.db'), sql);
  const rejects = () => readRejects(join(dir, 'rejects.ndjson')).sort((a, b) => a.line - b.line);

  it('an unclosed quote mid-file rejects its own line; the lines it swallowed are read again as records', async () => {
    const text = [
      'id,name,city',
      '1,ada,Paris',
      '2,"bob,Berlin',
      '3,cy,Rome',
      '4,"dee",Oslo',
      '5,"eve',
      'multi",Nice',
      '6,fay,Lima',
      '',
    ];
    const result = await ingest('people.csv', text.join('\n'));
    expect(result.code).toBe(0);
    expect(summaryOf(result)).toMatchObject({ read: 6, inserted: 5, rejected: 1, blankLines: 0 });
    expect(rows()).toEqual([
      { id: '1', name: 'ada', city: 'Paris' },
      { id: '3', name: 'cy', city: 'Rome' },
      { id: '4', name: 'dee', city: 'Oslo' },
      { id: '5', name: 'eve\nmulti', city: 'Nice' },
      { id: '6', name: 'fay', city: 'Lima' },
    ]);
    expect(rejects()).toEqual([
      { line: 3, stage: 'parse', raw: '2,"bob,Berlin', error: expect.stringMatching(/text after a closing quote/) },
    ]);
  });

  it('an unclosed quote at the end of the input: its line is rejected, the lines after it are records', async () => {
    const result = await ingest('end.csv', 'id,name\n1,"ada\n2,bob\n3,cy');
    expect(summaryOf(result)).toMatchObject({ read: 3, inserted: 2, rejected: 1 });
    expect(rows()).toEqual([
      { id: '2', name: 'bob' },
      { id: '3', name: 'cy' },
    ]);
    expect(rejects()).toEqual([
      expect.objectContaining({
        line: 2,
        raw: '1,"ada',
        error: expect.stringMatching(/input ends inside a quoted field/),
      }),
    ]);
  });

  it.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
  ])(
    'a generated file with broken quotes (%s): each line is covered exactly once, by a stored row or a reject',
    async (_name, eol) => {
      // Deterministic noise: unclosed quotes, quotes inside unquoted fields, and genuine multi-line fields;
      // long enough (about 1.5 MB) that records straddle the 256 KiB chunks the input is read in.
      const lines = ['id,name,city'];
      let seed = 7;
      const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      while (lines.length < 40_000) {
        const id = lines.length + 1;
        const pad = 'p'.repeat(Math.floor(random() * 40));
        const roll = random();
        if (roll < 0.02) lines.push(`${id},"open-${id}${pad},city`);
        else if (roll < 0.04) lines.push(`${id},na"me-${id},city`);
        else if (roll < 0.07) lines.push(`${id},"multi-${id}${pad}`, `rest-${id}",city`);
        else if (roll < 0.09) lines.push(`${id},"quoted ""${pad}"" with, comma",city`);
        else lines.push(`${id},name-${id}${pad},city-${id}`);
      }
      const result = await ingest('noisy.csv', `${lines.join(eol)}${eol}`);
      expect(result.code).toBe(0);
      const summary = summaryOf(result);
      expect(summary.read).toBe(summary.inserted + summary.rejected);
      expect(summary.rejected).toBeGreaterThan(0);

      const covered = new Map<number, number>();
      const cover = (first: number, text: string): void => {
        const span = text.split('\n').length;
        for (let line = first; line < first + span; line++) covered.set(line, (covered.get(line) ?? 0) + 1);
      };
      const stored = rows<{ id: string; name: string; city: string }>();
      for (const row of stored) cover(Number(row.id), `${row.name}${row.city}`);
      for (const reject of rejects()) cover(reject.line, reject.raw);
      expect(stored).toHaveLength(summary.inserted);
      const lineNumbers = [...covered.keys()].sort((a, b) => a - b);
      expect(lineNumbers).toEqual(Array.from({ length: lines.length - 1 }, (_, i) => i + 2));
      expect([...covered.values()].every((count) => count === 1)).toBe(true);
    },
  );

  it.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
  ])('valid CSV (%s line ends), read in chunks: the same records as csv-parse reads', async (_name, eol) => {
    let seed = 11;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const pieces = ['a', 'b c', ',', '""', '\n', '\r\n', 'é', '😀', ' ', '\t', "'"];
    const field = (): string => {
      let text = '';
      const length = Math.floor(random() * 12);
      for (let i = 0; i < length; i++) text += pieces[Math.floor(random() * pieces.length)] as string;
      const plain = !/[",\r\n]/.test(text) && random() < 0.5;
      return plain ? text : `"${text.replace(/"/g, '""')}"`;
    };
    let text = `x,y,z${eol}`;
    for (let r = 0; r < 30_000; r++) text += `${field()},${field()},${field()}${eol}`;
    const result = await ingest('valid.csv', text);
    expect(result.code).toBe(0);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { parse } = require('csv-parse/sync') as typeof import('csv-parse/sync');
    const expected = parse(text, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
    expect(summaryOf(result)).toMatchObject({ read: expected.length, inserted: expected.length, rejected: 0 });
    expect(rows('SELECT * FROM t ORDER BY rowid')).toEqual(expected);
  });

  it('--max-record-bytes: a runaway quoted field is cut there, its first line rejected, reading resumes at the next line', async () => {
    const body = Array.from({ length: 400 }, (_, i) => `${i + 3},name-${i + 3}`);
    const text = ['id,name', '1,ok', '2,"runaway', ...body, ''].join('\n');
    const result = await ingest('runaway.csv', text, ['--max-record-bytes', '1024']);
    expect(summaryOf(result)).toMatchObject({ read: 402, inserted: 401, rejected: 1 });
    expect(rejects()).toEqual([
      expect.objectContaining({
        line: 3,
        raw: '2,"runaway',
        error: expect.stringMatching(/--max-record-bytes \(1024\)/),
      }),
    ]);
    expect(rows<{ n: number }>('SELECT count(*) AS n FROM t')).toEqual([{ n: 401 }]);
  });

  it('--max-record-bytes: an over-long line is rejected (its first KiB kept) and the next line is read', async () => {
    const long = `2,${'x'.repeat(5000)}`;
    const result = await ingest('long.csv', `id,name\n1,a\n${long}\n3,c\n`, ['--max-record-bytes', '1000']);
    expect(summaryOf(result)).toMatchObject({ read: 3, inserted: 2, rejected: 1 });
    const [reject] = rejects();
    expect(reject).toMatchObject({ line: 3, raw: long.slice(0, 1024) });
    expect(reject?.error).toMatch(/record longer than 1000 bytes/);
    expect(rows()).toEqual([
      { id: '1', name: 'a' },
      { id: '3', name: 'c' },
    ]);
  });

  it('NDJSON too: an over-long line is rejected and the next one read', async () => {
    const long = JSON.stringify({ id: 2, text: 'y'.repeat(3000) });
    const result = await ingest('long.ndjson', `{"id":1}\n${long}\n{"id":3}\n`, ['--max-record-bytes', '1000']);
    expect(summaryOf(result)).toMatchObject({ read: 3, inserted: 2, rejected: 1 });
    expect(rejects()[0]).toMatchObject({ line: 2, raw: long.slice(0, 1024) });
  });

  it('a repeated header name is renamed (a, b, a_2), an empty one numbered; both said on stderr', async () => {
    const result = await ingest('dup.csv', 'a,b,a,,b\n1,2,3,4,5\n');
    expect(result.code).toBe(0);
    expect(rows()).toEqual([{ a: '1', b: '2', a_2: '3', column_4: '4', b_2: '5' }]);
    expect(result.stderr).toMatch(/CSV header field 3 "a" is read as column "a_2"/);
    expect(result.stderr).toMatch(/CSV header field 4 "" is read as column "column_4"/);
  });

  it('the trailing newline is not a blank line; blank lines inside are skipped and counted; CRLF is a line end', async () => {
    const plain = await ingest('plain.csv', 'id\n1\n2\n');
    expect(summaryOf(plain)).toMatchObject({ read: 2, inserted: 2, blankLines: 0 });
    const blanks = await ingest('blanks.csv', 'id\r\n1\r\n\r\n2\r\n\r\n', ['--table', 't2']);
    expect(summaryOf(blanks)).toMatchObject({ read: 2, inserted: 2, blankLines: 2 });
    expect(rows<{ id: string }>('SELECT id FROM t2')).toEqual([{ id: '1' }, { id: '2' }]);
  });

  it('.tsv is tab-separated', async () => {
    const result = await ingest('people.tsv', 'id\tname\n1\tada, jr\n');
    expect(summaryOf(result)).toMatchObject({ format: 'csv', read: 1, inserted: 1 });
    expect(rows()).toEqual([{ id: '1', name: 'ada, jr' }]);
  });

  it('a malformed header, or --columns naming a field the header lacks: exit 2, one line', async () => {
    const bad = await ingest('bad.csv', 'id,"name\n1,a\n');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /^sluice: the CSV header \(line 1\) is malformed: the input ends inside a quoted field/m,
    );
    const missing = await ingest('ok.csv', 'id,name\n1,a\n', ['--columns', 'id,city']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--columns names "city", which is not in the CSV header \(id, name\)/);
  });
});
