/**
 * `mail-ingest check`: connects and logs in to each mailbox and reports what a poll would see.
 * It sends no RETR and no DELE, so it is safe to run against a production mailbox.
 */
import { createAdapters } from "../adapters/index.ts";
import { joinListing, openMailbox } from "../adapters/pop3-source.ts";
import type { MailboxConfig } from "../config/index.ts";
import { describeError } from "../errors.ts";
import { planSession } from "../ingest/plan.ts";
import type { StateStore } from "../ports.ts";
import { type ResolveCredentialsDeps, resolveCredentialsDetail } from "../secrets/credentials.ts";
import { peekJwtClaims } from "../secrets/jws.ts";
import type { AccessTokenInfo } from "../secrets/oauth.ts";
import { loadSelection, parse } from "./args.ts";
import { checkImapMailbox } from "./check-imap.ts";
import { cliCredentials } from "./credentials.ts";
import { type CliIo, EXIT_MAILBOX_FAILED, EXIT_OK } from "./io.ts";
import { preflight } from "./preflight.ts";
import { formatBytes } from "./progress.ts";

export async function checkCommand(args: readonly string[], io: CliIo): Promise<number> {
  const values = parse(args, {
    config: { type: "string", short: "c" },
    mailbox: { type: "string", short: "m" },
  });
  const { config, mailboxes } = await loadSelection(values.config, values.mailbox);
  await preflight(config, mailboxes, io.env);
  const { state } = await createAdapters(config.storage, config.queue);
  const credentials = await cliCredentials(mailboxes, io.env, (message) =>
    io.stderr.write(`mail-ingest warning: ${message}\n`),
  );
  let failed = false;
  for (const mailbox of mailboxes) {
    try {
      io.stdout.write(`${await checkMailbox(mailbox, state, credentials)}\n`);
    } catch (err) {
      failed = true;
      io.stdout.write(`${mailbox.id}: FAILED ${describeError(err)}\n`);
    }
  }
  return failed ? EXIT_MAILBOX_FAILED : EXIT_OK;
}

async function checkMailbox(
  mailbox: MailboxConfig,
  state: StateStore,
  credentials: ResolveCredentialsDeps,
): Promise<string> {
  if (mailbox.protocol === "imap") return checkImapMailbox(mailbox, state, credentials);
  const { credentials: session, token } = await resolveCredentialsDetail(mailbox, credentials);
  const client = await openMailbox(mailbox, session);
  const stateWarnings: string[] = [];
  try {
    const [uidls, sizes, known] = await Promise.all([
      client.uidl(),
      client.list(),
      state.load(mailbox.id, { onWarning: (m) => stateWarnings.push(m), readOnly: true }),
    ]);
    await client.quit();
    const listed = joinListing(uidls, sizes);
    const plan = planSession(listed, known, mailbox.delete, mailbox, new Date());
    const total = listed.reduce((sum, m) => sum + m.size, 0);
    const caps = client.capabilities;
    const lines = [
      `${mailbox.id}: OK ${mailbox.username}@${mailbox.host}:${mailbox.port} (${client.secure ? "TLS" : "no TLS"})`,
      `  capabilities: ${caps.raw.length > 0 ? caps.raw.join(", ") : "(server has no CAPA)"}`,
      ...(token ? [describeToken(token)] : []),
      `  messages: ${listed.length} on server (${formatBytes(total)}), ${plan.newCount} new, ${plan.tooLarge.length} over maxMessageBytes, ${plan.deleteKnown.length} due for deletion`,
    ];
    if (plan.duplicateUidls.length > 0)
      lines.push(`  warning: ${plan.duplicateUidls.length} duplicate UIDL(s)`);
    if (plan.uidlReset)
      lines.push("  warning: most UIDLs are unknown: the server may have renumbered");
    for (const m of stateWarnings) lines.push(`  warning: ${m}`);
    return lines.join("\n");
  } finally {
    client.close();
  }
}

/**
 * The grant, the access token's expiry and, for a JWT, the scopes (`scp`, `scope`) or app roles
 * (`roles`) it claims: what an admin needs to see why a login fails. Never the token itself.
 */
function describeToken(token: AccessTokenInfo): string {
  const parts = [
    `grant ${token.grant}`,
    `access token expires ${new Date(token.expiresAt).toISOString()}`,
  ];
  const claims = peekJwtClaims(token.accessToken);
  const list = (value: unknown) =>
    Array.isArray(value)
      ? value.filter((v) => typeof v === "string").join(" ")
      : typeof value === "string"
        ? value
        : "";
  const roles = list(claims?.roles);
  const scopes = list(claims?.scp) || list(claims?.scope);
  // Bounded: claims come from the token, which is the provider's text.
  if (roles) parts.push(`roles: ${roles.slice(0, 300)}`);
  if (scopes) parts.push(`scopes: ${scopes.slice(0, 300)}`);
  return `  oauth: ${parts.join(", ")}`;
}
