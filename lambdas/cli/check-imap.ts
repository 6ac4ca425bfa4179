/**
 * `mail-ingest check` for an IMAP mailbox: the folders with their special-use attributes
 * (RFC 6154), per configured folder the message count and how many a poll would ingest, and the
 * capabilities the afterIngest actions depend on. Folders are only EXAMINEd: nothing changes.
 */
import { inspectImap } from "../adapters/imap-source.ts";
import type { MailboxConfig } from "../config/index.ts";
import type { StateStore } from "../ports.ts";
import { type ResolveCredentialsDeps, resolveCredentials } from "../secrets/credentials.ts";

export async function checkImapMailbox(
  mailbox: MailboxConfig,
  state: StateStore,
  credentials: ResolveCredentialsDeps,
): Promise<string> {
  const stateWarnings: string[] = [];
  const [secret, known] = await Promise.all([
    resolveCredentials(mailbox, credentials),
    state.load(mailbox.id, { onWarning: (m) => stateWarnings.push(m), readOnly: true }),
  ]);
  const seen = await inspectImap(mailbox, secret, known);
  const caps = Object.entries(seen.capabilities)
    .map(([name, offered]) => `${name} ${offered ? "yes" : "no"}`)
    .join(", ");
  const folders = seen.folders
    .map((f) => (f.specialUse ? `${f.path} (${f.specialUse})` : f.path))
    .join(", ");
  const lines = [
    `${mailbox.id}: OK ${mailbox.username}@${mailbox.host}:${mailbox.port} IMAP (${seen.secure ? "TLS" : "no TLS"})`,
    `  capabilities: ${caps}`,
    `  folders: ${folders}`,
  ];
  for (const f of seen.configured) {
    const name = f.configured === f.path ? f.path : `${f.configured} = ${f.path}`;
    lines.push(`  ${name}: ${f.messages} message(s), ${f.new} new`);
  }
  for (const m of stateWarnings) lines.push(`  warning: ${m}`);
  return lines.join("\n");
}
