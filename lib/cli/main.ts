#!/usr/bin/env node
import { resolve } from 'node:path';
import { parseDemoArgs, parseIngestArgs, parsePublishArgs } from './args';
import { ingestFromBroker } from './broker-ingest';
import { demo } from './demo';
import { CliError, ExitCode, describe } from './errors';
import { ingest } from './ingest';
import { publish } from './publish';
import type { Io } from './ingest';

/** docs/cli.md ships in the package (package.json "files"), next to dist/: its path works in a clone and once installed. */
const DOCS = resolve(__dirname, '..', '..', 'docs', 'cli.md');

const USAGE = `Usage:
  sluice ingest [FILE|-] --into sqlite:PATH|postgres://URL --table NAME [options]
  sluice ingest BROKER-URL --into sqlite:PATH|postgres://URL --table NAME [options]
  sluice publish [FILE|-] --into BROKER-URL [options]
  sluice demo [--events N] [--db PATH]

BROKER-URL (ingest: what to consume; publish: where to send):
  nats://[USER:PASS@]HOST[:PORT]/STREAM?consumer=NAME[&ack-wait-ms=N]   (publish: /SUBJECT)
  redis://[USER:PASS@]HOST[:PORT]/STREAM?group=G&consumer=C[&db=N&claim-idle-ms=N]
  amqp://[USER:PASS@]HOST[:PORT]/QUEUE[?vhost=V]

ingest options:
  --format ndjson|csv        input format (default: from the extension, else ndjson; .tsv is tab-separated)
  --columns a,b,c            only these fields, as these columns (default: every field; new ones add columns)
  --strict-schema            the first record fixes columns and types; other fields and types are rejects
  --strategy NAME            block (default), drop_oldest, drop_newest, sample
  --batch-size auto|N        rows per transaction: auto adapts it to the database's
                             measured throughput between 100 and 10,000, at most
                             0.4 x --max-buffer (default); N fixes it, at most 0.8 x
                             --max-buffer with block (where reading pauses), else --max-buffer
  --max-buffer N             rows held at most (default 10000)
  --max-buffer-bytes N       bytes held at most (default: no byte bound)
  --max-record-bytes N       a longer line/record is rejected (default 16777216, 16 MiB)
  --rejects FILE             where rejected records go (default sluice-rejects.ndjson), emptied at the start
  --rejects-append           append to the rejects file instead
  --shutdown-timeout MS      on SIGINT/SIGTERM, time left to insert what was read (default 10000)
  --retries N                retries of a batch that failed for a reason that may pass (deadlock,
                             serialization failure, lock or statement timeout), with backoff (default 1)
  --fail-on-rejects          exit 1 when any record was rejected
  --pg-method copy|insert    how a batch goes into PostgreSQL (default copy; insert with --dedupe)
  --resumable                each batch commits with the load's progress (table sluice_progress); after a
                             crash the same command goes on from there: every line stored or rejected once
  --restart                  with --resumable: forget the progress, load the file from its first line
  --disk DIR                 stdin (NDJSON): rows read are kept in a write-ahead log in DIR until inserted;
                             the next run with the same --disk inserts first what a crash left there
ingest from a broker (each message acked once its batch is stored; --max-buffer = messages held unacked):
  --dedupe                   store each message once: its broker identity goes into a unique column
  --id-column NAME           that column (default broker_id)
  --idle-exit MS             exit 0 once no message arrived for MS and none is held (default: run until a signal)
  --reconnect-timeout MS     give up (exit 1) when the broker stays unreachable this long (default 30000)
publish options:
  --id-field NAME            the message id is this field's value (default RUN:LINE); dedupe key downstream
  --retries N                retries of a batch the broker refused, with backoff (default 5)
  --batch-size N             messages per publish batch (default 500, or 0.4 x --max-buffer if less);
                             at most 0.8 x --max-buffer, where reading pauses
  --rejects FILE, --rejects-append, --max-record-bytes N, --shutdown-timeout MS, --reconnect-timeout MS: as above
common options:
  --status-interval MS       time between status lines (default 100 on a TTY, 2000 otherwise)
  -q, --quiet                no status line
  --json                     print the final summary as JSON
  --verbose                  stack traces on errors
  -h, --help                 this help

sqlite:PATH and sqlite://PATH are relative to the working directory; sqlite:///PATH is absolute.
Exit codes: 0 done, 1 failed (see message), 2 usage error, or a target or broker unreachable at start, 130 SIGINT, 143 SIGTERM.
Docs: ${DOCS}`;

export async function main(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'ingest': {
      const options = parseIngestArgs(rest);
      if (options === undefined) return help(io);
      return options.broker === undefined ? ingest(options, io) : ingestFromBroker(options, io);
    }
    case 'publish': {
      const options = parsePublishArgs(rest);
      if (options === undefined) return help(io);
      return publish(options, io);
    }
    case 'demo': {
      const options = parseDemoArgs(rest);
      if (options === undefined) return help(io);
      return demo(options, io);
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      return help(io, command === undefined ? ExitCode.USAGE : ExitCode.OK);
    default:
      throw new CliError(
        ExitCode.USAGE,
        `unknown command ${JSON.stringify(command)}: use ingest, publish or demo (sluice --help)`,
      );
  }
}

function help(io: Io, code: number = ExitCode.OK): number {
  (code === ExitCode.OK ? io.out : io.err).write(`${USAGE}\n`);
  return code;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const verbose = argv.includes('--verbose');
  main(argv, { out: process.stdout, err: process.stderr, stdin: process.stdin }).then(
    (code) => exit(code),
    (error: unknown) => {
      const code = error instanceof CliError ? error.exitCode : ExitCode.FAILED;
      process.stderr.write(`sluice: ${describe(error)}\n`);
      if (verbose)
        process.stderr.write(
          `${error instanceof Error ? (error.stack ?? '') : ''}\n${error instanceof Error && error.cause instanceof Error ? `caused by: ${error.cause.stack ?? ''}\n` : ''}`,
        );
      exit(code);
    },
  );
}

/**
 * Sets the exit code and lets the loop empty, so stdout is flushed even into a
 * pipe; a driver handle that lingers gets one second before a hard exit.
 */
function exit(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 1000).unref();
}
