/**
 * What a secret string holds (a password or OAuth2 fields), and the updated string after an
 * OAuth2 refresh token rotated.
 */
import { ErrorCode, MailIngestError } from "../errors.ts";
import { describePosition, parseJsonOrPosition } from "../json-position.ts";
import { isRecord } from "../util/is-record.ts";
import type { OAuthSecret } from "./oauth.ts";

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
 * gives the line and column, never the parser's message, which quotes the secret. Errors do not
 * name the mailbox: callers that know it add it (see {@link resolveCredentials}).
 */
export function parseSecretString(text: string): ParsedSecret {
  const fail = (problem: string) =>
    new MailIngestError(ErrorCode.SECRET_UNRESOLVED, `secret ${problem}`);
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
  const isOAuth = parseSecretString(current).kind === "oauth";
  const json: unknown = isOAuth ? JSON.parse(current) : undefined;
  if (!isRecord(json)) {
    throw new MailIngestError(
      ErrorCode.SECRET_UNRESOLVED,
      `secret ${secretId} no longer holds OAuth2 fields; rotated refresh token not stored`,
    );
  }
  return JSON.stringify({ ...json, refreshToken });
}
