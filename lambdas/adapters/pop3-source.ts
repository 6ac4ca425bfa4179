/**
 * The POP3 adapter of the {@link MailSource} port: UIDL + LIST give the listing, RETR the bytes,
 * DELE marks a message done, and QUIT commits the DELEs (RFC 1939 §6). Also used by `check`.
 */
import type { Readable } from "node:stream";
import type { MailboxConfig } from "../config/index.ts";
import type { OpenSource, SessionCredentials } from "../ingest/types.ts";
import { Pop3Client, type Pop3Options } from "../pop3/index.ts";
import type { MailSource, SourceListing, SourceMessage } from "../ports.ts";

export type Connect = (options: Pop3Options) => Promise<Pop3Client>;

/** Connects and logs in; on a failed login the connection is closed before the error is thrown. */
export async function openMailbox(
  mailbox: MailboxConfig,
  credentials: SessionCredentials,
  connect: Connect = (options) => Pop3Client.connect(options),
): Promise<Pop3Client> {
  const client = await connect({
    host: mailbox.host,
    port: mailbox.port,
    tls: mailbox.tls,
    ca: mailbox.ca,
    servername: mailbox.servername,
    timeoutMs: mailbox.timeoutMs,
  });
  try {
    await client.login({
      username: mailbox.username,
      password: credentials.password,
      accessToken: credentials.accessToken,
      auth: mailbox.auth,
      allowInsecureAuth: mailbox.allowInsecureAuth,
    });
  } catch (err) {
    client.close();
    throw err;
  }
  return client;
}

/** The POP3 source; `connect` lets tests trace the protocol or reach a hostile server. */
export function pop3Source(connect?: Connect): OpenSource {
  return async (mailbox, credentials) =>
    new Pop3Source(await openMailbox(mailbox, credentials, connect));
}

class Pop3Source implements MailSource {
  constructor(private readonly client: Pop3Client) {}

  async list(): Promise<SourceListing> {
    // Both commands are queued at once; the client pipelines them when the server allows.
    const [uidls, sizes] = await Promise.all([this.client.uidl(), this.client.list()]);
    return { messages: joinListing(uidls, sizes) };
  }

  fetch(message: SourceMessage): Promise<Readable> {
    // LIST sizes are only advisory: servers append a CRLF to a message that lacks one, or count
    // line endings differently, and refusing such mail would lose it. Truncation is caught by the
    // terminator check, a runaway body by the session's byte limit.
    return this.client.retr(message.ref);
  }

  markDone(message: SourceMessage): Promise<void> {
    return this.client.dele(message.ref);
  }

  close(): Promise<void> {
    return this.client.quit();
  }

  abort(): void {
    this.client.close();
  }
}

/**
 * Joins UIDL and LIST responses by message number. Messages missing from either (a server that
 * changed between the two commands) are dropped: they are picked up by the next session.
 */
export function joinListing(
  uidls: readonly { msg: number; uidl: string }[],
  sizes: readonly { msg: number; size: number }[],
): SourceMessage[] {
  const sizeOf = new Map(sizes.map((s) => [s.msg, s.size]));
  const seen = new Map<string, number>();
  for (const { uidl } of uidls) seen.set(uidl, (seen.get(uidl) ?? 0) + 1);
  const occurrence = new Map<string, number>();
  const out: SourceMessage[] = [];
  // Servers list in message order; sorting 3,000 entries anyway cost an incremental poll ~3 ms.
  const ordered = uidls.every((u, i) => (uidls[i - 1]?.msg ?? 0) < u.msg)
    ? uidls
    : [...uidls].sort((a, b) => a.msg - b.msg);
  for (const { msg, uidl } of ordered) {
    const size = sizeOf.get(msg);
    if (size === undefined) continue;
    const n = (occurrence.get(uidl) ?? 0) + 1;
    occurrence.set(uidl, n);
    // NUL cannot occur in a UIDL (RFC 1939 §7: 0x21-0x7E), so the suffix never collides.
    out.push({
      ref: msg,
      size,
      uidl,
      origin: { protocol: "pop3", uidl },
      key: n === 1 ? uidl : `${uidl}\u0000${n}`,
      ambiguous: (seen.get(uidl) ?? 0) > 1,
    });
  }
  return out;
}
