/**
 * The on-disk/on-S3 encoding shared by the state store adapters: a log of operations, each
 * either recording entries or forgetting UIDLs, replayed in order. Decoding validates every field
 * (state files are external data): a damaged operation keeps what is valid and reports the rest,
 * so one bad line or object costs a few re-fetches instead of the mailbox (see {@link salvageOp}).
 */

import { isValidMailboxId } from "../config/schema.ts";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { StateEntry } from "../ports.ts";
import { isRecord } from "../util/is-record.ts";

export type StateOp =
  | { readonly op: "record"; readonly entries: readonly StateEntry[] }
  | { readonly op: "forget"; readonly uidls: readonly string[] };

/** Mailbox ids become file and key names: the config's one rule ({@link isValidMailboxId}) guards them. */
export function assertMailboxId(mailbox: string): void {
  if (!isValidMailboxId(mailbox)) {
    throw new MailIngestError(
      ErrorCode.CONFIG_INVALID,
      `Invalid mailbox id ${JSON.stringify(mailbox)}: use 1-64 letters, digits, '.', '_' or '-'`,
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

/**
 * What a stored operation still says after decoding. State files are external data that a torn
 * disk, a full disk or a hand edit can damage, so decoding never guesses: every field is checked,
 * what is valid is kept (`op`) and what is not is described (`damage`).
 */
export interface Salvaged {
  /** The readable part: the valid entries or UIDLs, or null when nothing could be read. */
  readonly op: StateOp | null;
  /** What could not be read, or null when the operation is intact. */
  readonly damage: Damage | null;
}

export interface Damage {
  /** The first problem found, e.g. "not JSON" or "entry 2: size is not a non-negative integer". */
  readonly why: string;
  /** The operation's kind when it is readable. */
  readonly kind: "record" | "forget" | "unknown";
  /** Entries (record) or UIDLs (forget) that could not be read; null when even that is unknown. */
  readonly lost: number | null;
  /** How many the operation held in all; null when unknown. */
  readonly total: number | null;
}

/** Decodes one encoded operation, keeping its valid entries or UIDLs and describing the rest. */
export function salvageOp(text: string): Salvaged {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return unreadable("unknown", "not JSON");
  }
  if (!isRecord(value)) return unreadable("unknown", "not an object");
  if (value.op === "record") {
    if (!Array.isArray(value.entries)) return unreadable("record", "entries is not an array");
    const { entries, lost, why } = salvageEntries(value.entries);
    const op: StateOp = { op: "record", entries };
    return { op, damage: why === null ? null : damage("record", why, lost, value.entries.length) };
  }
  if (value.op === "forget") {
    if (!Array.isArray(value.uidls)) return unreadable("forget", "uidls is not an array");
    const uidls: string[] = [];
    let why: string | null = null;
    for (const [i, uidl] of value.uidls.entries()) {
      if (typeof uidl === "string") uidls.push(uidl);
      else why ??= `uidl ${i + 1} is not a string`;
    }
    const lost = value.uidls.length - uidls.length;
    const op: StateOp = { op: "forget", uidls };
    return { op, damage: why === null ? null : damage("forget", why, lost, value.uidls.length) };
  }
  return unreadable("unknown", "unknown operation");
}

/** Decodes a list of entries, keeping the valid ones; `why` is the first problem, if any. */
export function salvageEntries(values: readonly unknown[]): {
  entries: StateEntry[];
  lost: number;
  why: string | null;
} {
  const entries: StateEntry[] = [];
  let why: string | null = null;
  for (const [i, value] of values.entries()) {
    const entry = readEntry(value);
    if (typeof entry === "string") why ??= `entry ${i + 1}: ${entry}`;
    else entries.push(entry);
  }
  return { entries, lost: values.length - entries.length, why };
}

/** Messages re-fetched because their state was lost get the same ids again (ingest/keys.ts). */
const SAFE = "under the same ids, which consumers dedupe";

/**
 * The warning for a damaged operation at `where` (`file:line`, or an object key): what was
 * skipped, and what that costs. Lost record entries are UIDLs this store no longer knows, so
 * those messages are fetched again if the server still lists them (hence "up to"). Lost forget
 * UIDLs come back as known; they were forgotten because they vanished from the server (or were
 * deleted there), so the next poll finds them missing again and forgets them anew, and nothing
 * is fetched or deleted because of them.
 */
export function describeDamage(where: string, damage: Damage): string {
  const { why, lost, total } = damage;
  if (damage.kind === "record" && lost !== null && total !== null) {
    return `state ${where}: ${lost} of ${total} recorded entries unreadable (${why}), skipped; up to ${lost} message(s) may be fetched again ${SAFE}`;
  }
  if (damage.kind === "forget" && lost !== null && total !== null) {
    return `state ${where}: ${lost} of ${total} forgotten UIDLs unreadable (${why}), skipped; they count as known until the next poll sees them gone, and no message is fetched again`;
  }
  return `state ${where}: unreadable (${why}), skipped; an unknown number of messages may be fetched again ${SAFE}`;
}

function damage(kind: Damage["kind"], why: string, lost: number | null, total: number | null) {
  return { kind, why, lost, total };
}

function unreadable(kind: Damage["kind"], why: string): Salvaged {
  return { op: null, damage: damage(kind, why, null, null) };
}

/** One validated entry, or why it is not one. */
function readEntry(value: unknown): StateEntry | string {
  if (!isRecord(value)) return "not an object";
  const { uidl, id, ingestedAt, size, sha256, messageId } = value;
  if (typeof uidl !== "string") return "uidl is not a string";
  if (typeof id !== "string") return "id is not a string";
  if (typeof ingestedAt !== "string") return "ingestedAt is not a string";
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    return "size is not a non-negative integer";
  }
  if (typeof sha256 !== "string") return "sha256 is not a string";
  if (messageId !== undefined && typeof messageId !== "string") {
    return "messageId is not a string";
  }
  return { uidl, id, ingestedAt, size, sha256, ...(messageId === undefined ? {} : { messageId }) };
}
