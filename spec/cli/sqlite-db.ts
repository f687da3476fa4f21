import BetterSqlite3 from 'better-sqlite3';

/** Reads a table the CLI wrote (the test's own connection, read-only). */
export function selectAll<T>(path: string, sql: string): T[] {
  const db = new BetterSqlite3(path, { readonly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

export function execSql(path: string, sql: string): void {
  const db = new BetterSqlite3(path);
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}
