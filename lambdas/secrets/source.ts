/**
 * Where a mailbox's secret comes from (the config's {@link SecretSource}): reading it, and whether a
 * changed value (a rotated OAuth2 refresh token) can be written back there.
 */
import { readFile } from "node:fs/promises";
import type { SecretSource } from "../config/schema.ts";
import { ErrorCode, MailIngestError } from "../errors.ts";

/**
 * Resolves `{secretId}` (Secrets Manager) or `{ssmParameter}` (SSM) sources by name; `fresh`
 * bypasses any cache (the server refused what the cache held).
 */
export type SecretIdResolver = (secretId: string, fresh?: boolean) => Promise<string>;

/** Stores a rotated refresh token into the secret `secretId` (keeping its other fields). */
export type RefreshTokenWriter = (secretId: string, refreshToken: string) => Promise<void>;

/**
 * Whether a rotated refresh token can be stored where the secret came from. A Secrets Manager
 * secret, an SSM parameter and a `{file}` can (given a writer); an inline password or an
 * environment variable cannot, so the token is kept in memory and the operator is told why.
 */
export type SecretWriteBack =
  | { readonly writable: true; readonly write: (refreshToken: string) => Promise<void> }
  | { readonly writable: false; readonly reason: string };

export interface ResolveSecretOptions {
  /** For `{env}` sources. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  readonly secretId?: SecretIdResolver;
  readonly ssmParameter?: SecretIdResolver;
  /** Read past any cache. @default false */
  readonly fresh?: boolean;
}

/** Writers per writable source kind; a kind without one is not written back. */
export interface SecretWriters {
  readonly secretId?: RefreshTokenWriter;
  readonly ssmParameter?: RefreshTokenWriter;
  /** Rewrites a `{file}` secret (path, refresh token). */
  readonly file?: RefreshTokenWriter;
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
  if ("ssmParameter" in source) {
    if (!options.ssmParameter) {
      throw fail(`ssmParameter ${source.ssmParameter} needs an SSM resolver (AWS)`);
    }
    try {
      return await options.ssmParameter(source.ssmParameter, options.fresh);
    } catch (err) {
      throw fail(`cannot read SSM parameter ${source.ssmParameter}`, err);
    }
  }
  if (!options.secretId) throw fail(`secretId ${source.secretId} needs a secrets resolver (AWS)`);
  try {
    return await options.secretId(source.secretId, options.fresh);
  } catch (err) {
    throw fail(`cannot read secret ${source.secretId}`, err);
  }
}

/**
 * Where a rotated refresh token for `source` can go, given the writers the caller has. The second
 * argument may be a bare writer, meaning Secrets Manager (the signature before SSM and files).
 */
export function writeBackFor(
  source: SecretSource,
  writers?: RefreshTokenWriter | SecretWriters,
): SecretWriteBack {
  const all: SecretWriters =
    typeof writers === "function" ? { secretId: writers } : (writers ?? {});
  if (typeof source === "string") {
    return { writable: false, reason: "update the password in the config" };
  }
  if ("env" in source) {
    return {
      writable: false,
      reason: `an environment variable cannot be written back; update ${source.env}`,
    };
  }
  const [name, writer, what] =
    "file" in source
      ? [source.file, all.file, `the file ${source.file}`]
      : "ssmParameter" in source
        ? [
            source.ssmParameter,
            all.ssmParameter,
            `SSM parameter ${source.ssmParameter} (no SSM access)`,
          ]
        : [source.secretId, all.secretId, `secret ${source.secretId} (no Secrets Manager access)`];
  if (!writer) return { writable: false, reason: `update ${what}` };
  return { writable: true, write: (refreshToken) => writer(name, refreshToken) };
}
