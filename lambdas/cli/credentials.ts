/**
 * How the CLI resolves mailbox secrets: `{env}`, `{file}` and plain strings locally,
 * `{secretId}` from AWS Secrets Manager and `{ssmParameter}` from SSM Parameter Store with the
 * ambient AWS credentials. An AWS SDK is loaded only when some mailbox needs it, so local-only
 * configs start fast. OAuth2 secrets work from any source; a rotated refresh token is written
 * back to Secrets Manager, SSM or the file (not to an environment variable).
 */
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { SSMClient } from "@aws-sdk/client-ssm";
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
    /** @default a client for the ambient region and credentials */
    readonly ssm?: SSMClient;
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
  const usesSsm = mailboxes.some(
    (m) => typeof m.password === "object" && "ssmParameter" in m.password,
  );
  const ssm = usesSsm
    ? (await import("../secrets/ssm.ts")).ssmSecretStore({
        cacheSeconds: CLI_SECRET_CACHE_SECONDS,
        client: options.ssm,
      })
    : undefined;
  // Each CLI run is one process: the stored token's age does not matter, so every rotation is
  // written back and the next run starts from it.
  return credentialDeps({ env, warn, store, ssm, fetch: options.fetch });
}
