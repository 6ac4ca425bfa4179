/**
 * The use case "poll one mailbox", shared by the CLI (`poll`, `demo`, the bench) and the Lambda
 * poller: resolve the mailbox's credentials, run its session, and say what the result means.
 * Callers differ only in what they do with the outcome: the CLI maps it to an exit code, the
 * poller to the job's fate.
 */
import type { MailboxConfig } from "../config/index.ts";
import { describeError, ErrorCode, isMailIngestError } from "../errors.ts";
import { emptyReport, runMailbox } from "./session.ts";
import type { MailboxReport, SessionCredentials, SessionDeps, SessionOptions } from "./types.ts";

/**
 * - `done`: the session completed (mail may be left over for a later run);
 * - `locked`: another run holds the mailbox's lock; the next run polls it;
 * - `back-off`: the server said so (`[IN-USE]`, `[LOGIN-DELAY]`, RFC 2449 §8.1, RFC 3206); the
 *   next scheduled run retries;
 * - `auth-failed`: credentials were rejected; retrying at once only risks a lockout, so the next
 *   scheduled run retries and someone is told;
 * - `unreachable`: the server could not be reached or stopped answering (connect failure or
 *   timeout, an idle timeout, a dropped connection); nothing of this run is lost (what was
 *   committed stays committed), so the next scheduled run retries;
 * - `retry`: anything else (`[SYS/TEMP]`, TLS, protocol, storage or queue failures).
 */
export type PollOutcome = "done" | "locked" | "back-off" | "auth-failed" | "unreachable" | "retry";

const BACK_OFF_CODES: readonly ErrorCode[] = [ErrorCode.IN_USE, ErrorCode.LOGIN_DELAY];
/**
 * Transport failures. TLS failures are not here: a certificate that does not verify stays wrong
 * until someone fixes it, so it should reach the DLQ and its alarm.
 */
const UNREACHABLE_CODES: readonly ErrorCode[] = [
  ErrorCode.CONNECT_FAILED,
  ErrorCode.CONNECT_TIMEOUT,
  ErrorCode.TIMEOUT,
  ErrorCode.CONNECTION_CLOSED,
];
const AUTH_CODES: readonly ErrorCode[] = [
  ErrorCode.AUTH_FAILED,
  ErrorCode.OAUTH_FAILED,
  ErrorCode.INVALID_CREDENTIAL,
];

/** The one decision table from a session's report to what it means. */
export function classifyOutcome(report: MailboxReport): PollOutcome {
  if (report.lockedBy) return "locked";
  if (report.error === undefined) return "done";
  const code = report.errorCode;
  if (code !== undefined && BACK_OFF_CODES.includes(code)) return "back-off";
  if (code !== undefined && AUTH_CODES.includes(code)) return "auth-failed";
  if (code !== undefined && UNREACHABLE_CODES.includes(code)) return "unreachable";
  return "retry";
}

export interface PollMailboxOptions extends Omit<SessionOptions, "credentials"> {
  /**
   * Resolves the mailbox's secret to a password or an access token; its errors name the mailbox.
   * `fresh` asks for a read past any cache.
   */
  readonly credentials: (mailbox: MailboxConfig, fresh?: boolean) => Promise<SessionCredentials>;
  /** The session runner; the Lambda's tests inject one. @default runMailbox */
  readonly run?: typeof runMailbox;
}

export interface PollResult {
  readonly report: MailboxReport;
  readonly outcome: PollOutcome;
}

/**
 * Polls one mailbox. Never throws: a secret that cannot be resolved is a report with an error,
 * like any session failure, so one bad mailbox never stops the others.
 *
 * A login the server refuses is retried once, and only when a read past the secret cache gives
 * other credentials than the ones refused: the secret was changed while it was cached. So a
 * cache may be long (it saves a KMS decrypt a poll in the Lambda) and still never delays a
 * password change, while the same wrong password is never sent twice (no lockout).
 */
export async function pollMailbox(
  mailbox: MailboxConfig,
  deps: SessionDeps,
  options: PollMailboxOptions,
): Promise<PollResult> {
  const { credentials: resolve, run = runMailbox, ...session } = options;
  const started = Date.now();
  let credentials: SessionCredentials;
  try {
    credentials = await resolve(mailbox);
  } catch (err) {
    const report: MailboxReport = {
      ...emptyReport(mailbox.id),
      durationMs: Date.now() - started,
      // The resolver names the mailbox (resolveCredentials does, through mailboxMessage).
      error: describeError(err),
      errorCode: isMailIngestError(err) ? err.code : undefined,
    };
    return { report, outcome: classifyOutcome(report) };
  }
  const report = await run(mailbox, deps, { ...session, credentials });
  if (report.errorCode !== ErrorCode.AUTH_FAILED)
    return { report, outcome: classifyOutcome(report) };
  let fresh: SessionCredentials;
  try {
    fresh = await resolve(mailbox, true);
  } catch {
    // The refusal is the failure to report; a second lookup failing adds nothing to it.
    return { report, outcome: classifyOutcome(report) };
  }
  if (sameCredentials(fresh, credentials)) return { report, outcome: classifyOutcome(report) };
  const retried = await run(mailbox, deps, { ...session, credentials: fresh });
  retried.warnings.unshift(
    "the server refused the cached credentials; the secret had changed, so the session logged in again with the new value",
  );
  return { report: retried, outcome: classifyOutcome(retried) };
}

function sameCredentials(a: SessionCredentials, b: SessionCredentials): boolean {
  return a.password === b.password && a.accessToken === b.accessToken;
}
