/**
 * OAuth2 access tokens for XOAUTH2 / OAUTHBEARER logins (Microsoft 365, Google Workspace), by one
 * of three grants named in the secret: refresh_token (RFC 6749 §6, delegated), client_credentials
 * (RFC 6749 §4.4, app-only; a client secret or a private_key_jwt assertion, RFC 7523 §2.2) and
 * jwt_bearer (RFC 7523 §2.1, Google service accounts with domain-wide delegation). Access tokens
 * are cached per credential; rotated refresh tokens are written back (see {@link TokenProvider}).
 */
import { createHash, randomUUID } from "node:crypto";
import { ErrorCode, MailIngestError } from "../errors.ts";
import { isRecord } from "../util/is-record.ts";
import { certificateThumbprint, signJwtRs256 } from "./jws.ts";
import type { SecretWriteBack } from "./source.ts";

/** The grants a secret can name in its `grant` field. */
export type OAuthGrant = "refresh_token" | "client_credentials" | "jwt_bearer";

/** Delegated access with a refresh token (the default grant). */
export interface RefreshTokenSecret {
  readonly grant?: "refresh_token";
  readonly clientId: string;
  /** Absent for public clients (RFC 6749 §2.1). */
  readonly clientSecret?: string;
  readonly refreshToken: string;
  /** e.g. `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`, `https://oauth2.googleapis.com/token`. */
  readonly tokenUrl: string;
  /** Space-separated scopes (RFC 6749 §3.3). */
  readonly scope?: string;
  /** When the stored refresh token was written (the JSON's `rotatedAt`), epoch ms. */
  readonly rotatedAt?: number;
}

/** A certificate credential for private_key_jwt client authentication (RFC 7523 §2.2). */
export interface ClientCertificate {
  readonly privateKeyPem: string;
  readonly certificatePem: string;
  /** The header that names the certificate: Microsoft's `x5t#S256`, or `x5t` (SHA-1) for older tenants. @default "x5t#S256" */
  readonly thumbprint?: "x5t#S256" | "x5t";
}

/** App-only access (Microsoft's POP.AccessAsApp): a client secret or a certificate. */
export interface ClientCredentialsSecret {
  readonly grant: "client_credentials";
  readonly clientId: string;
  readonly tokenUrl: string;
  /** For Microsoft 365: `https://outlook.office365.com/.default`. */
  readonly scope?: string;
  readonly clientSecret?: string;
  readonly clientCertificate?: ClientCertificate;
}

/** The fields of a Google service-account key file we use (their names as Google writes them). */
export interface ServiceAccountKey {
  readonly client_email: string;
  readonly private_key: string;
  readonly token_uri: string;
}

/** A Google service account acting for `subject` through domain-wide delegation. */
export interface JwtBearerSecret {
  readonly grant: "jwt_bearer";
  readonly serviceAccount: ServiceAccountKey;
  /** The mailbox user the service account impersonates (the assertion's `sub`). */
  readonly subject?: string;
  /** e.g. `https://mail.google.com/`. */
  readonly scope: string;
}

/** What a mailbox's secret holds for OAuth2 (one secret per mailbox). */
export type OAuthSecret = RefreshTokenSecret | ClientCredentialsSecret | JwtBearerSecret;

export function grantOf(secret: OAuthSecret): OAuthGrant {
  return secret.grant ?? "refresh_token";
}

/** The endpoint a secret's tokens come from. */
export function tokenUrlOf(secret: OAuthSecret): string {
  return secret.grant === "jwt_bearer" ? secret.serviceAccount.token_uri : secret.tokenUrl;
}

/** A refresh token the endpoint issued in place of the one we sent (RFC 6749 §6, last paragraph). */
export interface RefreshTokenRotation {
  /** The cache key the token was requested under (the secret id, or the mailbox). */
  readonly key: string;
  readonly refreshToken: string;
  /** Whether, and how, the secret the token came from can be updated (absent: not said). */
  readonly writeBack?: SecretWriteBack;
}

export interface TokenProviderOptions {
  /**
   * Stores a rotated refresh token durably. Awaited before the new access token is used, so a
   * write that succeeds is in place before the session starts. A write that fails does not fail
   * the caller: the token is kept in memory, {@link onPersistFailure} is told, and the write is
   * retried on the next call (the next run in a warm container). Microsoft leaves the previous
   * refresh token valid after a rotation, so the stored one keeps working meanwhile.
   */
  readonly persistRefreshToken: (rotation: RefreshTokenRotation) => Promise<void>;
  /** Told when persistRefreshToken failed (its error never holds the token). @default ignored */
  readonly onPersistFailure?: (key: string, err: unknown) => void;
  /**
   * A rotated refresh token is written back only once the stored one is at least this old
   * (by the secret's `rotatedAt`; unknown counts as old), ms. Secrets Manager throttles more than
   * about one version per 10 minutes, and every warm container rotates on every refresh.
   * A token the provider revoked is always written back. @default 0 (always)
   */
  readonly writeBackAfterMs?: number;
  readonly fetch?: typeof globalThis.fetch;
  /** Epoch ms. */
  readonly now?: () => number;
  /** Access tokens are refreshed this long before they expire, ms. @default 60_000 */
  readonly expirySkewMs?: number;
  /** Whole token request budget, ms. @default 10_000 */
  readonly requestTimeoutMs?: number;
}

export interface GetAccessTokenOptions {
  /** Cache key; one per credential. @default derived from the secret's credential fields */
  readonly key?: string;
  /** Where a rotated refresh token can be stored; handed to `persistRefreshToken`. */
  readonly writeBack?: SecretWriteBack;
}

/** An access token and what `check` may show about it (never the token itself). */
export interface AccessTokenInfo {
  readonly accessToken: string;
  readonly grant: OAuthGrant;
  /** When the endpoint said the token expires, epoch ms. */
  readonly expiresAt: number;
}

/** Lifetime assumed when the endpoint omits `expires_in` (it is only RECOMMENDED, §5.1), s. */
const DEFAULT_EXPIRES_IN_S = 300;
/** Longest error_description quoted in our messages; endpoint text is not ours to trust. */
export const MAX_DESCRIPTION_CHARS = 300;
/** Lifetime of a private_key_jwt client assertion, s (Microsoft accepts up to 10 minutes). */
const CLIENT_ASSERTION_LIFETIME_S = 300;
/** Lifetime of a service-account assertion, s: Google's maximum, one hour (RFC 7523 §3 item 4). */
const JWT_BEARER_LIFETIME_S = 3600;

const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWT_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer";

interface CacheEntry {
  /** Fingerprint of the credential's non-rotating fields: a change means a new credential. */
  readonly identity: string;
  /** The newest refresh token we know of for this key (refresh_token grant only). */
  refreshToken?: string;
  /** The refresh token the secret holds, as last read. */
  storedRefreshToken?: string;
  /** The stored token's `rotatedAt`, epoch ms (undefined: unknown). */
  storedRotatedAt?: number;
  /**
   * Fingerprints of refresh tokens we rotated away from. The secret cache (Powertools, maxAge)
   * can hand us the old value for a while after a rotation; we must not send it again.
   */
  readonly superseded: Set<string>;
  accessToken?: string;
  /** Epoch ms after which `accessToken` is not used. */
  usableUntil: number;
  /** Epoch ms the endpoint gave for `accessToken`. */
  expiresAt: number;
  /** A rotated refresh token that has not been stored yet: retried before any token is handed out. */
  pendingPersist: boolean;
  /** The provider refused a refresh token we held unwritten: write every rotation back at once. */
  revoked: boolean;
  /** Where the credential's secret can be updated, as the latest caller said. */
  writeBack?: SecretWriteBack;
}

function fingerprint(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** The credential's identity without its (rotating) refresh token. */
function identityOf(secret: OAuthSecret): string {
  switch (secret.grant) {
    case "client_credentials":
      return fingerprint(
        [
          "client_credentials",
          secret.tokenUrl,
          secret.clientId,
          secret.scope ?? "",
          secret.clientSecret ?? "",
          secret.clientCertificate?.certificatePem ?? "",
        ].join("\n"),
      );
    case "jwt_bearer":
      return fingerprint(
        [
          "jwt_bearer",
          secret.serviceAccount.token_uri,
          secret.serviceAccount.client_email,
          secret.subject ?? "",
          secret.scope,
        ].join("\n"),
      );
    default:
      return fingerprint(["refresh_token", secret.tokenUrl, secret.clientId].join("\n"));
  }
}

export class TokenProvider {
  private readonly persistRefreshToken: TokenProviderOptions["persistRefreshToken"];
  private readonly onPersistFailure: (key: string, err: unknown) => void;
  private readonly writeBackAfterMs: number;
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly now: () => number;
  private readonly expirySkewMs: number;
  private readonly requestTimeoutMs: number;
  /** Per-key token state, for the life of the Lambda container. */
  private readonly cache = new Map<string, CacheEntry>();
  /** One refresh at a time per key: concurrent callers share it instead of burning the token twice. */
  private readonly inFlight = new Map<string, Promise<AccessTokenInfo>>();

  constructor(options: TokenProviderOptions) {
    this.persistRefreshToken = options.persistRefreshToken;
    this.onPersistFailure = options.onPersistFailure ?? (() => {});
    this.writeBackAfterMs = options.writeBackAfterMs ?? 0;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
    this.expirySkewMs = options.expirySkewMs ?? 60_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  }

  /** A valid access token for the credential, from cache while it has more than the skew left. */
  async getAccessToken(secret: OAuthSecret, options: GetAccessTokenOptions = {}): Promise<string> {
    return (await this.getToken(secret, options)).accessToken;
  }

  /** {@link getAccessToken} with the grant and expiry, for `check`. */
  async getToken(
    secret: OAuthSecret,
    options: GetAccessTokenOptions = {},
  ): Promise<AccessTokenInfo> {
    const key =
      options.key ??
      fingerprint(
        `${identityOf(secret)}\n${secret.grant === undefined || secret.grant === "refresh_token" ? secret.refreshToken : ""}`,
      );
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const work = this.resolve(key, secret, options.writeBack).finally(() =>
      this.inFlight.delete(key),
    );
    this.inFlight.set(key, work);
    return work;
  }

  private entryFor(key: string, secret: OAuthSecret): CacheEntry {
    const identity = identityOf(secret);
    const stored = "refreshToken" in secret ? secret.refreshToken : undefined;
    const entry = this.cache.get(key);
    const sameCredential =
      entry !== undefined &&
      entry.identity === identity &&
      (stored === undefined ||
        entry.refreshToken === stored ||
        entry.storedRefreshToken === stored ||
        entry.superseded.has(fingerprint(stored)));
    if (entry && sameCredential) {
      // The secret as read now is what is stored, unless it is a cached copy of a token we have
      // since written over (superseded), which says nothing about the store.
      if (stored !== undefined && !entry.superseded.has(fingerprint(stored))) {
        entry.storedRefreshToken = stored;
        entry.storedRotatedAt = "rotatedAt" in secret ? secret.rotatedAt : undefined;
      }
      return entry;
    }
    // New key, or an operator replaced the secret: nothing cached applies to it.
    const fresh: CacheEntry = {
      identity,
      refreshToken: stored,
      storedRefreshToken: stored,
      storedRotatedAt: "rotatedAt" in secret ? secret.rotatedAt : undefined,
      superseded: new Set(),
      usableUntil: 0,
      expiresAt: 0,
      pendingPersist: false,
      revoked: false,
    };
    this.cache.set(key, fresh);
    return fresh;
  }

  private async resolve(
    key: string,
    secret: OAuthSecret,
    writeBack: SecretWriteBack | undefined,
  ): Promise<AccessTokenInfo> {
    const entry = this.entryFor(key, secret);
    const grant = grantOf(secret);
    entry.writeBack = writeBack;
    if (entry.pendingPersist) await this.persist(key, entry);
    if (entry.accessToken && this.now() < entry.usableUntil) {
      return { accessToken: entry.accessToken, grant, expiresAt: entry.expiresAt };
    }

    const requestedAt = this.now();
    let response: TokenResponse;
    try {
      response = await this.requestToken(secret, entry.refreshToken);
    } catch (err) {
      const stored = entry.storedRefreshToken;
      // The provider revoked the rotated token we held unwritten (the stored one is older): fall
      // back to the stored one, and from now on write every rotation back at once.
      // RFC 6749 §5.2 invalid_grant: the refresh token is invalid, expired or revoked.
      if (
        !(err instanceof OAuthRefusedError && err.providerError === "invalid_grant") ||
        stored === undefined ||
        stored === entry.refreshToken
      ) {
        throw err;
      }
      entry.revoked = true;
      entry.refreshToken = stored;
      entry.pendingPersist = false;
      response = await this.requestToken(secret, stored);
    }
    const rotated = response.refreshToken;
    if (
      entry.refreshToken !== undefined &&
      rotated !== undefined &&
      rotated !== entry.refreshToken
    ) {
      entry.superseded.add(fingerprint(entry.refreshToken));
      entry.refreshToken = rotated;
      entry.pendingPersist = true;
    }
    // Measured from the request, not the response, so a slow endpoint never stretches the lifetime.
    entry.expiresAt = requestedAt + response.expiresInS * 1000;
    entry.usableUntil = entry.expiresAt - this.expirySkewMs;
    entry.accessToken = response.accessToken;
    if (entry.pendingPersist) await this.persist(key, entry);
    return { accessToken: response.accessToken, grant, expiresAt: entry.expiresAt };
  }

  /** Writes a pending rotation back, unless the stored token is young (see writeBackAfterMs). */
  private async persist(key: string, entry: CacheEntry): Promise<void> {
    const { refreshToken } = entry;
    if (refreshToken === undefined) return;
    const storedAge =
      entry.storedRotatedAt === undefined ? Infinity : this.now() - entry.storedRotatedAt;
    // Kept pending, so a later call writes it once the stored token has aged enough.
    if (!entry.revoked && storedAge < this.writeBackAfterMs) return;
    try {
      await this.persistRefreshToken({
        key,
        refreshToken,
        ...(entry.writeBack ? { writeBack: entry.writeBack } : {}),
      });
    } catch (err) {
      // Never fails the poll: the token stays in memory (pendingPersist) and the next call in
      // this container writes it again.
      this.onPersistFailure(key, err);
      return;
    }
    entry.pendingPersist = false;
    entry.storedRefreshToken = refreshToken;
    entry.storedRotatedAt = this.now();
  }

  /** The grant's token request; §5.1 success and §5.2 error responses. */
  private async requestToken(
    secret: OAuthSecret,
    refreshToken: string | undefined,
  ): Promise<TokenResponse> {
    const tokenUrl = tokenUrlOf(secret);
    const form = this.grantForm(secret, refreshToken, tokenUrl);
    const where = `token endpoint ${safeUrl(tokenUrl)}`;
    const redact = (text: string) => redactSecrets(text, form);

    let res: Response;
    try {
      res = await this.fetchImpl(tokenUrl, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
        },
        body: form.toString(),
        signal: AbortSignal.timeout(this.requestTimeoutMs),
      });
    } catch (err) {
      const timedOut = err instanceof Error && err.name === "TimeoutError";
      throw new MailIngestError(
        timedOut ? ErrorCode.TIMEOUT : ErrorCode.CONNECT_FAILED,
        `oauth: ${where} ${timedOut ? "timed out" : "unreachable"}`,
        // The cause of a fetch failure names the URL only, never the body we sent.
        { cause: err },
      );
    }

    let body: unknown;
    try {
      body = await res.json();
    } catch {
      body = undefined;
    }

    if (!res.ok) {
      const { error, detail } = providerError(body, res.status);
      // 5xx, 429 and §5.2-adjacent "temporarily_unavailable" are the endpoint's problem, not the
      // credential's: retryable, unlike invalid_grant / invalid_client.
      const temporary =
        res.status >= 500 || res.status === 429 || error === "temporarily_unavailable";
      throw new OAuthRefusedError(
        temporary ? ErrorCode.SYS_TEMP : ErrorCode.OAUTH_FAILED,
        `oauth: ${where} refused the ${GRANT_WHAT[grantOf(secret)]}: ${redact(detail)}`,
        error,
      );
    }

    if (!isRecord(body) || typeof body.access_token !== "string" || body.access_token === "") {
      throw new MailIngestError(
        ErrorCode.OAUTH_FAILED,
        `oauth: ${where} answered without an access_token`,
      );
    }
    const expiresIn = Number(body.expires_in);
    return {
      accessToken: body.access_token,
      expiresInS: Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : DEFAULT_EXPIRES_IN_S,
      refreshToken:
        typeof body.refresh_token === "string" && body.refresh_token !== ""
          ? body.refresh_token
          : undefined,
    };
  }

  private grantForm(
    secret: OAuthSecret,
    refreshToken: string | undefined,
    tokenUrl: string,
  ): URLSearchParams {
    const nowS = Math.floor(this.now() / 1000);
    switch (secret.grant) {
      case "client_credentials": {
        const form = new URLSearchParams({
          grant_type: "client_credentials",
          client_id: secret.clientId,
        });
        if (secret.scope) form.set("scope", secret.scope);
        const cert = secret.clientCertificate;
        if (cert) {
          // RFC 7523 §2.2 and §3: iss = sub = client_id, aud = the token endpoint, a one-time jti.
          const header =
            cert.thumbprint === "x5t"
              ? { x5t: certificateThumbprint(cert.certificatePem, "sha1") }
              : { "x5t#S256": certificateThumbprint(cert.certificatePem, "sha256") };
          const assertion = signJwtRs256(
            header,
            {
              iss: secret.clientId,
              sub: secret.clientId,
              aud: tokenUrl,
              jti: randomUUID(),
              iat: nowS,
              nbf: nowS,
              exp: nowS + CLIENT_ASSERTION_LIFETIME_S,
            },
            cert.privateKeyPem,
          );
          form.set("client_assertion_type", CLIENT_ASSERTION_TYPE);
          form.set("client_assertion", assertion);
        } else if (secret.clientSecret) {
          form.set("client_secret", secret.clientSecret);
        }
        return form;
      }
      case "jwt_bearer": {
        const account = secret.serviceAccount;
        // RFC 7523 §3 and Google's service-account flow: iss = the service account, sub = the
        // impersonated user, aud = token_uri, exp at most an hour after iat.
        const assertion = signJwtRs256(
          {},
          {
            iss: account.client_email,
            ...(secret.subject ? { sub: secret.subject } : {}),
            scope: secret.scope,
            aud: account.token_uri,
            iat: nowS,
            exp: nowS + JWT_BEARER_LIFETIME_S,
          },
          account.private_key,
        );
        return new URLSearchParams({ grant_type: JWT_BEARER_GRANT_TYPE, assertion });
      }
      default: {
        const form = new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: refreshToken ?? secret.refreshToken,
          client_id: secret.clientId,
        });
        // §2.3.1 allows the secret in the body; Microsoft's and Google's endpoints both accept
        // it there, and Microsoft's documents only that form.
        if (secret.clientSecret) form.set("client_secret", secret.clientSecret);
        if (secret.scope) form.set("scope", secret.scope);
        return form;
      }
    }
  }
}

/** The token endpoint refused a request; `providerError` is its §5.2 `error` code, if any. */
export class OAuthRefusedError extends MailIngestError {
  override readonly name = "OAuthRefusedError";
  constructor(
    code: ErrorCode,
    message: string,
    readonly providerError: string | undefined,
  ) {
    super(code, message);
  }
}

interface TokenResponse {
  accessToken: string;
  expiresInS: number;
  refreshToken?: string;
}

const GRANT_WHAT: Record<OAuthGrant, string> = {
  refresh_token: "refresh token",
  client_credentials: "client credentials",
  jwt_bearer: "service account assertion",
};

/**
 * An RFC 6749 §5.2 error body as one bounded line: `error: error_description`, or the HTTP status.
 * Used by the token requests and by `oauth login`.
 */
export function providerError(
  body: unknown,
  status: number,
): { error: string | undefined; detail: string } {
  const error = isRecord(body) && typeof body.error === "string" ? body.error : undefined;
  const description =
    isRecord(body) && typeof body.error_description === "string"
      ? body.error_description.slice(0, MAX_DESCRIPTION_CHARS)
      : undefined;
  const detail = [error?.slice(0, 100) ?? `HTTP ${status}`, description]
    .filter((part) => part)
    .join(": ")
    // One line: provider text may hold CR/LF (Microsoft's descriptions carry trace ids on lines).
    .replace(/[\r\n]+/g, " ");
  return { error, detail };
}

/** The URL without query or credentials, for messages. */
export function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return "(invalid url)";
  }
}

/** Endpoint text could echo what we sent; strip every secret we sent from it before a message. */
function redactSecrets(text: string, form: URLSearchParams): string {
  let out = text;
  for (const name of ["refresh_token", "client_secret", "client_assertion", "assertion"]) {
    const value = form.get(name);
    if (value) out = out.split(value).join("****");
  }
  return out;
}
