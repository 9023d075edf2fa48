/** How a command fails: one line on stderr and the exit code (1: the operation failed, 2: usage). */

export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** A mistake on the command line: an unknown flag or command, a missing or bad value. Exit code 2. */
export class UsageError extends CliError {
  override name = "UsageError";
  constructor(message: string) {
    super(message, 2);
  }
}
