/**
 * Turns a mailbox's secret into session credentials: a password, or an OAuth2 access token
 * obtained with the refresh token the secret holds.
 */
import type { MailboxConfig, SecretIdResolver } from "../config.ts";
import { resolveSecret } from "../config.ts";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { SessionCredentials } from "../ingest/types.ts";
import { describePosition, parseJsonOrPosition } from "../json-position.ts";
import { isRecord } from "../util/is-record.ts";
import type { OAuthSecret, TokenProvider } from "./oauth.ts";

/** What a secret string can hold. */
export type ParsedSecret =
  | { readonly kind: "password"; readonly password: string }
  | { readonly kind: "oauth"; readonly oauth: OAuthSecret };

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]", "localhost"]);

/** Field names that make a `{`-text unmistakably meant as JSON rather than a password. */
const SECRET_JSON_FIELDS = /"(?:password|refreshToken|clientId|tokenUrl)"\s*:/;

/**
 * Reads a secret string: JSON `{password}`, OAuth JSON `{clientId, clientSecret?, refreshToken,
 * tokenUrl, scope?}`, or else the plain password. A password that merely looks like JSON (say
 * `{x`) stays a password; a JSON object with neither shape is an error rather than a password,
 * because it is almost certainly a malformed OAuth secret. So is broken JSON that names one of
 * those fields: sent as a password it would hand a refresh token to the POP3 server. Its error
 * gives the line and column, never the parser's message, which quotes the secret.
 */
export function parseSecretString(mailboxId: string, text: string): ParsedSecret {
  const fail = (problem: string) =>
    new MailIngestError(ErrorCode.SECRET_UNRESOLVED, `mailbox ${mailboxId}: secret ${problem}`);
  let json: unknown;
  if (text.trimStart().startsWith("{")) {
    const parsed = parseJsonOrPosition(text);
    if (parsed.ok) json = parsed.value;
    else if (SECRET_JSON_FIELDS.test(text)) {
      throw fail(`is not valid JSON: ${describePosition(parsed.at)}`);
    }
  }
  if (!isRecord(json)) return { kind: "password", password: text };

  if ("refreshToken" in json) {
    const field = (name: string, optional: boolean): string | undefined => {
      const value = json[name];
      if (value === undefined && optional) return undefined;
      if (typeof value !== "string" || value === "") {
        throw fail(`field ${name} must be a non-empty string`);
      }
      return value;
    };
    const tokenUrl = field("tokenUrl", false) ?? "";
    let url: URL;
    try {
      url = new URL(tokenUrl);
    } catch {
      throw fail("field tokenUrl is not a URL");
    }
    // The refresh token travels in the request body: plain http only to a local test endpoint.
    if (
      url.protocol !== "https:" &&
      !(url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname))
    ) {
      throw fail("field tokenUrl must be https");
    }
    return {
      kind: "oauth",
      oauth: {
        clientId: field("clientId", false) ?? "",
        clientSecret: field("clientSecret", true),
        refreshToken: field("refreshToken", false) ?? "",
        tokenUrl,
        scope: field("scope", true),
      },
    };
  }
  if (typeof json.password === "string" && json.password !== "") {
    return { kind: "password", password: json.password };
  }
  throw fail('JSON must hold "password" or OAuth2 fields (clientId, refreshToken, tokenUrl)');
}

/**
 * The secret string to store after the token endpoint rotated the refresh token: `current` with
 * `refreshToken` replaced and every other field kept.
 */
export function withRotatedRefreshToken(
  secretId: string,
  current: string,
  refreshToken: string,
): string {
  // parseSecretString first: JSON.parse errors quote their input, which may be a password.
  const isOAuth = parseSecretString(secretId, current).kind === "oauth";
  const json: unknown = isOAuth ? JSON.parse(current) : undefined;
  if (!isRecord(json)) {
    throw new MailIngestError(
      ErrorCode.SECRET_UNRESOLVED,
      `secret ${secretId} no longer holds OAuth2 fields; rotated refresh token not stored`,
    );
  }
  return JSON.stringify({ ...json, refreshToken });
}

export interface ResolveCredentialsDeps {
  /** Secret string by id (Secrets Manager via Powertools in the Lambda). */
  readonly getSecret?: SecretIdResolver;
  /** Needed only for OAuth2 secrets. */
  readonly tokenProvider?: TokenProvider;
  /** For `{env}` sources. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
}

/** Resolves `mailbox.password` (any source) to what the POP3 login needs. */
export async function resolveCredentials(
  mailbox: MailboxConfig,
  deps: ResolveCredentialsDeps,
): Promise<SessionCredentials> {
  const text = await resolveSecret(mailbox.id, mailbox.password, {
    env: deps.env,
    secretId: deps.getSecret,
  });
  const parsed = parseSecretString(mailbox.id, text);
  if (parsed.kind === "password") return { password: parsed.password };

  if (mailbox.auth !== "auto" && mailbox.auth !== "xoauth2" && mailbox.auth !== "oauthbearer") {
    throw new MailIngestError(
      ErrorCode.CONFIG_INVALID,
      `mailbox ${mailbox.id}: the secret holds OAuth2 credentials but auth is "${mailbox.auth}"; use "xoauth2"`,
    );
  }
  if (!deps.tokenProvider) {
    throw new MailIngestError(
      ErrorCode.SECRET_UNRESOLVED,
      `mailbox ${mailbox.id}: OAuth2 secret needs a token provider`,
    );
  }
  // One secret per mailbox, so the secret id (when there is one) names the credential: a rotated
  // refresh token is written back to exactly that secret.
  const key =
    typeof mailbox.password === "object" && "secretId" in mailbox.password
      ? mailbox.password.secretId
      : `mailbox:${mailbox.id}`;
  return { accessToken: await deps.tokenProvider.getAccessToken(parsed.oauth, { key }) };
}
