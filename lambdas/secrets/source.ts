/**
 * Where a mailbox's secret comes from (the config's {@link SecretSource}): reading it, and whether a
 * changed value (a rotated OAuth2 refresh token) can be written back there.
 */
import { readFile } from "node:fs/promises";
import type { SecretSource } from "../config/schema.ts";
import { ErrorCode, MailIngestError } from "../errors.ts";

/** Resolves `{secretId}` sources; Secrets Manager in the Lambda and, when configured, the CLI. */
export type SecretIdResolver = (secretId: string) => Promise<string>;

/** Stores a rotated refresh token into the secret `secretId` (keeping its other fields). */
export type RefreshTokenWriter = (secretId: string, refreshToken: string) => Promise<void>;

/**
 * Whether a rotated refresh token can be stored where the secret came from. Only a Secrets
 * Manager secret can: an inline password, an environment variable or an operator's file is not
 * ours to rewrite, so the token is kept in memory and the operator is told why.
 */
export type SecretWriteBack =
  | { readonly writable: true; readonly write: (refreshToken: string) => Promise<void> }
  | { readonly writable: false; readonly reason: string };

export interface ResolveSecretOptions {
  /** For `{env}` sources. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  readonly secretId?: SecretIdResolver;
}

/**
 * Resolves a secret source to its value. Errors name the source kind, never the value; the
 * caller ({@link resolveCredentials}) names the mailbox.
 */
export async function resolveSecret(
  source: SecretSource,
  options: ResolveSecretOptions = {},
): Promise<string> {
  const fail = (what: string, cause?: unknown) =>
    new MailIngestError(ErrorCode.SECRET_UNRESOLVED, what, { cause });
  if (typeof source === "string") return source;
  if ("env" in source) {
    const value = (options.env ?? process.env)[source.env];
    if (!value) throw fail(`environment variable ${source.env} is not set`);
    return value;
  }
  if ("file" in source) {
    try {
      const text = await readFile(source.file, "utf8");
      // A trailing newline from `echo secret > file` is never part of the secret.
      return text.replace(/\r?\n$/, "");
    } catch (err) {
      throw fail(`cannot read password file ${source.file}`, err);
    }
  }
  if (!options.secretId) throw fail(`secretId ${source.secretId} needs a secrets resolver (AWS)`);
  try {
    return await options.secretId(source.secretId);
  } catch (err) {
    throw fail(`cannot read secret ${source.secretId}`, err);
  }
}

/** Where a rotated refresh token for `source` can go, given the writer the caller has (if any). */
export function writeBackFor(source: SecretSource, writer?: RefreshTokenWriter): SecretWriteBack {
  if (typeof source === "string") {
    return { writable: false, reason: "update the password in the config" };
  }
  if ("env" in source) {
    return { writable: false, reason: `update environment variable ${source.env}` };
  }
  if ("file" in source) return { writable: false, reason: `update the file ${source.file}` };
  const { secretId } = source;
  if (!writer) {
    return { writable: false, reason: `update secret ${secretId} (no Secrets Manager access)` };
  }
  return { writable: true, write: (refreshToken) => writer(secretId, refreshToken) };
}
