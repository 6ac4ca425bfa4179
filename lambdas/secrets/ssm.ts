/**
 * `{"ssmParameter": NAME}` secrets: an SSM Parameter Store SecureString (the standard tier costs
 * nothing, unlike a Secrets Manager secret's $0.40 a month), read with decryption and cached, and
 * the write of a rotated OAuth2 refresh token back with `PutParameter` (Overwrite, a new
 * version). Imported on its own, like `secrets-manager.ts`, so configs without SSM sources never
 * load the SDK.
 */
import { GetParameterCommand, PutParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { ErrorCode, MailIngestError } from "../errors.ts";
import { withRotatedRefreshToken } from "./parse.ts";
import type { RefreshTokenWriter, SecretIdResolver } from "./source.ts";

export interface SsmSecretStoreOptions {
  /** How long a parameter value is reused, seconds. */
  readonly cacheSeconds: number;
  /** @default a client for the ambient region and credentials */
  readonly client?: SSMClient;
  /** Epoch ms. */
  readonly now?: () => number;
}

export interface SsmSecretStore {
  readonly getParameter: SecretIdResolver;
  readonly writeRefreshToken: RefreshTokenWriter;
}

export function ssmSecretStore(options: SsmSecretStoreOptions): SsmSecretStore {
  let client: SSMClient | undefined;
  const sdk = () => {
    client ??= options.client ?? new SSMClient({});
    return client;
  };
  const now = options.now ?? Date.now;
  const cache = new Map<string, { value: string; until: number }>();
  const read = async (name: string, forceFetch: boolean): Promise<string> => {
    const hit = cache.get(name);
    if (!forceFetch && hit && now() < hit.until) return hit.value;
    const out = await sdk().send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    const value = out.Parameter?.Value;
    if (typeof value !== "string") {
      throw new MailIngestError(ErrorCode.SECRET_UNRESOLVED, `SSM parameter ${name} has no value`);
    }
    cache.set(name, { value, until: now() + options.cacheSeconds * 1000 });
    return value;
  };
  const writeRefreshToken: RefreshTokenWriter = async (name, refreshToken) => {
    // Re-read and merge so every other field (and edits made meanwhile) survives.
    const updated = withRotatedRefreshToken(name, await read(name, true), refreshToken);
    // Overwrite keeps the parameter's type and key; Type is given only because SSM asks for it
    // and the value is a secret (a SecureString stays one).
    await sdk().send(
      new PutParameterCommand({
        Name: name,
        Value: updated,
        Overwrite: true,
        Type: "SecureString",
      }),
    );
    cache.delete(name);
  };
  return { getParameter: (name, fresh = false) => read(name, fresh), writeRefreshToken };
}
