/** `mail-ingest replay`: re-send a mailbox's stored metadata to the configured queue. */
import { createAdapters } from "../adapters/index.ts";
import { describeError } from "../errors.ts";
import { type ReplayReport, replayMailbox } from "../ingest/replay.ts";
import { loadSelection, parse } from "./args.ts";
import { type CliIo, EXIT_MAILBOX_FAILED, EXIT_OK, UsageError } from "./io.ts";

export async function replayCommand(args: readonly string[], io: CliIo): Promise<number> {
  const values = parse(args, {
    config: { type: "string", short: "c" },
    mailbox: { type: "string", short: "m" },
    since: { type: "string" },
    json: { type: "boolean", default: false },
  });
  if (values.mailbox === undefined) throw new UsageError("--mailbox ID is required");
  const since = values.since === undefined ? undefined : parseSince(values.since);
  const { config, mailboxes } = await loadSelection(values.config, values.mailbox);
  const mailbox = mailboxes[0]?.id ?? values.mailbox;
  const { store, queue } = await createAdapters(config.storage, config.queue);
  let report: ReplayReport | undefined;
  let error: string | undefined;
  try {
    report = await replayMailbox(mailbox, store, queue, {
      since,
      onWarning: (message) => io.stderr.write(`mail-ingest warning: ${message}\n`),
    });
  } catch (err) {
    error = describeError(err);
  }
  if (values.json === true) {
    io.stdout.write(
      `${JSON.stringify({ ...(report ?? { mailbox }), ...(error ? { error } : {}) })}\n`,
    );
  } else if (report) {
    const { replayed, pointers, older, invalid, found } = report;
    io.stdout.write(
      `${mailbox}: ${replayed} replayed (${pointers} in pointer form) of ${found} stored, ${older} older than --since, ${invalid} unreadable\n`,
    );
  } else {
    io.stdout.write(`${mailbox}: replay failed\n  ERROR ${error}\n`);
  }
  return error === undefined && report?.invalid === 0 ? EXIT_OK : EXIT_MAILBOX_FAILED;
}

/** An ISO-8601 date or instant (`2026-11-30`, `2026-11-30T08:00:00Z`). */
function parseSince(text: string): Date {
  const ms = /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)
    ? Date.parse(text)
    : Number.NaN;
  if (!Number.isFinite(ms)) {
    throw new UsageError(
      `--since: "${text}" is not a date (use e.g. 2026-11-30 or 2026-11-30T08:00:00Z)`,
    );
  }
  return new Date(ms);
}
