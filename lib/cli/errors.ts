/**
 * Errors the CLI reports to its user: one line on stderr and an exit code,
 * never a stack trace unless `--verbose`.
 */

/** Exit codes of the `sluice` command; documented in docs/cli.md. */
export const ExitCode = {
  OK: 0,
  /** The run failed part-way (database lost, rejects with --fail-on-rejects, an internal error). */
  FAILED: 1,
  /** Bad arguments, or a target (file, database, peer package) that cannot be opened. */
  USAGE: 2,
  SIGINT: 130,
  SIGTERM: 143,
} as const;

export class CliError extends Error {
  override readonly name = 'CliError';
  readonly exitCode: number;
  /**
   * What went wrong, stable unlike the message: `ERR_CLI_USAGE` (exit 2) and `ERR_CLI_FAILED`
   * (exit 1) unless a more precise one is given (`ERR_CLI_BROKER_UNREACHABLE`,
   * `ERR_CLI_BROKER_LOST`, `ERR_CLI_CLIENT_MISSING`; docs/cli.md, "Exit codes").
   */
  readonly code: string;

  constructor(exitCode: number, message: string, cause?: unknown, code?: string) {
    super(message, cause === undefined ? undefined : { cause });
    this.exitCode = exitCode;
    this.code = code ?? (exitCode === ExitCode.USAGE ? 'ERR_CLI_USAGE' : 'ERR_CLI_FAILED');
  }
}

/** A usage error: the user has to change the command line. */
export function usageError(message: string): CliError {
  return new CliError(ExitCode.USAGE, message);
}

/** The message of any thrown value, on one line. */
export function describe(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s*\n\s*/g, ' ');
}

/** The string `code` of an error (`SQLITE_CONSTRAINT`, `23505`, `ECONNREFUSED`), or ''. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : '';
}

/**
 * The optional peer dependencies the CLI loads, with the ranges package.json's `peerDependencies`
 * gives them (spec/cli/peers.spec.ts keeps the two the same): what a missing one's message says to install.
 */
export const PEER_RANGES = {
  'better-sqlite3': '>=12 <13',
  pg: '^8',
  '@nats-io/transport-node': '^3',
  '@nats-io/jetstream': '^3',
  ioredis: '>=5 <7',
  amqplib: '>=0.10 <3',
} as const;

export type Peer = keyof typeof PEER_RANGES;

/**
 * `ERR_CLI_CLIENT_MISSING` (exit 2): `neededFor` needs these packages, and the `npm install` command
 * with their ranges (`npm install pg@"^8"`).
 */
export function clientMissing(neededFor: string, names: readonly Peer[], cause?: unknown): CliError {
  const quoted = names.map((name) => `"${name}"`).join(' and ');
  const install = names.map((name) => `${name}@"${PEER_RANGES[name]}"`).join(' ');
  return new CliError(
    ExitCode.USAGE,
    `${neededFor} needs the ${quoted} package${names.length > 1 ? 's' : ''}: npm install ${install}`,
    cause,
    'ERR_CLI_CLIENT_MISSING',
  );
}

/**
 * Loads an optional peer dependency when it is first needed, so that users of
 * the library alone never install database drivers.
 */
export function loadPeer<T>(name: Peer, neededFor: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(name) as T;
  } catch (error) {
    const missing =
      (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && describe(error).includes(`'${name}'`);
    if (!missing) throw error;
    throw clientMissing(neededFor, [name], error);
  }
}
