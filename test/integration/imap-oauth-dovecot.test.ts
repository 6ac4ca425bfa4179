/**
 * OAuth2 over IMAP with a real server deciding: Dovecot's oauth2 passdb validates each bearer
 * token by RFC 7662 introspection against the local authority (test/helpers/oauth-server.ts).
 * The configured mechanism must be the one sent, which Dovecot's own login line (`method=`)
 * and the client's command trace both show; imapflow alone would always pick OAUTHBEARER.
 * One grant runs end to end through the real CLI: token endpoint → Dovecot → poll → stored.
 */
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { openImap } from "../../lambdas/adapters/imap-source.ts";
import type { MailboxConfig } from "../../lambdas/config/index.ts";
import { ErrorCode } from "../../lambdas/errors.ts";
import {
  type DovecotHandle,
  describeDovecotImap,
  implicitTlsImapMailbox,
} from "../helpers/dovecot.ts";
import { generateMessage } from "../helpers/messages.ts";
import { type OAuthDovecot, startOAuthDovecot } from "../helpers/oauth-dovecot.ts";
import type { OAuthServerHandle } from "../helpers/oauth-server.ts";
import { listFiles, sha256 } from "../helpers/pipeline.ts";
import { finish } from "../helpers/process.ts";

const CLI = path.resolve(import.meta.dirname, "../../bin/mail-ingest.js");
const MECHANISMS = ["xoauth2", "oauthbearer"] as const;
const USERS = ["xoauth2", "oauthbearer", "other", "app"];

describeDovecotImap("IMAP OAuth2 against Dovecot's oauth2 passdb", () => {
  let world: OAuthDovecot | undefined;
  let dovecot: DovecotHandle;
  let authority: OAuthServerHandle;
  let dir: string;

  beforeAll(async () => {
    world = await startOAuthDovecot(USERS, "mi-imap-oauth-");
    ({ dovecot, authority, dir } = world);
  });
  afterAll(async () => {
    await world?.stop();
  });

  /** An access token for `user` from the authority's token endpoint (refresh_token grant). */
  async function tokenFor(user: string): Promise<string> {
    const clientId = `direct-${user}`;
    authority.registerClient({ clientId });
    const res = await fetch(authority.tokenUrl(), {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: authority.issueRefreshToken(clientId, user),
        client_id: clientId,
      }),
    });
    return ((await res.json()) as { access_token: string }).access_token;
  }

  function mailboxFor(user: string, auth: MailboxConfig["auth"]): MailboxConfig {
    return {
      ...implicitTlsImapMailbox(dovecot, user),
      id: user,
      auth,
      allowInsecureAuth: false,
      timeoutMs: 30_000,
      delete: "never",
      maxMessageBytes: 1_000_000,
      password: "unused",
    };
  }

  /** Dovecot's successful IMAP logins of `user`, by mechanism (its login_log_format `method=`). */
  async function loginMethods(user: string): Promise<string[]> {
    const log = await dovecot.log();
    return [...log.matchAll(/imap-login: (?:Info: )?Login: user=<([^>]*)>, method=([A-Z0-9-]+)/g)]
      .filter((m) => m[1] === user)
      .map((m) => m[2] as string);
  }

  it.each(MECHANISMS)(
    "auth %s: that mechanism is sent even though Dovecot offers both, and Dovecot accepts the token",
    async (auth) => {
      const token = await tokenFor(auth);
      const trace: string[] = [];
      const client = await openImap(
        mailboxFor(auth, auth),
        { accessToken: token },
        { trace: (c) => trace.push(c) },
      );
      try {
        expect(client.authenticated).toBeTruthy();
        const status = await client.status("INBOX", { messages: true });
        expect(status).toMatchObject({ messages: 0 });
      } finally {
        await client.logout();
      }
      const sent = trace.filter((c) => /^AUTHENTICATE /.test(c));
      expect(sent).toEqual([expect.stringMatching(new RegExp(`^AUTHENTICATE ${auth}\\b`, "i"))]);
      expect(trace.join("\n")).not.toContain(token);
      // The server's own account of the login, independent of the client's trace.
      expect(await loginMethods(auth)).toEqual([auth.toUpperCase()]);
    },
  );

  it.each(MECHANISMS)(
    "auth %s: Dovecot refuses another user's, an unknown and a revoked token (OAUTH_FAILED, no token echoed)",
    async (auth) => {
      const token = await tokenFor("other");
      const refused = async (user: string, accessToken: string) => {
        const err = await openImap(mailboxFor(user, auth), { accessToken }).then(
          async (client) => {
            await client.logout();
            return undefined;
          },
          (e: unknown) => e,
        );
        expect(err).toMatchObject({ code: ErrorCode.OAUTH_FAILED });
        expect(String((err as Error).message)).not.toContain(accessToken);
      };
      // The passdb compares the introspected username with the login name.
      await refused(auth, token);
      await refused("other", `${token}x`);
      authority.revokeAccessToken(token);
      await refused("other", token);
    },
  );

  it("client_credentials grant through the real CLI: token endpoint → Dovecot (XOAUTH2) → IMAP poll → stored byte-exact", async () => {
    const clientSecret = "imap-app-client-SECRET-987";
    authority.registerClient({ clientId: "imap-app", clientSecret, mailbox: "app" });
    const secretFile = path.join(dir, "app.secret.json");
    await writeFile(
      secretFile,
      JSON.stringify({
        grant: "client_credentials",
        clientId: "imap-app",
        clientSecret,
        tokenUrl: authority.tokenUrl(),
        scope: "https://outlook.office365.com/.default",
      }),
      { mode: 0o600 },
    );
    const data = path.join(dir, "data-app");
    const config = path.join(dir, "app.config.json");
    await writeFile(
      config,
      JSON.stringify({
        storage: { type: "fs", dir: data },
        queue: { type: "fs", dir: path.join(data, "queue") },
        mailboxes: [
          {
            id: "app",
            ...implicitTlsImapMailbox(dovecot, "app"),
            auth: "xoauth2",
            folders: ["INBOX", "\\Junk"],
            password: { file: secretFile },
          },
        ],
      }),
    );
    const inbox = generateMessage(1);
    const junk = generateMessage(2);
    await dovecot.deliver("app", [inbox]);
    await dovecot.deliver("app", [junk], "Junk");
    const child = spawn(process.execPath, [CLI, "poll", "--config", config, "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const result = await finish(child);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { mailboxes: Array<{ ingested: number }> };
    expect(report.mailboxes[0]?.ingested).toBe(2);
    expect(authority.requests.at(-1)?.form.get("grant_type")).toBe("client_credentials");
    expect(await loginMethods("app")).toEqual(["XOAUTH2"]);

    const raw = (await listFiles(data)).filter((f) => f.split(path.sep).includes("raw"));
    const stored = await Promise.all(raw.map(async (f) => sha256(await readFile(f))));
    expect(stored.sort()).toEqual([sha256(inbox), sha256(junk)].sort());
    const queued = (await listFiles(path.join(data, "queue"))).filter(
      (f) => f.endsWith(".json") && !f.split(path.sep).includes(".tmp"),
    );
    const sources = await Promise.all(
      queued.map(async (f) => JSON.parse(await readFile(f, "utf8")).source),
    );
    expect(sources.map((s) => [s.protocol, s.folder]).sort()).toEqual([
      ["imap", "INBOX"],
      ["imap", "Junk"],
    ]);
    const output = `${result.stdout}\n${result.stderr}`;
    for (const secret of [clientSecret, ...authority.issuedAccessTokens]) {
      expect(output.includes(secret), "a secret appeared in the CLI output").toBe(false);
    }
  });
});
