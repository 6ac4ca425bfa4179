/**
 * How the CLI resolves mailbox secrets: `{env}`, `{file}` and plain strings locally, and
 * `{secretId}` from AWS Secrets Manager with the ambient AWS credentials. The AWS SDK is loaded
 * only when some mailbox names a secretId, so local-only configs start fast. OAuth2 secrets work
 * from any source; a rotated refresh token is written back only to Secrets Manager.
 */
import type { ResolveCredentialsDeps } from "../auth/secrets.ts";
import type { MailboxConfig } from "../config.ts";

/** Secret strings are reused for the whole CLI run (a daemon re-reads them this often, s). */
const CLI_SECRET_CACHE_SECONDS = 300;

export async function cliCredentials(
  mailboxes: readonly MailboxConfig[],
  env: NodeJS.ProcessEnv,
  warn: (message: string) => void,
): Promise<ResolveCredentialsDeps> {
  const usesSecretsManager = mailboxes.some(
    (m) => typeof m.password === "object" && "secretId" in m.password,
  );
  if (usesSecretsManager) {
    const { secretsManagerCredentials } = await import("../auth/secrets-manager.ts");
    const aws = secretsManagerCredentials({ cacheSeconds: CLI_SECRET_CACHE_SECONDS, warn });
    return { getSecret: (id) => aws.getSecret(id), tokenProvider: aws.tokenProvider, env };
  }
  const { TokenProvider } = await import("../auth/oauth.ts");
  const tokenProvider = new TokenProvider({
    persistRefreshToken: async () =>
      warn(
        "rotated OAuth2 refresh token kept in memory only: update the secret's file or variable",
      ),
  });
  return { tokenProvider, env };
}
