/**
 * Turns a mailbox's secret into session credentials (a password, or an OAuth2 access token
 * obtained with the refresh token the secret holds), and the one wiring of that for the CLI and
 * the poller Lambda ({@link credentialDeps}).
 */
import type { MailboxConfig } from "../config/schema.ts";
import {
  describeError,
  ErrorCode,
  isMailIngestError,
  MailIngestError,
  mailboxMessage,
} from "../errors.ts";
import type { SessionCredentials } from "../ingest/types.ts";
import { writeRefreshTokenToFile } from "./file.ts";
import { type AccessTokenInfo, TokenProvider } from "./oauth.ts";
import { parseSecretString } from "./parse.ts";
import {
  type RefreshTokenWriter,
  resolveSecret,
  type SecretIdResolver,
  type SecretWriters,
  writeBackFor,
} from "./source.ts";

export interface ResolveCredentialsDeps {
  /** Secret string by id (Secrets Manager via Powertools). */
  readonly getSecret?: SecretIdResolver;
  /** Stores a rotated refresh token into a `{secretId}` secret; without it none is writable. */
  readonly writeRefreshToken?: RefreshTokenWriter;
  /** SSM SecureString by name; without it `{ssmParameter}` sources cannot be resolved. */
  readonly getSsmParameter?: SecretIdResolver;
  /** Writers for `{ssmParameter}` and `{file}` sources (Secrets Manager's is `writeRefreshToken`). */
  readonly writers?: Omit<SecretWriters, "secretId">;
  /** Needed only for OAuth2 secrets. */
  readonly tokenProvider?: TokenProvider;
  /** For `{env}` sources. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Resolves `mailbox.password` (any source) to what the POP3 login needs. Every error it throws
 * names the mailbox once (this is the one place that adds it) and keeps the cause's code.
 * `fresh` reads the secret past the store's cache: the server refused what the cache held.
 */
export async function resolveCredentials(
  mailbox: MailboxConfig,
  deps: ResolveCredentialsDeps,
  fresh = false,
): Promise<SessionCredentials> {
  return (await resolveWith(mailbox, deps, false, fresh)).credentials;
}

/** {@link resolveCredentials}, plus the OAuth2 grant and token expiry when there is one (`check`). */
export async function resolveCredentialsDetail(
  mailbox: MailboxConfig,
  deps: ResolveCredentialsDeps,
): Promise<{ credentials: SessionCredentials; token?: AccessTokenInfo }> {
  return resolveWith(mailbox, deps, true);
}

async function resolveWith(
  mailbox: MailboxConfig,
  deps: ResolveCredentialsDeps,
  detail: boolean,
  fresh = false,
): Promise<{ credentials: SessionCredentials; token?: AccessTokenInfo }> {
  try {
    return await credentialsFor(mailbox, deps, detail, fresh);
  } catch (err) {
    const code = isMailIngestError(err) ? err.code : ErrorCode.SECRET_UNRESOLVED;
    // describeError skips the cause's own message, which this one already quotes, so a report
    // reads `mailbox a: cannot read secret s: <the lookup's error>`.
    throw new MailIngestError(code, mailboxMessage(mailbox.id, describeError(err)), {
      cause: err,
    });
  }
}

async function credentialsFor(
  mailbox: MailboxConfig,
  deps: ResolveCredentialsDeps,
  detail: boolean,
  fresh: boolean,
): Promise<{ credentials: SessionCredentials; token?: AccessTokenInfo }> {
  const text = await resolveSecret(mailbox.password, {
    env: deps.env,
    secretId: deps.getSecret,
    ssmParameter: deps.getSsmParameter,
    fresh,
  });
  const parsed = parseSecretString(text);
  if (parsed.kind === "password") return { credentials: { password: parsed.password } };

  if (mailbox.auth !== "auto" && mailbox.auth !== "xoauth2" && mailbox.auth !== "oauthbearer") {
    throw new MailIngestError(
      ErrorCode.CONFIG_INVALID,
      `the secret holds OAuth2 credentials but auth is "${mailbox.auth}"; use "xoauth2"`,
    );
  }
  if (!deps.tokenProvider) {
    throw new MailIngestError(ErrorCode.SECRET_UNRESOLVED, "OAuth2 secret needs a token provider");
  }
  // One secret per mailbox, so the secret id (when there is one) names the credential.
  const source = mailbox.password;
  const key =
    typeof source === "object" && "secretId" in source
      ? source.secretId
      : typeof source === "object" && "ssmParameter" in source
        ? `ssm:${source.ssmParameter}`
        : `mailbox ${mailbox.id}`;
  const options = {
    key,
    writeBack: writeBackFor(source, { ...deps.writers, secretId: deps.writeRefreshToken }),
  };
  if (!detail) {
    return {
      credentials: { accessToken: await deps.tokenProvider.getAccessToken(parsed.oauth, options) },
    };
  }
  const token = await deps.tokenProvider.getToken(parsed.oauth, options);
  return { credentials: { accessToken: token.accessToken }, token };
}

export interface CredentialDepsOptions {
  /** For `{env}` sources. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** Told when a rotated refresh token can only be kept in memory. */
  readonly warn: (message: string) => void;
  /** Secrets Manager (or a stand-in); without it `{secretId}` sources cannot be resolved. */
  readonly store?: {
    readonly getSecret: SecretIdResolver;
    readonly writeRefreshToken: RefreshTokenWriter;
  };
  /** SSM Parameter Store (or a stand-in); without it `{ssmParameter}` sources cannot be resolved. */
  readonly ssm?: {
    readonly getParameter: SecretIdResolver;
    readonly writeRefreshToken: RefreshTokenWriter;
  };
  /**
   * A rotated refresh token is written back only once the stored one is this old, s (issue 9:
   * Secrets Manager throttles frequent versions). @default 0 (always)
   */
  readonly writeBackAfterSeconds?: number;
  /** For the token endpoint. @default globalThis.fetch */
  readonly fetch?: typeof globalThis.fetch;
}

/**
 * The one wiring of credentials, used by the CLI and the poller: secrets from the store (if any),
 * and a token provider that writes a rotated refresh token back where the secret's source is
 * writable and warns, naming what to update, where it is not.
 */
export function credentialDeps(options: CredentialDepsOptions): ResolveCredentialsDeps {
  const tokenProvider = new TokenProvider({
    fetch: options.fetch,
    writeBackAfterMs: (options.writeBackAfterSeconds ?? 0) * 1000,
    persistRefreshToken: async ({ key, refreshToken, writeBack }) => {
      if (writeBack?.writable) return writeBack.write(refreshToken);
      options.warn(
        `rotated OAuth2 refresh token for ${key} kept in memory only: ${writeBack?.reason ?? "its secret is not writable"}`,
      );
    },
    // The error names the store and its cause (throttling, access), never the token.
    onPersistFailure: (key, err) =>
      options.warn(
        `could not store the rotated OAuth2 refresh token for ${key} (kept in memory, retried on a later run): ${describeError(err)}`,
      ),
  });
  const { store, ssm } = options;
  return {
    tokenProvider,
    env: options.env,
    writers: {
      file: writeRefreshTokenToFile,
      ...(ssm ? { ssmParameter: ssm.writeRefreshToken } : {}),
    },
    ...(ssm
      ? { getSsmParameter: (name: string, fresh?: boolean) => ssm.getParameter(name, fresh) }
      : {}),
    ...(store
      ? {
          getSecret: (id: string, fresh?: boolean) => store.getSecret(id, fresh),
          writeRefreshToken: store.writeRefreshToken,
        }
      : {}),
  };
}
