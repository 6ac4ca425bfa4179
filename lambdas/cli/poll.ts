/** `mail-ingest poll`: one pass, or a polling loop with `--every`. */
import { setTimeout as sleep } from "node:timers/promises";
import { createAdapters } from "../adapters/index.ts";
import type { AppConfig, MailboxConfig } from "../config/index.ts";
import type { MailboxReport, SessionDeps, SessionLogger } from "../ingest/types.ts";
import type { ResolveCredentialsDeps } from "../secrets/credentials.ts";
import { loadSelection, parse, parseDuration } from "./args.ts";
import { cliCredentials } from "./credentials.ts";
import { type CliIo, EXIT_MAILBOX_FAILED, EXIT_OK } from "./io.ts";
import { pollAll } from "./poll-all.ts";
import { preflight } from "./preflight.ts";
import { formatBytes, ProgressView } from "./progress.ts";

export async function pollCommand(args: readonly string[], io: CliIo): Promise<number> {
  const values = parse(args, {
    config: { type: "string", short: "c" },
    mailbox: { type: "string", short: "m" },
    json: { type: "boolean", default: false },
    every: { type: "string" },
  });
  const intervalMs = values.every === undefined ? undefined : parseDuration(values.every);
  const { config, mailboxes } = await loadSelection(values.config, values.mailbox);
  await preflight(config, mailboxes, io.env);
  const json = values.json === true;
  const log = stderrLogger(io);
  // Built once, so a daemon keeps its directory cache and cached OAuth2 tokens between passes.
  const context: PassContext = {
    deps: { ...(await createAdapters(config.storage, config.queue)), log },
    credentials: await cliCredentials(mailboxes, io.env, (message) => log.warn(message)),
    json,
  };

  if (intervalMs === undefined) {
    const reports = await pollPass(config, mailboxes, io, context);
    return reports.some((r) => r.error) ? EXIT_MAILBOX_FAILED : EXIT_OK;
  }

  // Daemon mode: a signal lets the message in flight finish and QUITs so DELEs commit.
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    io.stderr.write(`mail-ingest: ${signal} received, finishing the message in flight\n`);
    stop.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    while (!stop.signal.aborted) {
      await pollPass(config, mailboxes, io, { ...context, signal: stop.signal });
      await sleep(intervalMs, undefined, { signal: stop.signal }).catch(() => {});
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return EXIT_OK;
}

interface PassContext {
  readonly deps: SessionDeps;
  readonly credentials: ResolveCredentialsDeps;
  readonly json: boolean;
  readonly signal?: AbortSignal;
}

async function pollPass(
  config: AppConfig,
  mailboxes: readonly MailboxConfig[],
  io: CliIo,
  context: PassContext,
): Promise<MailboxReport[]> {
  const view = !context.json && io.stderr.isTTY ? new ProgressView(io.stderr) : undefined;
  const reports = await pollAll(config, mailboxes, {
    deps: context.deps,
    credentials: context.credentials,
    signal: context.signal,
    onProgress: view ? (p) => view.update(p) : undefined,
  });
  view?.finish();
  if (context.json) {
    io.stdout.write(`${JSON.stringify({ mailboxes: reports.map(toJson) })}\n`);
  } else {
    for (const r of reports) io.stdout.write(`${summaryLine(r)}\n`);
  }
  return reports;
}

/**
 * The `--json` shape documented in the README. A session that failed before it could list the
 * mailbox has `null` counts of what is on the server: unknown, which a 0 would misstate.
 */
function toJson(r: MailboxReport) {
  const { id, ingested, skipped, failed, deleted, bytes, durationMs, error } = r;
  const known = r.listingComplete === true;
  return {
    id,
    listed: known ? r.listed : null,
    new: known ? r.new : null,
    ingested,
    skipped,
    failed,
    deleted,
    bytes,
    durationMs,
    remaining: known ? r.remaining : null,
    warnings: r.warnings,
    ...(r.lockedBy ? { lockedBy: r.lockedBy } : {}),
    ...(error ? { error, errorCode: r.errorCode } : {}),
  };
}

export function summaryLine(r: MailboxReport): string {
  if (r.lockedBy) {
    const { pid, host, startedAt } = r.lockedBy;
    return `${r.id}: skipped, being polled by another process (pid ${pid} on ${host}, since ${startedAt})`;
  }
  if (r.error !== undefined && r.listingComplete !== true) {
    // Nothing was listed, so no count would be true: say so instead of "0 new of 0 listed".
    return `${r.id}: failed before listing the mailbox, ${(r.durationMs / 1000).toFixed(1)}s\n  ERROR ${r.error}`;
  }
  const head = `${r.id}: ${r.ingested} ingested (${formatBytes(r.bytes)}), ${r.new} new of ${r.listed} listed, ${r.skipped} skipped, ${r.failed} failed, ${r.deleted} deleted, ${r.remaining} left for later, ${(r.durationMs / 1000).toFixed(1)}s`;
  return r.error ? `${head}\n  ERROR ${r.error}` : head;
}

function stderrLogger(io: CliIo): SessionLogger {
  const write = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    const mailbox = typeof fields?.mailbox === "string" ? `${fields.mailbox}: ` : "";
    io.stderr.write(`mail-ingest ${level}: ${mailbox}${message}\n`);
  };
  // Session failures are already in the summary line; printing them here too would say it twice.
  return { debug() {}, info() {}, warn: write("warning"), error() {} };
}
