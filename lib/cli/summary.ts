import { fmt, mib } from './status-line';
import type { RejectStage } from './rejects';

/** What `sluice ingest` prints at the end (`--json`: this object on one line). */
export interface IngestSummary {
  status: 'completed' | 'interrupted' | 'failed';
  input: string;
  target: string;
  table: string;
  format: string;
  /** Records read: non-blank lines (NDJSON) or data records (CSV). */
  read: number;
  inserted: number;
  rejected: number;
  rejectedBy: Record<RejectStage, number>;
  rejectsFile: string | undefined;
  /** Rejected records the rejects file refused (a full disk): the run stopped at the first. */
  rejectsUnwritten: number;
  blankLines: number;
  offered: number;
  dropped: number;
  deadLettered: number;
  /** Whether the run created the table; columns it added to the table afterwards, and columns whose type it widened. */
  tableCreated: boolean;
  columnsAdded: number;
  columnsWidened: number;
  peakBuffer: number;
  maxBuffer: number;
  peakRssBytes: number;
  durationMs: number;
  rowsPerSecond: number;
  signal?: NodeJS.Signals;
  error?: string;
  /** A broker input: messages acked (stored or rejected), handed back for redelivery, whose ack failed, skipped as already stored. */
  broker?: { acked: number; handedBack: number; ackFailures: number; duplicates: number };
}

export function printSummary(s: IngestSummary, json: boolean, out: NodeJS.WritableStream): void {
  if (json) {
    out.write(`${JSON.stringify(s)}\n`);
    return;
  }
  const by = Object.entries(s.rejectedBy)
    .filter(([, n]) => n > 0)
    .map(([stage, n]) => `${fmt(n)} ${stage}`)
    .join(', ');
  const changes = [
    ...(s.tableCreated ? ['created'] : []),
    ...(s.columnsAdded > 0 ? [`${fmt(s.columnsAdded)} column(s) added`] : []),
    ...(s.columnsWidened > 0 ? [`${fmt(s.columnsWidened)} widened`] : []),
  ];
  const schema = changes.length === 0 ? [] : [`  table ${s.table}: ${changes.join(', ')}`];
  const unwritten = s.rejectsUnwritten > 0 ? `; ${fmt(s.rejectsUnwritten)} more could not be written` : '';
  const lines = [
    `sluice ingest ${s.status}${s.signal === undefined ? '' : ` (${s.signal})`}: ${s.input} → ${s.target} table ${s.table}`,
    `  read ${fmt(s.read)}, inserted ${fmt(s.inserted)}, rejected ${fmt(s.rejected)}${by === '' ? '' : ` (${by}) → ${s.rejectsFile}`}${unwritten}`,
    ...schema,
    ...(s.broker === undefined
      ? []
      : [
          `  acked ${fmt(s.broker.acked)}, handed back ${fmt(s.broker.handedBack)}, ack failures ${fmt(s.broker.ackFailures)}, duplicates skipped ${fmt(s.broker.duplicates)}`,
        ]),
    `  peak buffer ${fmt(s.peakBuffer)}/${fmt(s.maxBuffer)}, peak RSS ${mib(s.peakRssBytes)}, ${(s.durationMs / 1000).toFixed(2)} s, ${fmt(s.rowsPerSecond)} rows/s`,
  ];
  out.write(`${lines.join('\n')}\n`);
}
