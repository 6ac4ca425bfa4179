/** Opens an authenticated POP3 session for a configured mailbox: shared by poll and check. */
import type { MailboxConfig } from "../config.ts";
import { Pop3Client, type Pop3Options } from "../pop3/index.ts";
import type { SessionCredentials } from "./types.ts";

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
