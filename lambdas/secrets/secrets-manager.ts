/**
 * The AWS side of secrets, shared by the Lambda poller and the CLI: secret strings through a
 * Powertools cache, and the write of a rotated OAuth2 refresh token back into its secret.
 * Imported on its own (not through `secrets/index.ts`) so a CLI without `{secretId}` sources never
 * loads the AWS SDK.
 */
import { SecretsProvider } from "@aws-lambda-powertools/parameters/secrets";
import { PutSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { ErrorCode, MailIngestError } from "../errors.ts";
import { withRotatedRefreshToken } from "./parse.ts";
import type { RefreshTokenWriter } from "./source.ts";

export interface SecretsManagerStoreOptions {
  /** How long a secret string is reused, seconds. */
  readonly cacheSeconds: number;
  /** @default a client for the ambient region and credentials */
  readonly client?: SecretsManagerClient;
}

export interface SecretsManagerStore {
  getSecret(secretId: string, forceFetch?: boolean): Promise<string>;
  readonly writeRefreshToken: RefreshTokenWriter;
}

/** Builds nothing until first use, so creating it costs no AWS client. */
export function secretsManagerStore(options: SecretsManagerStoreOptions): SecretsManagerStore {
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
  const writeRefreshToken: RefreshTokenWriter = async (secretId, refreshToken) => {
    // Re-read and merge so every other field (and edits made meanwhile) survives.
    const updated = withRotatedRefreshToken(
      secretId,
      await getSecret(secretId, true),
      refreshToken,
    );
    await sdk().send(new PutSecretValueCommand({ SecretId: secretId, SecretString: updated }));
    secrets().clearCache();
  };
  return { getSecret, writeRefreshToken };
}
