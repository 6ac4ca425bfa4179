/**
 * One error hierarchy for the whole runtime. Every thrown error carries a stable `code` from
 * {@link ErrorCode}, so callers (CLI exit codes, Lambda back-off, metrics) branch on codes, never
 * on message text. Messages never contain secrets.
 */
export const ErrorCode = {
  // Configuration and usage.
  CONFIG_INVALID: "CONFIG_INVALID",
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

/** A one-line description of any thrown value, for reports and logs. Never includes stacks. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
