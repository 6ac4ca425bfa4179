/**
 * OAuth2 access tokens for XOAUTH2 POP3 logins (Microsoft 365, Gmail): the refresh-token grant of
 * RFC 6749 §6, with an in-memory cache per credential and write-back of rotated refresh tokens.
 */
import { createHash } from "node:crypto";
import { ErrorCode, MailIngestError } from "../errors.ts";
import { isRecord } from "../util/is-record.ts";
import type { SecretWriteBack } from "./source.ts";

/** What a mailbox's secret holds for OAuth2 (one secret per mailbox). */
export interface OAuthSecret {
  readonly clientId: string;
  /** Absent for public clients (RFC 6749 §2.1). */
  readonly clientSecret?: string;
  readonly refreshToken: string;
  /** e.g. `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`, `https://oauth2.googleapis.com/token`. */
  readonly tokenUrl: string;
  /** Space-separated scopes (RFC 6749 §3.3). */
  readonly scope?: string;
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
   * Stores a rotated refresh token durably. Awaited before the new access token is used: once the
   * endpoint has rotated, the old refresh token may stop working, so losing the new one would
   * lock the mailbox out until an operator re-consents.
   */
  readonly persistRefreshToken: (rotation: RefreshTokenRotation) => Promise<void>;
  readonly fetch?: typeof globalThis.fetch;
  /** Epoch ms. */
  readonly now?: () => number;
  /** Access tokens are refreshed this long before they expire, ms. @default 60_000 */
  readonly expirySkewMs?: number;
  /** Whole token request budget, ms. @default 10_000 */
  readonly requestTimeoutMs?: number;
}

export interface GetAccessTokenOptions {
  /** Cache key; one per credential. @default derived from tokenUrl, clientId and the refresh token */
  readonly key?: string;
  /** Where a rotated refresh token can be stored; handed to `persistRefreshToken`. */
  readonly writeBack?: SecretWriteBack;
}

/** Lifetime assumed when the endpoint omits `expires_in` (it is only RECOMMENDED, §5.1), s. */
const DEFAULT_EXPIRES_IN_S = 300;
/** Longest error_description quoted in our messages; endpoint text is not ours to trust. */
const MAX_DESCRIPTION_CHARS = 300;

interface CacheEntry {
  readonly tokenUrl: string;
  readonly clientId: string;
  /** The newest refresh token we know of for this key. */
  refreshToken: string;
  /**
   * Fingerprints of refresh tokens we rotated away from. The secret cache (Powertools, maxAge)
   * can hand us the old value for a while after a rotation; we must not send it again.
   */
  readonly superseded: Set<string>;
  accessToken?: string;
  /** Epoch ms after which `accessToken` is not used. */
  usableUntil: number;
  /** A rotated refresh token that has not been stored yet: retried before any token is handed out. */
  pendingPersist: boolean;
  /** Where the credential's secret can be updated, as the latest caller said. */
  writeBack?: SecretWriteBack;
}

function fingerprint(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

export class TokenProvider {
  private readonly persistRefreshToken: TokenProviderOptions["persistRefreshToken"];
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly now: () => number;
  private readonly expirySkewMs: number;
  private readonly requestTimeoutMs: number;
  /** Per-key token state, for the life of the Lambda container. */
  private readonly cache = new Map<string, CacheEntry>();
  /** One refresh at a time per key: concurrent callers share it instead of burning the token twice. */
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(options: TokenProviderOptions) {
    this.persistRefreshToken = options.persistRefreshToken;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
    this.expirySkewMs = options.expirySkewMs ?? 60_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  }

  /** A valid access token for the credential, from cache while it has more than the skew left. */
  async getAccessToken(secret: OAuthSecret, options: GetAccessTokenOptions = {}): Promise<string> {
    const key =
      options.key ?? fingerprint(`${secret.tokenUrl}\n${secret.clientId}\n${secret.refreshToken}`);
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const work = this.resolve(key, secret, options.writeBack).finally(() =>
      this.inFlight.delete(key),
    );
    this.inFlight.set(key, work);
    return work;
  }

  private entryFor(key: string, secret: OAuthSecret): CacheEntry {
    const entry = this.cache.get(key);
    const sameCredential =
      entry !== undefined &&
      entry.tokenUrl === secret.tokenUrl &&
      entry.clientId === secret.clientId &&
      (entry.refreshToken === secret.refreshToken ||
        entry.superseded.has(fingerprint(secret.refreshToken)));
    if (entry && sameCredential) return entry;
    // New key, or an operator replaced the secret: nothing cached applies to it.
    const fresh: CacheEntry = {
      tokenUrl: secret.tokenUrl,
      clientId: secret.clientId,
      refreshToken: secret.refreshToken,
      superseded: new Set(),
      usableUntil: 0,
      pendingPersist: false,
    };
    this.cache.set(key, fresh);
    return fresh;
  }

  private async resolve(
    key: string,
    secret: OAuthSecret,
    writeBack: SecretWriteBack | undefined,
  ): Promise<string> {
    const entry = this.entryFor(key, secret);
    entry.writeBack = writeBack;
    if (entry.pendingPersist) await this.persist(key, entry);
    if (entry.accessToken && this.now() < entry.usableUntil) return entry.accessToken;

    const requestedAt = this.now();
    const response = await this.requestToken({ ...secret, refreshToken: entry.refreshToken });
    const rotated = response.refreshToken;
    if (rotated !== undefined && rotated !== entry.refreshToken) {
      entry.superseded.add(fingerprint(entry.refreshToken));
      entry.refreshToken = rotated;
      entry.pendingPersist = true;
    }
    // Measured from the request, not the response, so a slow endpoint never stretches the lifetime.
    entry.usableUntil = requestedAt + response.expiresInS * 1000 - this.expirySkewMs;
    // Cached even if the write below fails: every call persists a pending rotation first, so the
    // token is never handed out before its refresh token is stored.
    entry.accessToken = response.accessToken;
    if (entry.pendingPersist) await this.persist(key, entry);
    return response.accessToken;
  }

  private async persist(key: string, entry: CacheEntry): Promise<void> {
    try {
      await this.persistRefreshToken({
        key,
        refreshToken: entry.refreshToken,
        ...(entry.writeBack ? { writeBack: entry.writeBack } : {}),
      });
    } catch (err) {
      // The new token stays in memory (pendingPersist), so the next call in this container
      // retries the write before using any access token.
      throw new MailIngestError(
        ErrorCode.SECRET_UNRESOLVED,
        `oauth: could not store the rotated refresh token for ${key}`,
        { cause: err },
      );
    }
    entry.pendingPersist = false;
  }

  /** RFC 6749 §6 refresh request; §5.1 success and §5.2 error responses. */
  private async requestToken(secret: OAuthSecret): Promise<{
    accessToken: string;
    expiresInS: number;
    refreshToken?: string;
  }> {
    const form = new URLSearchParams({
      grant_type: "refresh_token",
      refresh_token: secret.refreshToken,
      client_id: secret.clientId,
    });
    // §2.3.1 allows the secret in the body; Microsoft's and Google's endpoints both accept it there,
    // and Microsoft's documents only that form.
    if (secret.clientSecret) form.set("client_secret", secret.clientSecret);
    if (secret.scope) form.set("scope", secret.scope);
    const where = `token endpoint ${safeUrl(secret.tokenUrl)}`;
    const redact = (text: string) => redactSecrets(text, secret);

    let res: Response;
    try {
      res = await this.fetchImpl(secret.tokenUrl, {
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
      const error = isRecord(body) && typeof body.error === "string" ? body.error : undefined;
      const description =
        isRecord(body) && typeof body.error_description === "string"
          ? body.error_description.slice(0, MAX_DESCRIPTION_CHARS)
          : undefined;
      const detail = redact(
        [error ?? `HTTP ${res.status}`, description].filter((part) => part).join(": "),
      );
      // 5xx, 429 and §5.2-adjacent "temporarily_unavailable" are the endpoint's problem, not the
      // credential's: retryable, unlike invalid_grant / invalid_client.
      const temporary =
        res.status >= 500 || res.status === 429 || error === "temporarily_unavailable";
      throw new MailIngestError(
        temporary ? ErrorCode.SYS_TEMP : ErrorCode.OAUTH_FAILED,
        `oauth: ${where} refused the refresh token: ${detail}`,
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
}

/** The URL without query or credentials, for messages. */
function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return "(invalid url)";
  }
}

/** Endpoint text could echo what we sent; strip our secrets from it before it reaches a message. */
function redactSecrets(text: string, secret: OAuthSecret): string {
  let out = text;
  for (const value of [secret.refreshToken, secret.clientSecret]) {
    if (value) out = out.split(value).join("****");
  }
  return out;
}
