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
const SECRET_JSON_FIELDS =
  /"(?:password|refreshToken|clientId|tokenUrl|grant|serviceAccount|clientCertificate|private_key)"\s*:/;

const GRANTS = new Set(["refresh_token", "client_credentials", "jwt_bearer"]);

/**
 * Reads a secret string: JSON `{password}`, OAuth2 JSON (see {@link OAuthSecret}: a `grant` of
 * `refresh_token` (the default), `client_credentials` or `jwt_bearer`), or else the plain
 * password. A password that merely looks like JSON (say `{x`) stays a password; a JSON object with
 * neither shape is an error rather than a password, because it is almost certainly a malformed
 * OAuth secret. So is broken JSON that names one of those fields: sent as a password it would
 * hand a refresh token to the POP3 server. Its error gives the line and column, never the parser's
 * message, which quotes the secret. Errors name fields, never values, and not the mailbox:
 * callers that know it add it (see {@link resolveCredentials}).
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
  if ("grant" in json || "refreshToken" in json || "serviceAccount" in json) {
    return { kind: "oauth", oauth: parseOAuth(json, fail) };
  }
  if (typeof json.password === "string" && json.password !== "") {
    return { kind: "password", password: json.password };
  }
  throw fail(
    'JSON must hold "password" or OAuth2 fields (clientId, refreshToken, tokenUrl, or a grant)',
  );
}

function parseOAuth(
  json: Record<string, unknown>,
  fail: (problem: string) => MailIngestError,
): OAuthSecret {
  const grant = json.grant ?? "refresh_token";
  if (typeof grant !== "string" || !GRANTS.has(grant)) {
    throw fail('field grant must be "refresh_token", "client_credentials" or "jwt_bearer"');
  }
  const string = (
    record: Record<string, unknown>,
    name: string,
    optional: boolean,
    at = "",
  ): string | undefined => {
    const value = record[name];
    if (value === undefined && optional) return undefined;
    if (typeof value !== "string" || value === "") {
      throw fail(`field ${at}${name} must be a non-empty string`);
    }
    return value;
  };
  const url = (record: Record<string, unknown>, name: string, at = ""): string => {
    const value = string(record, name, false, at) ?? "";
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      throw fail(`field ${at}${name} is not a URL`);
    }
    // Credentials travel in the request body: plain http only to a local test endpoint.
    if (
      parsed.protocol !== "https:" &&
      !(parsed.protocol === "http:" && LOOPBACK_HOSTS.has(parsed.hostname))
    ) {
      throw fail(`field ${at}${name} must be https`);
    }
    return value;
  };

  if (grant === "jwt_bearer") {
    const account = json.serviceAccount;
    if (!isRecord(account)) {
      throw fail("field serviceAccount must be the service account's key file (an object)");
    }
    return {
      grant,
      serviceAccount: {
        client_email: string(account, "client_email", false, "serviceAccount.") ?? "",
        private_key: string(account, "private_key", false, "serviceAccount.") ?? "",
        token_uri: url(account, "token_uri", "serviceAccount."),
      },
      subject: string(json, "subject", true),
      scope: string(json, "scope", false) ?? "",
    };
  }
  const clientId = string(json, "clientId", false) ?? "";
  const tokenUrl = url(json, "tokenUrl");
  const scope = string(json, "scope", true);
  const clientSecret = string(json, "clientSecret", true);
  if (grant === "client_credentials") {
    const cert = json.clientCertificate;
    if (cert !== undefined && !isRecord(cert)) {
      throw fail("field clientCertificate must be {privateKeyPem, certificatePem}");
    }
    if ((cert === undefined) === (clientSecret === undefined)) {
      throw fail("client_credentials needs exactly one of clientSecret or clientCertificate");
    }
    if (cert === undefined) return { grant, clientId, tokenUrl, scope, clientSecret };
    const thumbprint = cert.thumbprint ?? "x5t#S256";
    if (thumbprint !== "x5t#S256" && thumbprint !== "x5t") {
      throw fail('field clientCertificate.thumbprint must be "x5t#S256" or "x5t"');
    }
    return {
      grant,
      clientId,
      tokenUrl,
      scope,
      clientCertificate: {
        privateKeyPem: string(cert, "privateKeyPem", false, "clientCertificate.") ?? "",
        certificatePem: string(cert, "certificatePem", false, "clientCertificate.") ?? "",
        thumbprint,
      },
    };
  }
  const rotatedAtText = string(json, "rotatedAt", true);
  const rotatedAt = rotatedAtText === undefined ? Number.NaN : Date.parse(rotatedAtText);
  return {
    clientId,
    clientSecret,
    refreshToken: string(json, "refreshToken", false) ?? "",
    tokenUrl,
    scope,
    // Unparseable counts as unknown, which write-back treats as old.
    ...(Number.isFinite(rotatedAt) ? { rotatedAt } : {}),
  };
}

/**
 * The secret string to store after the token endpoint rotated the refresh token: `current` with
 * `refreshToken` replaced, `rotatedAt` set, and every other field kept.
 */
export function withRotatedRefreshToken(
  secretId: string,
  current: string,
  refreshToken: string,
  rotatedAt: Date = new Date(),
): string {
  // parseSecretString first: JSON.parse errors quote their input, which may be a password.
  const parsed = parseSecretString(current);
  const isOAuth = parsed.kind === "oauth" && "refreshToken" in parsed.oauth;
  const json: unknown = isOAuth ? JSON.parse(current) : undefined;
  if (!isRecord(json)) {
    throw new MailIngestError(
      ErrorCode.SECRET_UNRESOLVED,
      `secret ${secretId} no longer holds OAuth2 fields; rotated refresh token not stored`,
    );
  }
  // rotatedAt dates the stored token, so later rotations know its age (the write-back threshold).
  return JSON.stringify({ ...json, refreshToken, rotatedAt: rotatedAt.toISOString() });
}
