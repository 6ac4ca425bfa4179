/**
 * What the CLI entry point (`main.ts`) and its commands share: exit codes, the I/O a command
 * writes to, and the usage error. Kept apart from `main.ts` so the dependency runs one way:
 * main imports the commands, and both import this file.
 *
 * Exit codes: 0 success; 1 a mailbox failed (the others still ran); 2 usage or config error.
 */

export const EXIT_OK = 0;
export const EXIT_MAILBOX_FAILED = 1;
export const EXIT_USAGE = 2;

export interface CliIo {
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
}

/** Bad command-line usage: main prints the message and the usage text and exits 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
