/**
 * `mail-ingest` command line. Commands are imported lazily so `--help` and `check` start fast.
 *
 * Exit codes: 0 success; 1 a mailbox failed (the others still ran); 2 usage or config error.
 */
import { ConfigError } from "../config/index.ts";
import { type CliIo, EXIT_OK, EXIT_USAGE, UsageError } from "./io.ts";

const USAGE = `Usage:
  mail-ingest poll  --config FILE [--mailbox ID] [--json] [--every DURATION]
  mail-ingest check --config FILE [--mailbox ID]
  mail-ingest replay --config FILE --mailbox ID [--since DATE] [--json]
  mail-ingest demo  [--dir DIR]
  mail-ingest oauth login --provider microsoft --tenant TENANT --client-id ID [--client-secret S]
                          [--authority URL] [--scope "..."] [--out FILE [--force] | --secret-id NAME | --ssm-parameter NAME]
  mail-ingest oauth login --provider google --client-id ID --client-secret S [--authority URL] [--scope "..."] [...]

Commands:
  poll    Fetch new mail from each mailbox, store it and queue its metadata.
          --every 60s keeps polling (daemon mode) until SIGINT/SIGTERM.
  check   Connect and log in to each mailbox; show capabilities and counts. Fetches nothing.
  replay  Re-send a mailbox's stored metadata (meta/) to the configured queue, in pointer form
          where a message exceeds the queue's size limit; --since keeps messages ingested at or
          after DATE (e.g. 2026-11-30 or 2026-11-30T08:00:00Z). Contacts no mail server.
  demo    Start a built-in POP3 test server with sample mail and poll it into ./mail-ingest-data.
  oauth   Sign in (Microsoft device code, Google loopback + PKCE) and store the refresh-token secret.

Exit codes: 0 ok, 1 a mailbox failed, 2 usage or config error.`;

export async function main(argv: readonly string[], io?: Partial<CliIo>): Promise<number> {
  const full: CliIo = {
    stdout: io?.stdout ?? process.stdout,
    stderr: io?.stderr ?? process.stderr,
    env: io?.env ?? process.env,
    cwd: io?.cwd ?? process.cwd(),
  };
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "poll":
        return await (await import("./poll.ts")).pollCommand(rest, full);
      case "check":
        return await (await import("./check.ts")).checkCommand(rest, full);
      case "replay":
        return await (await import("./replay.ts")).replayCommand(rest, full);
      case "demo":
        return await (await import("./demo.ts")).demoCommand(rest, full);
      case "oauth":
        return await (await import("./oauth-login.ts")).oauthCommand(rest, full);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        full.stdout.write(`${USAGE}\n`);
        return command === undefined ? EXIT_USAGE : EXIT_OK;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      full.stderr.write(`mail-ingest: ${err.message}\n`);
      if (err instanceof UsageError) full.stderr.write(`\n${USAGE}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
}
