/**
 * How the CLI resolves mailbox secrets: `{env}`, `{file}` and plain strings locally, and
 * `{secretId}` from AWS Secrets Manager with the ambient AWS credentials. The AWS SDK is loaded
 * only when some mailbox names a secretId, so local-only configs start fast. OAuth2 secrets work
 * from any source; a rotated refresh token is written back only to Secrets Manager.
 */
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { MailboxConfig } from "../config/index.ts";
import { credentialDeps, type ResolveCredentialsDeps } from "../secrets/credentials.ts";

/** Secret strings are reused for the whole CLI run (a daemon re-reads them this often, s). */
const CLI_SECRET_CACHE_SECONDS = 300;

export async function cliCredentials(
  mailboxes: readonly MailboxConfig[],
  env: NodeJS.ProcessEnv,
  warn: (message: string) => void,
  options: {
    readonly fetch?: typeof globalThis.fetch;
    /** @default a client for the ambient region and credentials */
    readonly secretsManager?: SecretsManagerClient;
  } = {},
): Promise<ResolveCredentialsDeps> {
  const usesSecretsManager = mailboxes.some(
    (m) => typeof m.password === "object" && "secretId" in m.password,
  );
  const store = usesSecretsManager
    ? (await import("../secrets/secrets-manager.ts")).secretsManagerStore({
        cacheSeconds: CLI_SECRET_CACHE_SECONDS,
        client: options.secretsManager,
      })
    : undefined;
  return credentialDeps({ env, warn, store, fetch: options.fetch });
}
