/**
 * Maps POP3 -ERR responses to {@link MailIngestError} codes. RFC 2449 §8 defines the bracketed
 * response codes; RFC 3206 adds SYS/TEMP, SYS/PERM and AUTH.
 */
import { ErrorCode, isMailIngestError, MailIngestError } from "../errors.ts";
import { MAX_ERROR_TEXT } from "./limits.ts";

/** A -ERR from the server: carries the server's text and its parsed response code. */
export class Pop3ServerError extends MailIngestError {
  override readonly name: string = "Pop3ServerError";
  /** The command verb that failed (USER, RETR, …); never its arguments. */
  readonly command: string;
  /** The RFC 2449 response code without brackets, upper case (e.g. "IN-USE", "SYS/TEMP"). */
  readonly responseCode: string | undefined;
  /** The server's text after -ERR and after any response code. */
  readonly serverText: string;

  constructor(
    code: ErrorCode,
    command: string,
    responseCode: string | undefined,
    serverText: string,
  ) {
    const shown =
      serverText.length > MAX_ERROR_TEXT ? `${serverText.slice(0, MAX_ERROR_TEXT)}…` : serverText;
    const tag = responseCode ? `[${responseCode}] ` : "";
    super(code, `POP3 ${command} failed: ${tag}${shown}`);
    this.command = command;
    this.responseCode = responseCode;
    this.serverText = serverText;
  }
}

/** Splits "[CODE] text" (RFC 2449 §8) into its code and text. */
export function parseResponseCode(text: string): { code: string | undefined; text: string } {
  const m = /^\[([^\]\s]+)\]\s?(.*)$/s.exec(text);
  if (!m) return { code: undefined, text };
  return { code: (m[1] ?? "").toUpperCase(), text: m[2] ?? "" };
}

/**
 * The error for a -ERR. Response codes win; otherwise an -ERR during authentication is
 * AUTH_FAILED (RFC 1939 §7: the server rejected the credentials) and anything else is
 * COMMAND_FAILED. Hierarchical codes match on their prefix (RFC 2449 §8: "SYS/TEMP/…").
 */
export function serverError(command: string, text: string, authPhase: boolean): Pop3ServerError {
  const { code, text: rest } = parseResponseCode(text);
  return new Pop3ServerError(mapResponseCode(code, authPhase), command, code, rest);
}

function mapResponseCode(code: string | undefined, authPhase: boolean): ErrorCode {
  const fallback = authPhase ? ErrorCode.AUTH_FAILED : ErrorCode.COMMAND_FAILED;
  if (!code) return fallback;
  const is = (prefix: string) => code === prefix || code.startsWith(`${prefix}/`);
  if (is("IN-USE")) return ErrorCode.IN_USE;
  if (is("LOGIN-DELAY")) return ErrorCode.LOGIN_DELAY;
  if (is("SYS/TEMP")) return ErrorCode.SYS_TEMP;
  if (is("SYS/PERM")) return ErrorCode.SYS_PERM;
  if (is("AUTH")) return ErrorCode.AUTH_FAILED;
  return fallback;
}

const TRANSIENT: readonly ErrorCode[] = [
  ErrorCode.IN_USE,
  ErrorCode.LOGIN_DELAY,
  ErrorCode.SYS_TEMP,
  ErrorCode.TIMEOUT,
  ErrorCode.CONNECTION_CLOSED,
  ErrorCode.CONNECT_FAILED,
  ErrorCode.CONNECT_TIMEOUT,
];

/** True for failures worth retrying later: busy mailbox, temporary server trouble, network. */
export function isTransient(err: unknown): boolean {
  return isMailIngestError(err, ...TRANSIENT);
}

/**
 * RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21-0x7E. The client returns UIDLs as the
 * server sent them; callers that key state on UIDLs use this to decide what to do with the rest.
 */
export function isValidUidl(uidl: string): boolean {
  return /^[\x21-\x7e]{1,70}$/.test(uidl);
}

/** Misuse of the client API by the caller (a bad option or argument); nothing was sent. */
export function usageError(message: string): MailIngestError {
  return new MailIngestError(ErrorCode.INVALID_ARGUMENT, `POP3: ${message}`);
}

/** The server broke the protocol: a response we cannot parse or frame. */
export function protocolError(verb: string, message: string): MailIngestError {
  return new MailIngestError(ErrorCode.PROTOCOL, `POP3 ${verb}: ${message}`);
}
