/**
 * Mailbox credentials from AWS Secrets Manager, shared by the Lambda poller and the CLI: secret
 * strings through a Powertools cache, and an OAuth2 token provider that writes rotated refresh
 * tokens back to the mailbox's secret.
 */
import { SecretsProvider } from "@aws-lambda-powertools/parameters/secrets";
import { PutSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { ErrorCode, MailIngestError } from "../errors.ts";
import { TokenProvider } from "./oauth.ts";
import { withRotatedRefreshToken } from "./secrets.ts";

export interface SecretsManagerCredentialsOptions {
  /** How long a secret string is reused, seconds. */
  readonly cacheSeconds: number;
  /** Told when a rotated refresh token cannot be persisted (its secret is not in Secrets Manager). */
  readonly warn: (message: string) => void;
  /** @default a client for the ambient region and credentials */
  readonly client?: SecretsManagerClient;
}

export interface SecretsManagerCredentials {
  getSecret(secretId: string, forceFetch?: boolean): Promise<string>;
  readonly tokenProvider: TokenProvider;
}

/** Builds nothing until first use, so importing it costs no AWS client. */
export function secretsManagerCredentials(
  options: SecretsManagerCredentialsOptions,
): SecretsManagerCredentials {
  let client: SecretsManagerClient | undefined;
  let provider: SecretsProvider | undefined;
  const sdk = () => {
    client ??= options.client ?? new SecretsManagerClient({});
    return client;
  };
  const secrets = () => {
    provider ??= new SecretsProvider({ awsSdkV3Client: sdk() });
    return provider;
  };
  const getSecret = async (secretId: string, forceFetch = false): Promise<string> => {
    const value = await secrets().get(secretId, { maxAge: options.cacheSeconds, forceFetch });
    if (typeof value !== "string") {
      throw new MailIngestError(
        ErrorCode.SECRET_UNRESOLVED,
        `secret ${secretId} has no SecretString`,
      );
    }
    return value;
  };
  const tokenProvider = new TokenProvider({
    persistRefreshToken: async ({ key, refreshToken }) => {
      if (key.startsWith("mailbox:")) {
        options.warn(
          "rotated refresh token kept in memory only: the secret is not in Secrets Manager",
        );
        return;
      }
      // Re-read and merge so every other field (and edits made meanwhile) survives.
      const updated = withRotatedRefreshToken(key, await getSecret(key, true), refreshToken);
      await sdk().send(new PutSecretValueCommand({ SecretId: key, SecretString: updated }));
      secrets().clearCache();
    },
  });
  return { getSecret, tokenProvider };
}
