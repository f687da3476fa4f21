import { fmt, mib } from './status-line';
import type { RejectStage } from './rejects';
import type { ResumeSummary } from './resume/load';

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
  /** `--resumable`: how the run found the load, what it skipped, and the load's totals over all its runs. */
  resume?: ResumeSummary;
  /**
   * `--disk DIR`: rows an earlier run left in the log (inserted or rejected by this run, first), and rows
   * this run leaves there for the next one. read + replayed = inserted + rejected + kept.
   */
  disk?: { path: string; replayed: number; kept: number };
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
    ...(s.resume === undefined ? [] : resumeLines(s.resume)),
    ...(s.disk === undefined
      ? []
      : [
          `  disk ${s.disk.path}: ${fmt(s.disk.replayed)} row(s) from an earlier run, ${fmt(s.disk.kept)} kept for the next run`,
        ]),
    `  peak buffer ${fmt(s.peakBuffer)}/${fmt(s.maxBuffer)}, peak RSS ${mib(s.peakRssBytes)}, ${(s.durationMs / 1000).toFixed(2)} s, ${fmt(s.rowsPerSecond)} rows/s`,
  ];
  out.write(`${lines.join('\n')}\n`);
}

function resumeLines(r: ResumeSummary): string[] {
  const total = `${fmt(r.total.records)} record(s) in all over ${fmt(r.runs)} run(s), ${fmt(r.total.inserted)} inserted, ${fmt(r.total.rejected)} rejected`;
  const lines =
    r.skipped > 0 || r.fromOffset > 0
      ? [
          `  resumed at line ${fmt(r.fromLine)} (byte ${fmt(r.fromOffset)}): ${fmt(r.skipped)} record(s) committed by earlier runs skipped`,
        ]
      : [];
  if (r.start === 'finished') return [`  nothing to do: the load was finished already, ${total}`];
  lines.push(
    r.finished
      ? `  load finished: ${total}`
      : `  load not finished: ${fmt(r.total.records)} record(s) committed so far over ${fmt(r.runs)} run(s); the same command goes on from there`,
  );
  return lines;
}
