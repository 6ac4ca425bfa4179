/**
 * Storage keys. Every key is built here from the mailbox id (validated against
 * MAILBOX_ID_PATTERN) and a hex digest, so no server-controlled text (UIDL, filename, header)
 * ever chooses a path.
 */
import { createHash } from "node:crypto";

/** Deterministic 32-hex message id: a rerun after a crash rewrites the same keys. */
export function messageId(mailbox: string, uidl: string): string {
  return createHash("sha256").update(`${mailbox}\n${uidl}`).digest("hex").slice(0, 32);
}

export function rawKey(mailbox: string, id: string): string {
  return `raw/${mailbox}/${id}.eml`;
}

export function partsPrefix(mailbox: string, id: string): string {
  return `parts/${mailbox}/${id}/`;
}

export function metaKey(mailbox: string, id: string): string {
  return `meta/${mailbox}/${id}.json`;
}
