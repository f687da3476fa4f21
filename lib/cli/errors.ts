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
 * Loads an optional peer dependency when it is first needed, so that users of
 * the library alone never install database drivers.
 */
export function loadPeer<T>(name: string, range: string, neededFor: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(name) as T;
  } catch (error) {
    const missing =
      (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && describe(error).includes(`'${name}'`);
    if (!missing) throw error;
    throw new CliError(ExitCode.USAGE, `${neededFor} needs the "${name}" package: npm install ${name}@"${range}"`);
  }
}
