/** One pass over many mailboxes, a few at a time; shared by `poll`, `demo` and the bench. */
import type { AppConfig, MailboxConfig } from "../config/index.ts";
import { FetchGate } from "../ingest/fetch-gate.ts";
import { pollMailbox } from "../ingest/poll-mailbox.ts";
import type { MailboxReport, SessionDeps, SessionProgress } from "../ingest/types.ts";
import { type ResolveCredentialsDeps, resolveCredentials } from "../secrets/credentials.ts";

export interface PollAllOptions {
  readonly deps: SessionDeps;
  readonly signal?: AbortSignal;
  readonly deadline?: number;
  readonly onProgress?: (progress: SessionProgress) => void;
  /** Where secrets come from; `{env}` sources read `process.env` by default. */
  readonly credentials?: ResolveCredentialsDeps;
}

/**
 * Polls every mailbox once with at most `config.concurrency` sessions in flight, which share one
 * memory bound (fetch-gate.ts). A mailbox whose secret cannot be resolved is reported as failed;
 * it never stops the others.
 */
export async function pollAll(
  config: AppConfig,
  mailboxes: readonly MailboxConfig[],
  options: PollAllOptions,
): Promise<MailboxReport[]> {
  const reports: MailboxReport[] = new Array(mailboxes.length);
  const fetchGate = new FetchGate();
  let next = 0;
  const worker = async () => {
    while (next < mailboxes.length) {
      const index = next++;
      const mailbox = mailboxes[index] as MailboxConfig;
      reports[index] = await pollOne(mailbox, options, fetchGate);
    }
  };
  const workers = Math.min(config.concurrency, mailboxes.length);
  await Promise.all(Array.from({ length: workers }, worker));
  return reports;
}

async function pollOne(
  mailbox: MailboxConfig,
  options: PollAllOptions,
  fetchGate: FetchGate,
): Promise<MailboxReport> {
  const { report } = await pollMailbox(mailbox, options.deps, {
    fetchGate,
    credentials: (m, fresh) => resolveCredentials(m, options.credentials ?? {}, fresh),
    deadline: options.deadline,
    signal: options.signal,
    onProgress: options.onProgress,
  });
  return report;
}
