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

/**
 * The state key of an IMAP message: folder, UIDVALIDITY and UID (RFC 3501 §2.3.1.1), which
 * together name one message for good. Newline-separated, so its {@link messageId} is the sha256
 * over mailbox, folder, UIDVALIDITY and UID; folder names never contain CR or LF (the source
 * refuses such a folder).
 */
export function imapKey(folder: string, uidValidity: number, uid: number): string {
  return `${folder}\n${uidValidity}\n${uid}`;
}

/** The parts of an {@link imapKey}, or undefined for any other key (a POP3 UIDL). */
export function parseImapKey(
  key: string,
): { folder: string; uidValidity: number; uid: number } | undefined {
  const last = key.lastIndexOf("\n");
  const middle = last > 0 ? key.lastIndexOf("\n", last - 1) : -1;
  if (middle <= 0) return undefined;
  const uidValidity = key.slice(middle + 1, last);
  const uid = key.slice(last + 1);
  if (!/^[1-9][0-9]{0,9}$/.test(uidValidity) || !/^[1-9][0-9]{0,9}$/.test(uid)) return undefined;
  return { folder: key.slice(0, middle), uidValidity: Number(uidValidity), uid: Number(uid) };
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
