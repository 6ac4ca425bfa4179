/**
 * One error hierarchy for the whole runtime. Every thrown error carries a stable `code` from
 * {@link ErrorCode}, so callers (CLI exit codes, Lambda back-off, metrics) branch on codes, never
 * on message text. Messages never contain secrets.
 */
import { httpStatus } from "./util/aws-errors.ts";

export const ErrorCode = {
  // Configuration and usage.
  CONFIG_INVALID: "CONFIG_INVALID",
  /** A caller passed an argument the API does not accept (a programming error, not config). */
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  /** A jobs-queue message body that can never be processed (a poison message for the DLQ). */
  JOB_INVALID: "JOB_INVALID",
  SECRET_UNRESOLVED: "SECRET_UNRESOLVED",
  // Transport.
  CONNECT_FAILED: "CONNECT_FAILED",
  CONNECT_TIMEOUT: "CONNECT_TIMEOUT",
  TIMEOUT: "TIMEOUT",
  CONNECTION_CLOSED: "CONNECTION_CLOSED",
  TLS_FAILED: "TLS_FAILED",
  STARTTLS_UNAVAILABLE: "STARTTLS_UNAVAILABLE",
  // POP3 protocol.
  PROTOCOL: "PROTOCOL",
  LINE_TOO_LONG: "LINE_TOO_LONG",
  SIZE_MISMATCH: "SIZE_MISMATCH",
  COMMAND_FAILED: "COMMAND_FAILED",
  INSECURE_AUTH: "INSECURE_AUTH",
  INVALID_CREDENTIAL: "INVALID_CREDENTIAL",
  AUTH_UNSUPPORTED: "AUTH_UNSUPPORTED",
  AUTH_FAILED: "AUTH_FAILED",
  // IMAP.
  /** A configured folder (or afterIngest's moveTo) does not exist on the server. */
  FOLDER_NOT_FOUND: "FOLDER_NOT_FOUND",
  /** The server lacks what a configured action needs (UIDPLUS for delete, keywords for a flag). */
  SERVER_UNSUPPORTED: "SERVER_UNSUPPORTED",
  // RFC 2449 §8 / RFC 3206 extended response codes.
  IN_USE: "IN_USE",
  LOGIN_DELAY: "LOGIN_DELAY",
  SYS_TEMP: "SYS_TEMP",
  SYS_PERM: "SYS_PERM",
  // Storage, queue and state.
  STORE_FAILED: "STORE_FAILED",
  QUEUE_FAILED: "QUEUE_FAILED",
  STATE_CORRUPT: "STATE_CORRUPT",
  // Message handling.
  MESSAGE_TOO_LARGE: "MESSAGE_TOO_LARGE",
  /** A download abandoned because the session's deadline came first. */
  DEADLINE: "DEADLINE",
  PARSE_FAILED: "PARSE_FAILED",
  MIME_LIMIT: "MIME_LIMIT",
  // OAuth2.
  OAUTH_FAILED: "OAUTH_FAILED",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class MailIngestError extends Error {
  override readonly name: string = "MailIngestError";
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** True when `err` is a {@link MailIngestError}, optionally with one of the given codes. */
export function isMailIngestError(err: unknown, ...codes: ErrorCode[]): err is MailIngestError {
  return err instanceof MailIngestError && (codes.length === 0 || codes.includes(err.code));
}

/** Causes followed by {@link describeError}; real chains are 2–4 deep, this only stops cycles and runaway wrapping. */
const MAX_CAUSE_DEPTH = 8;

/**
 * A one-line description of any thrown value and its `cause` chain, for reports and logs:
 * `S3 failed to get state/a/snapshot.json: NoSuchBucket: The specified bucket does not exist`.
 * A segment already contained in the text so far (a wrapper that quoted its cause) is said once.
 * Never includes stacks.
 */
export function describeError(err: unknown): string {
  let text = "";
  const seen = new Set<unknown>();
  let current: unknown = err;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH; depth += 1) {
    if (current === undefined || current === null || seen.has(current)) break;
    seen.add(current);
    const segment = describeOne(current);
    if (segment !== "" && !text.includes(segment))
      text = text === "" ? segment : `${text}: ${segment}`;
    current = current instanceof Error ? current.cause : undefined;
  }
  return text;
}

/** One error, without its cause. */
function describeOne(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // JSON.parse messages quote the text around the fault, which may be a password or a token.
  if (err instanceof SyntaxError) return "SyntaxError";
  // Happy-eyeballs connects (Node ≥ 20) fail with an AggregateError whose own message is empty.
  if (err.message === "" && err instanceof AggregateError) {
    const parts = [...new Set(err.errors.map(describeOne))].filter((p) => p !== "");
    if (parts.length > 0) return parts.join("; ");
  }
  const message = err.message;
  if (isServiceError(err)) {
    // AWS SDK service exceptions: the name is the service's error code (NoSuchBucket,
    // QueueDoesNotExist), the one word an operator searches for. A bodyless response (HEAD)
    // has the message "UnknownError", which says nothing that the HTTP status does not.
    const status = httpStatus(err);
    const detail =
      message === "" || message === "UnknownError" ? (status ? `HTTP ${status}` : "") : message;
    if (detail === "" || detail.startsWith(err.name)) return detail || err.name;
    return `${err.name}: ${detail}`;
  }
  // Node system errors already carry their code: "connect ECONNREFUSED 127.0.0.1:4566",
  // "ENOSPC: no space left on device, write".
  if (message !== "") return message;
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === "string" ? code : err.name;
}

function isServiceError(err: Error): boolean {
  return "$fault" in err && "$metadata" in err && err.name !== "Error";
}

/**
 * The one way a message is said to concern a mailbox: `mailbox <id>: <message>`. Credential errors
 * ({@link resolveCredentials}) and mailbox reports use it, so a message names its mailbox once.
 */
export function mailboxMessage(mailboxId: string, message: string): string {
  return `mailbox ${mailboxId}: ${message}`;
}
