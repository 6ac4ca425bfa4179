/**
 * The on-disk/on-S3 encoding shared by the state store adapters: a log of operations, each
 * either recording entries or forgetting UIDLs, replayed in order. Decoding validates every field
 * (state files are external data), and any mismatch is STATE_CORRUPT rather than a guess.
 */
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { StateEntry } from "../ports.ts";

export type StateOp =
  | { readonly op: "record"; readonly entries: readonly StateEntry[] }
  | { readonly op: "forget"; readonly uidls: readonly string[] };

const MAILBOX_ID = /^[A-Za-z0-9._-]+$/;

/** Mailbox ids become file and key names, so they are restricted and may not be `.`/`..`. */
export function assertMailboxId(mailbox: string): void {
  if (!MAILBOX_ID.test(mailbox) || mailbox === "." || mailbox === "..") {
    throw new MailIngestError(
      ErrorCode.CONFIG_INVALID,
      `Invalid mailbox id ${JSON.stringify(mailbox)}: use letters, digits, '.', '_' or '-'`,
    );
  }
}

export function applyOp(state: Map<string, StateEntry>, op: StateOp): void {
  if (op.op === "record") {
    for (const entry of op.entries) state.set(entry.uidl, entry);
  } else {
    for (const uidl of op.uidls) state.delete(uidl);
  }
}

/** Copies only the known fields, so callers' extra properties never reach the log. */
export function encodeEntry(entry: StateEntry): StateEntry {
  return {
    uidl: entry.uidl,
    id: entry.id,
    ingestedAt: entry.ingestedAt,
    size: entry.size,
    sha256: entry.sha256,
    ...(entry.messageId === undefined ? {} : { messageId: entry.messageId }),
  };
}

export function encodeOp(op: StateOp): string {
  return JSON.stringify(
    op.op === "record"
      ? { op: "record", entries: op.entries.map(encodeEntry) }
      : { op: "forget", uidls: [...op.uidls] },
  );
}

/** Parses one encoded operation; `where` names its location for the error message. */
export function decodeOp(text: string, where: string): StateOp {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw corrupt(where, "not JSON", err);
  }
  if (!isRecord(value)) throw corrupt(where, "not an object");
  if (value.op === "record" && Array.isArray(value.entries)) {
    return { op: "record", entries: value.entries.map((e) => decodeEntry(e, where)) };
  }
  if (value.op === "forget" && Array.isArray(value.uidls)) {
    return { op: "forget", uidls: value.uidls.map((u) => decodeString(u, where, "uidl")) };
  }
  throw corrupt(where, "unknown operation");
}

export function decodeEntry(value: unknown, where: string): StateEntry {
  if (!isRecord(value)) throw corrupt(where, "entry is not an object");
  const size = value.size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw corrupt(where, "entry size is not a non-negative integer");
  }
  const messageId = value.messageId;
  if (messageId !== undefined && typeof messageId !== "string") {
    throw corrupt(where, "entry messageId is not a string");
  }
  return {
    uidl: decodeString(value.uidl, where, "uidl"),
    id: decodeString(value.id, where, "id"),
    ingestedAt: decodeString(value.ingestedAt, where, "ingestedAt"),
    size,
    sha256: decodeString(value.sha256, where, "sha256"),
    ...(messageId === undefined ? {} : { messageId }),
  };
}

function decodeString(value: unknown, where: string, field: string): string {
  if (typeof value !== "string") throw corrupt(where, `${field} is not a string`);
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function corrupt(where: string, why: string, cause?: unknown): MailIngestError {
  return new MailIngestError(ErrorCode.STATE_CORRUPT, `State ${where}: ${why}`, { cause });
}
