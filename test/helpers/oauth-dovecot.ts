/**
 * Dovecot with its oauth2 passdb introspecting bearer tokens (RFC 7662) at a local token
 * authority, plus a scratch directory: the world of the OAuth2 interop suites (POP3 and IMAP).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type DovecotHandle, startDovecot } from "./dovecot.ts";
import { type OAuthServerHandle, startOAuthServer } from "./oauth-server.ts";

export interface OAuthDovecot {
  readonly dovecot: DovecotHandle;
  readonly authority: OAuthServerHandle;
  /** A scratch directory, removed by stop(). */
  readonly dir: string;
  stop(): Promise<void>;
}

/** Starts the authority, then Dovecot trusting it, for `users` who log in with tokens only. */
export async function startOAuthDovecot(
  users: readonly string[],
  dirPrefix: string,
): Promise<OAuthDovecot> {
  const authority = await startOAuthServer();
  let dovecot: DovecotHandle | undefined;
  try {
    dovecot = await startDovecot({
      // Never used: these users log in with bearer tokens only.
      users: users.map((user) => ({ user, password: `${user}-unused-Pa55` })),
      oauth2: { introspectionUrl: authority.introspectionUrl },
    });
    const dir = await mkdtemp(path.join(tmpdir(), dirPrefix));
    const started = dovecot;
    return {
      dovecot: started,
      authority,
      dir,
      async stop() {
        await started.stop();
        await authority.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await dovecot?.stop();
    await authority.close();
    throw err;
  }
}
