import { join } from 'node:path';
import { Client } from 'pg';
import { readRejects, runCli, summaryOf, tempDir } from './helpers';
import { describePg, uniqueTable } from './pg-server';
import { execSql, selectAll } from './sqlite-db';

/**
 * Heterogeneous NDJSON, as real logs are: fields that appear late, values that
 * change type (integer → real, integer → text, boolean → integer), nested values,
 * nulls. Batches of 25, so most changes reach a table that already holds rows.
 */
const COUNT = 600;

function record(i: number): Record<string, unknown> {
  const r: Record<string, unknown> = {
    id: i,
    n: i < 200 ? 0 : 0.5, // integer, then real
    code: i < 300 ? i : i === 400 ? '00501' : `E-${i}`, // integer, then text (one that looks like a number)
    nested: i % 7 === 0 ? null : { tags: [i % 3], deep: { ok: i % 2 === 0 } },
    flag: i === 450 ? 2 : i % 2 === 0, // boolean, then an integer
    mixed: i < 100 ? { k: i } : `s${i}`, // JSON, then a plain string
    never: null,
  };
  if (i >= 250) r.late = `late-${i}`; // a key first seen at record 250
  if (i >= 350) r.maybe = 3.25; // null (absent) until 350
  return r;
}

function heterogeneous(): string {
  let text = '';
  for (let i = 1; i <= COUNT; i++) text += `${JSON.stringify(record(i))}\n`;
  return text;
}

const ARGS = ['--batch-size', '25', '--json', '-q'];

describe('schema evolution into SQLite', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tempDir()));
  afterEach(() => cleanup());

  const ingest = (table: string, input: string, extra: string[] = []) =>
    runCli(
      [
        'ingest',
        '-',
        '--into',
        `sqlite:${join(dir, 'out.db')}`,
        '--table',
        table,
        '--rejects',
        join(dir, 'rejects.ndjson'),
        ...ARGS,
        ...extra,
      ],
      dir,
      input,
    );

  it('stores every record: late keys add columns, types follow the values, nested values are JSON text', async () => {
    const result = await ingest('events', heterogeneous());
    expect(result.code).toBe(0);
    expect(summaryOf(result)).toMatchObject({ read: COUNT, inserted: COUNT, rejected: 0, tableCreated: true });

    const db = join(dir, 'out.db');
    const columns = selectAll<{ name: string; type: string }>(db, "SELECT name, type FROM pragma_table_info('events')");
    // Declared with the first value's type; "code" was rebuilt as TEXT (so it moved to the end) when "00501" came.
    expect(columns).toEqual([
      { name: 'id', type: 'INTEGER' },
      { name: 'n', type: 'INTEGER' },
      { name: 'nested', type: 'TEXT' },
      { name: 'flag', type: 'INTEGER' },
      { name: 'mixed', type: 'TEXT' },
      { name: 'late', type: 'TEXT' },
      { name: 'maybe', type: 'REAL' },
      { name: 'code', type: 'TEXT' },
      { name: 'never', type: '' },
    ]);
    const rows = selectAll<Record<string, unknown>>(db, 'SELECT * FROM events ORDER BY id');
    expect(rows).toHaveLength(COUNT);
    rows.forEach((row, index) => {
      const r = record(index + 1);
      expect(row).toEqual({
        id: r.id,
        n: r.n,
        code: String(r.code),
        nested: r.nested === null ? null : JSON.stringify(r.nested),
        flag: r.flag === true ? 1 : r.flag === false ? 0 : r.flag,
        mixed: typeof r.mixed === 'string' ? r.mixed : JSON.stringify(r.mixed),
        never: null,
        late: r.late ?? null,
        maybe: r.maybe ?? null,
      });
    });
    expect(selectAll(db, 'SELECT typeof(n) AS t, count(*) AS c FROM events GROUP BY 1 ORDER BY 1')).toEqual([
      { t: 'integer', c: 199 },
      { t: 'real', c: COUNT - 199 },
    ]);
  });

  it('a string SQLite would read as a number makes the column TEXT; other strings are stored as they are', async () => {
    const lines = ['{"zip":501,"status":200}', '{"zip":"00501","status":"timeout"}', '{"zip":7,"status":404}'];
    const result = await ingest('t', lines.join('\n'), ['--batch-size', '1']);
    expect(summaryOf(result)).toMatchObject({ read: 3, inserted: 3, columnsWidened: 1 });
    expect(selectAll(join(dir, 'out.db'), 'SELECT zip, typeof(zip) AS z, status, typeof(status) AS s FROM t')).toEqual([
      { zip: '501', z: 'text', status: 200, s: 'integer' },
      { zip: '00501', z: 'text', status: 'timeout', s: 'text' },
      { zip: '7', z: 'text', status: 404, s: 'integer' },
    ]);
  });

  it('an existing table is extended, never dropped: its rows, index and other columns are kept', async () => {
    const db = join(dir, 'out.db');
    execSql(
      db,
      `CREATE TABLE events (id INTEGER PRIMARY KEY, note TEXT NOT NULL DEFAULT 'x');
       CREATE INDEX events_note ON events (note);
       INSERT INTO events (id, note) VALUES (-1, 'before'), (0, 'before')`,
    );
    const result = await ingest('events', heterogeneous());
    expect(summaryOf(result)).toMatchObject({ read: COUNT, inserted: COUNT, rejected: 0, tableCreated: false });
    expect(selectAll(db, 'SELECT id, note FROM events WHERE id <= 1 ORDER BY id')).toEqual([
      { id: -1, note: 'before' },
      { id: 0, note: 'before' },
      { id: 1, note: 'x' },
    ]);
    expect(selectAll(db, 'SELECT count(*) AS n FROM events')).toEqual([{ n: COUNT + 2 }]);
    expect(selectAll(db, "SELECT name FROM sqlite_schema WHERE type = 'index' AND name = 'events_note'")).toHaveLength(
      1,
    );
  });

  it('--strict-schema keeps the first record’s columns and types: the rest are rejects, and the sum holds', async () => {
    const result = await ingest('events', heterogeneous(), ['--strict-schema']);
    expect(result.code).toBe(0);
    const summary = summaryOf(result);
    expect(summary.inserted + summary.rejected).toBe(COUNT);
    expect(summary.rejected).toBeGreaterThan(0);
    const rejects = readRejects(join(dir, 'rejects.ndjson'));
    expect(rejects).toHaveLength(summary.rejected);
    expect(rejects.some((r) => r.stage === 'parse' && /field "late" is not a column/.test(r.error))).toBe(true);
    expect(
      rejects.some((r) => r.stage === 'database' && /cannot store REAL value in INTEGER column/.test(r.error)),
    ).toBe(true);
  });

  it('field names differing only in case are one SQLite column; a record with both is a reject', async () => {
    const lines = ['{"Name":"a"}', '{"name":"b"}', '{"NAME":"c","name":"d"}'];
    const result = await ingest('t', lines.join('\n'));
    expect(summaryOf(result)).toMatchObject({ read: 3, inserted: 2, rejected: 1 });
    expect(selectAll(join(dir, 'out.db'), 'SELECT * FROM t')).toEqual([{ Name: 'a' }, { Name: 'b' }]);
    expect(readRejects(join(dir, 'rejects.ndjson'))).toEqual([
      expect.objectContaining({
        line: 3,
        stage: 'parse',
        error: 'fields "NAME" and "name" name the same column in the target',
      }),
    ]);
  });
});

describePg('schema evolution into PostgreSQL', (url) => {
  let admin: Client;
  let dir: string;
  let cleanup: () => void;
  const tables: string[] = [];
  const table = (): string => {
    const name = uniqueTable();
    tables.push(name);
    return name;
  };

  beforeAll(async () => {
    admin = new Client({ connectionString: url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin.end();
  });
  beforeEach(() => ({ dir, cleanup } = tempDir()));
  afterEach(async () => {
    cleanup();
    for (const name of tables.splice(0)) await admin.query(`DROP TABLE IF EXISTS ${name}`);
  });

  const ingest = (name: string, input: string, extra: string[] = []) =>
    runCli(
      ['ingest', '-', '--into', url, '--table', name, '--rejects', join(dir, 'rejects.ndjson'), ...ARGS, ...extra],
      dir,
      input,
    );

  const columnsOf = async (name: string) =>
    (
      await admin.query(
        'SELECT column_name AS name, data_type AS type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
        [name],
      )
    ).rows as { name: string; type: string }[];

  it.each(['copy', 'insert'])(
    '--pg-method %s: stores every record; columns added and types widened in place (bigint → double precision → text, jsonb)',
    async (method) => {
      const name = table();
      const result = await ingest(name, heterogeneous(), ['--pg-method', method]);
      expect(result.code).toBe(0);
      expect(summaryOf(result)).toMatchObject({ read: COUNT, inserted: COUNT, rejected: 0, tableCreated: true });
      expect(await columnsOf(name)).toEqual([
        { name: 'id', type: 'bigint' },
        { name: 'n', type: 'double precision' },
        { name: 'code', type: 'text' },
        { name: 'nested', type: 'jsonb' },
        { name: 'flag', type: 'bigint' },
        { name: 'mixed', type: 'jsonb' },
        { name: 'late', type: 'text' },
        { name: 'maybe', type: 'double precision' },
        { name: 'never', type: 'text' },
      ]);
      const { rows } = await admin.query(
        `SELECT id::int AS id, n, code, nested, flag::int AS flag, mixed::text AS mixed, late, maybe, never FROM ${name} ORDER BY id`,
      );
      expect(rows).toHaveLength(COUNT);
      rows.forEach((row: Record<string, unknown>, index: number) => {
        const r = record(index + 1);
        expect(row).toEqual({
          id: r.id,
          n: r.n,
          code: String(r.code),
          nested: r.nested,
          flag: r.flag === true ? 1 : r.flag === false ? 0 : r.flag,
          // jsonb: an object, or a later plain string stored as a JSON string (not parsed).
          mixed: typeof r.mixed === 'string' ? JSON.stringify(r.mixed) : JSON.stringify(r.mixed).replace(':', ': '),
          late: r.late ?? null,
          maybe: r.maybe ?? null,
          never: null,
        });
      });
    },
  );

  it('an existing table is extended in place: rows, key, index kept; a column widened keeps its values', async () => {
    const name = table();
    await admin.query(`CREATE TABLE ${name} (id BIGINT PRIMARY KEY, n BIGINT, note TEXT DEFAULT 'x')`);
    await admin.query(`CREATE INDEX ${name}_n ON ${name} (n)`);
    await admin.query(`INSERT INTO ${name} (id, n, note) VALUES (-1, 7, 'before')`);
    const result = await ingest(name, heterogeneous());
    expect(summaryOf(result)).toMatchObject({ read: COUNT, inserted: COUNT, rejected: 0, tableCreated: false });
    expect((await columnsOf(name)).slice(0, 4)).toEqual([
      { name: 'id', type: 'bigint' },
      { name: 'n', type: 'double precision' },
      { name: 'note', type: 'text' },
      { name: 'code', type: 'text' },
    ]);
    const { rows } = await admin.query(`SELECT id::int AS id, n, note FROM ${name} WHERE id <= 1 ORDER BY id`);
    expect(rows).toEqual([
      { id: -1, n: 7, note: 'before' },
      { id: 1, n: 0, note: 'x' },
    ]);
    const { rows: indexes } = await admin.query('SELECT indexname FROM pg_indexes WHERE tablename = $1 ORDER BY 1', [
      name,
    ]);
    expect(indexes).toEqual([{ indexname: `${name}_n` }, { indexname: `${name}_pkey` }]);
    // The key still refuses a duplicate: the table was altered, not replaced.
    const again = await ingest(name, '{"id":1}\n');
    expect(summaryOf(again)).toMatchObject({ read: 1, inserted: 0, rejected: 1, rejectedBy: { database: 1 } });
  });
});
