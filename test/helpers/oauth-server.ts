/**
 * A small local OAuth2 authority for tests, playing Microsoft's identity platform and Google's
 * token endpoint on one loopback HTTP port:
 *
 * - `/{tenant}/oauth2/v2.0/token` and `/token`: the refresh_token, client_credentials (client
 *   secret, or a private_key_jwt assertion, RFC 7523 §2.2, whose RS256 signature, claims and
 *   `x5t#S256` / `x5t` thumbprint are checked), jwt_bearer (RFC 7523 §2.1, signature checked
 *   against the service account's public key), device_code (RFC 8628 §3.4) and
 *   authorization_code with PKCE (RFC 7636 §4.6) grants;
 * - `/{tenant}/oauth2/v2.0/devicecode`: RFC 8628 §3.1-3.2;
 * - `/o/oauth2/v2/auth`: the (Google-style) authorization endpoint, which "consents" as `authorizeAs` and redirects;
 * - `/introspect`: RFC 7662 token introspection, which Dovecot's oauth2 passdb calls
 *   (`introspection_mode = post`), answering `{active, username}`.
 *
 * Access tokens are JWT-shaped (signed with a key of the server's) so `check` can show their
 * scopes or roles; the server itself only trusts its own table of issued tokens.
 */
import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  verify,
  X509Certificate,
} from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { signJwtRs256 } from "../../lambdas/secrets/jws.ts";

export interface RegisteredClient {
  readonly clientId: string;
  readonly clientSecret?: string;
  /** For private_key_jwt: the certificate whose key signs the assertions. */
  readonly certificatePem?: string;
  /** App-only access: the mailbox the app may open (Exchange's Add-MailboxPermission). */
  readonly mailbox?: string;
  /** Roles put into app-only tokens. @default ["POP.AccessAsApp"] */
  readonly roles?: readonly string[];
}

export interface ServiceAccount {
  readonly clientEmail: string;
  readonly publicKeyPem: string;
}

export interface TokenRequestLog {
  readonly path: string;
  readonly form: URLSearchParams;
  readonly status: number;
  readonly error?: string;
}

interface AccessGrant {
  readonly username: string;
  readonly expiresAt: number;
}

interface RefreshGrant {
  readonly clientId: string;
  readonly username: string;
  readonly scope: string;
}

interface DeviceAuthorization {
  readonly clientId: string;
  readonly scope: string;
  readonly userCode: string;
  readonly expiresAt: number;
  state: "pending" | "approved" | "denied";
  username?: string;
  polls: number;
}

interface AuthorizationCode {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly challenge: string;
  readonly scope: string;
  readonly username: string;
}

export interface OAuthServerHandle {
  /** `http://127.0.0.1:PORT` (the `--authority` of `oauth login`). */
  readonly origin: string;
  /** Microsoft-style token endpoint of `tenant`. */
  tokenUrl(tenant?: string): string;
  /** Google-style token endpoint. */
  readonly googleTokenUrl: string;
  readonly authorizationUrl: string;
  readonly introspectionUrl: string;
  /** Every token-endpoint request, in order. */
  readonly requests: TokenRequestLog[];
  /** Every access token issued, in order (tests check they never appear in logs). */
  readonly issuedAccessTokens: string[];
  /** Every refresh token issued, in order. */
  readonly issuedRefreshTokens: string[];
  /** Access token lifetime, s. */
  expiresInS: number;
  /** Whether a refresh issues a new refresh token (Microsoft does). */
  rotateRefreshTokens: boolean;
  /** Whether a rotated-away refresh token stops working (reuse detection). */
  revokeOnRotate: boolean;
  /** Answer the first device-code poll with slow_down (RFC 8628 §3.5). */
  slowDownOnce: boolean;
  /** Device-code poll interval handed out, s. */
  deviceInterval: number;
  /** Who consents at `/auth`; undefined refuses consent (error=access_denied). */
  authorizeAs: string | undefined;
  /** Whether the authorization_code grant returns a refresh token. */
  issueRefreshTokenOnCode: boolean;
  registerClient(client: RegisteredClient): void;
  registerServiceAccount(account: ServiceAccount): void;
  /** A refresh token for `username`, as if consented to earlier. */
  issueRefreshToken(clientId: string, username: string, scope?: string): string;
  /** Revokes a refresh token (RFC 7009 style): later use answers invalid_grant. */
  revokeRefreshToken(token: string): void;
  /** Revokes an access token: introspection answers `{active: false}`. */
  revokeAccessToken(token: string): void;
  /** The user signs in on the verification page and approves (or denies) the device code. */
  approveDevice(userCode: string, username: string): void;
  denyDevice(userCode: string): void;
  /** Device codes handed out, in order. */
  readonly deviceCodes: { userCode: string; polls: () => number }[];
  close(): Promise<void>;
}

const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code";

class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(`${error}: ${description}`);
  }
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");
const token = (prefix: string) => `${prefix}-${randomBytes(18).toString("base64url")}`;

/** Parses and checks an RS256 compact JWS; returns header and claims. */
function verifyJws(
  jws: string,
  publicKey: ReturnType<typeof createPublicKey>,
): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const parts = jws.split(".");
  if (parts.length !== 3) throw new OAuthError(400, "invalid_request", "malformed JWT");
  const [h, c, s] = parts as [string, string, string];
  const header = JSON.parse(Buffer.from(h, "base64url").toString("utf8")) as Record<
    string,
    unknown
  >;
  const claims = JSON.parse(Buffer.from(c, "base64url").toString("utf8")) as Record<
    string,
    unknown
  >;
  if (header.alg !== "RS256") throw new OAuthError(400, "invalid_request", "alg must be RS256");
  const ok = verify("sha256", Buffer.from(`${h}.${c}`), publicKey, Buffer.from(s, "base64url"));
  if (!ok) throw new OAuthError(401, "invalid_client", "signature does not verify");
  return { header, claims };
}

function checkTimes(claims: Record<string, unknown>, maxLifetimeS: number): void {
  const now = Math.floor(Date.now() / 1000);
  const { exp, iat } = claims;
  if (typeof exp !== "number" || exp <= now) {
    throw new OAuthError(400, "invalid_grant", "assertion expired or without exp");
  }
  const from = typeof iat === "number" ? iat : now;
  if (exp - from > maxLifetimeS) {
    throw new OAuthError(400, "invalid_grant", `assertion lifetime over ${maxLifetimeS} s`);
  }
}

export async function startOAuthServer(): Promise<OAuthServerHandle> {
  const signingKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
    type: "pkcs8",
    format: "pem",
  }) as string;
  const clients = new Map<string, RegisteredClient>();
  const accounts = new Map<string, ServiceAccount>();
  const access = new Map<string, AccessGrant>();
  const refresh = new Map<string, RefreshGrant>();
  const devices = new Map<string, DeviceAuthorization>();
  const codes = new Map<string, AuthorizationCode>();
  const usedJti = new Set<string>();
  let origin = "";

  const handle = {
    requests: [] as TokenRequestLog[],
    issuedAccessTokens: [] as string[],
    issuedRefreshTokens: [] as string[],
    expiresInS: 3600,
    rotateRefreshTokens: true,
    revokeOnRotate: false,
    slowDownOnce: false,
    deviceInterval: 1,
    authorizeAs: "alice" as string | undefined,
    issueRefreshTokenOnCode: true,
    deviceCodes: [] as { userCode: string; polls: () => number }[],
  };

  const issueAccess = (username: string, claims: Record<string, unknown>) => {
    const now = Math.floor(Date.now() / 1000);
    const at = signJwtRs256(
      { kid: "test" },
      { ...claims, upn: username, iat: now, exp: now + handle.expiresInS, jti: token("j") },
      signingKey,
    );
    access.set(at, { username, expiresAt: Date.now() + handle.expiresInS * 1000 });
    handle.issuedAccessTokens.push(at);
    return at;
  };
  const issueRefresh = (grant: RefreshGrant) => {
    const rt = token("rt");
    refresh.set(rt, grant);
    handle.issuedRefreshTokens.push(rt);
    return rt;
  };
  const delegated = (grant: RefreshGrant, withRefresh: boolean) => ({
    token_type: "Bearer",
    access_token: issueAccess(grant.username, { scp: grant.scope, appid: grant.clientId }),
    expires_in: handle.expiresInS,
    scope: grant.scope,
    ...(withRefresh ? { refresh_token: issueRefresh(grant) } : {}),
  });

  /** RFC 6749 §2.3: client_secret in the body, or a private_key_jwt assertion (RFC 7523 §2.2). */
  const authenticateClient = (form: URLSearchParams, url: string): RegisteredClient => {
    const clientId = form.get("client_id") ?? "";
    const client = clients.get(clientId);
    if (!client) throw new OAuthError(400, "invalid_client", `unknown client ${clientId}`);
    if (form.get("client_assertion_type") === CLIENT_ASSERTION_TYPE) {
      if (!client.certificatePem) throw new OAuthError(401, "invalid_client", "no certificate");
      const cert = new X509Certificate(client.certificatePem);
      const { header, claims } = verifyJws(form.get("client_assertion") ?? "", cert.publicKey);
      const sha256 = b64url(createHash("sha256").update(cert.raw).digest());
      const sha1 = b64url(createHash("sha1").update(cert.raw).digest());
      if (header["x5t#S256"] !== sha256 && header.x5t !== sha1) {
        throw new OAuthError(401, "invalid_client", "AADSTS700027: thumbprint does not match");
      }
      if (claims.iss !== clientId || claims.sub !== clientId) {
        throw new OAuthError(401, "invalid_client", "iss and sub must be the client id");
      }
      if (claims.aud !== url)
        throw new OAuthError(401, "invalid_client", "aud is not this endpoint");
      if (typeof claims.jti !== "string" || usedJti.has(claims.jti)) {
        throw new OAuthError(401, "invalid_client", "jti missing or replayed");
      }
      usedJti.add(claims.jti);
      checkTimes(claims, 600);
      return client;
    }
    if (client.clientSecret !== undefined && form.get("client_secret") !== client.clientSecret) {
      throw new OAuthError(401, "invalid_client", "AADSTS7000215: invalid client secret");
    }
    return client;
  };

  const tokenGrant = (form: URLSearchParams, url: string): Record<string, unknown> => {
    const grantType = form.get("grant_type");
    switch (grantType) {
      case "refresh_token": {
        const client = authenticateClient(form, url);
        const sent = form.get("refresh_token") ?? "";
        const grant = refresh.get(sent);
        if (!grant || grant.clientId !== client.clientId) {
          throw new OAuthError(400, "invalid_grant", "AADSTS70000: refresh token revoked");
        }
        if (handle.rotateRefreshTokens && handle.revokeOnRotate) refresh.delete(sent);
        return delegated(grant, handle.rotateRefreshTokens);
      }
      case "client_credentials": {
        const client = authenticateClient(form, url);
        if (!client.mailbox) throw new OAuthError(400, "unauthorized_client", "no app access");
        return {
          token_type: "Bearer",
          access_token: issueAccess(client.mailbox, {
            roles: client.roles ?? ["POP.AccessAsApp"],
            appid: client.clientId,
          }),
          expires_in: handle.expiresInS,
        };
      }
      case JWT_BEARER: {
        const assertion = form.get("assertion") ?? "";
        const [, c] = assertion.split(".");
        const unverified = JSON.parse(Buffer.from(c ?? "", "base64url").toString("utf8")) as Record<
          string,
          unknown
        >;
        const account = accounts.get(String(unverified.iss));
        if (!account) throw new OAuthError(401, "invalid_client", "unknown service account");
        const { claims } = verifyJws(assertion, createPublicKey(account.publicKeyPem));
        if (claims.aud !== url) throw new OAuthError(400, "invalid_grant", "aud is not token_uri");
        checkTimes(claims, 3600);
        if (typeof claims.scope !== "string" || typeof claims.sub !== "string") {
          throw new OAuthError(400, "unauthorized_client", "scope and sub are required");
        }
        return {
          token_type: "Bearer",
          access_token: issueAccess(claims.sub, { scope: claims.scope, azp: account.clientEmail }),
          expires_in: handle.expiresInS,
        };
      }
      case DEVICE_CODE: {
        const client = authenticateClient(form, url);
        const device = devices.get(form.get("device_code") ?? "");
        if (!device || device.clientId !== client.clientId) {
          throw new OAuthError(400, "invalid_grant", "unknown device code");
        }
        device.polls += 1;
        if (Date.now() > device.expiresAt)
          throw new OAuthError(400, "expired_token", "code expired");
        if (handle.slowDownOnce && device.polls === 1) {
          throw new OAuthError(400, "slow_down", "polling too fast");
        }
        if (device.state === "denied") {
          throw new OAuthError(400, "access_denied", "AADSTS65004: user declined consent");
        }
        if (device.state === "pending" || !device.username) {
          throw new OAuthError(400, "authorization_pending", "waiting for the user");
        }
        devices.delete(form.get("device_code") ?? "");
        return delegated(
          { clientId: client.clientId, username: device.username, scope: device.scope },
          device.scope.split(" ").includes("offline_access"),
        );
      }
      case "authorization_code": {
        const client = authenticateClient(form, url);
        const code = codes.get(form.get("code") ?? "");
        codes.delete(form.get("code") ?? "");
        if (!code || code.clientId !== client.clientId) {
          throw new OAuthError(400, "invalid_grant", "unknown or used code");
        }
        if (form.get("redirect_uri") !== code.redirectUri) {
          throw new OAuthError(400, "invalid_grant", "redirect_uri mismatch");
        }
        // RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) == code_challenge.
        const verifier = form.get("code_verifier") ?? "";
        if (b64url(createHash("sha256").update(verifier).digest()) !== code.challenge) {
          throw new OAuthError(400, "invalid_grant", "PKCE verification failed");
        }
        return delegated(
          { clientId: client.clientId, username: code.username, scope: code.scope },
          handle.issueRefreshTokenOnCode,
        );
      }
      default:
        throw new OAuthError(400, "unsupported_grant_type", String(grantType));
    }
  };

  const route = (
    req: IncomingMessage,
    form: URLSearchParams,
  ): { status: number; body: unknown; location?: string } => {
    const url = new URL(req.url ?? "/", origin);
    if (req.method === "GET" && url.pathname === "/o/oauth2/v2/auth") {
      const q = url.searchParams;
      const redirect = new URL(q.get("redirect_uri") ?? "");
      redirect.searchParams.set("state", q.get("state") ?? "");
      const client = clients.get(q.get("client_id") ?? "");
      if (!client || q.get("code_challenge_method") !== "S256" || !q.get("code_challenge")) {
        redirect.searchParams.set("error", "invalid_request");
      } else if (handle.authorizeAs === undefined) {
        redirect.searchParams.set("error", "access_denied");
        redirect.searchParams.set("error_description", "The user denied consent");
      } else {
        const code = token("code");
        codes.set(code, {
          clientId: client.clientId,
          redirectUri: q.get("redirect_uri") ?? "",
          challenge: q.get("code_challenge") ?? "",
          scope: q.get("scope") ?? "",
          username: handle.authorizeAs,
        });
        redirect.searchParams.set("code", code);
      }
      return { status: 302, body: "", location: redirect.toString() };
    }
    if (req.method !== "POST") return { status: 405, body: { error: "invalid_request" } };
    if (url.pathname === "/introspect") {
      const grant = access.get(form.get("token") ?? "");
      if (!grant || grant.expiresAt <= Date.now()) return { status: 200, body: { active: false } };
      return { status: 200, body: { active: true, username: grant.username } };
    }
    if (url.pathname.endsWith("/devicecode")) {
      const clientId = form.get("client_id") ?? "";
      if (!clients.has(clientId)) {
        return {
          status: 400,
          body: {
            error: "unauthorized_client",
            error_description: "AADSTS700016: application not found in the directory",
          },
        };
      }
      if (!url.pathname.startsWith("/tenant") && !url.pathname.startsWith("/organizations")) {
        return {
          status: 400,
          body: { error: "invalid_request", error_description: "AADSTS90002: Tenant not found." },
        };
      }
      const deviceCode = token("dc");
      const userCode = randomBytes(4).toString("hex").toUpperCase();
      const device: DeviceAuthorization = {
        clientId,
        scope: form.get("scope") ?? "",
        userCode,
        expiresAt: Date.now() + 900_000,
        state: "pending",
        polls: 0,
      };
      devices.set(deviceCode, device);
      handle.deviceCodes.push({ userCode, polls: () => device.polls });
      return {
        status: 200,
        body: {
          device_code: deviceCode,
          user_code: userCode,
          verification_uri: `${origin}/devicelogin`,
          expires_in: 900,
          interval: handle.deviceInterval,
          message: `To sign in, use a web browser to open the page ${origin}/devicelogin and enter the code ${userCode} to authenticate.`,
        },
      };
    }
    if (url.pathname.endsWith("/token")) {
      const endpoint = `${origin}${url.pathname}`;
      try {
        const body = tokenGrant(form, endpoint);
        handle.requests.push({ path: url.pathname, form, status: 200 });
        return { status: 200, body };
      } catch (err) {
        if (!(err instanceof OAuthError)) throw err;
        handle.requests.push({ path: url.pathname, form, status: err.status, error: err.error });
        return {
          status: err.status,
          body: { error: err.error, error_description: err.description },
        };
      }
    }
    return { status: 404, body: { error: "not_found" } };
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let result: { status: number; body: unknown; location?: string };
      try {
        result = route(req, new URLSearchParams(Buffer.concat(chunks).toString("utf8")));
      } catch (err) {
        result = { status: 500, body: { error: "server_error", error_description: String(err) } };
      }
      if (result.location) {
        res.writeHead(result.status, { location: result.location });
        res.end();
        return;
      }
      res.writeHead(result.status, { "content-type": "application/json" });
      res.end(JSON.stringify(result.body));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const findDevice = (userCode: string) => {
    for (const device of devices.values()) if (device.userCode === userCode) return device;
    throw new Error(`no device authorization with user code ${userCode}`);
  };

  return Object.assign(handle, {
    origin,
    tokenUrl: (tenant = "tenant") => `${origin}/${tenant}/oauth2/v2.0/token`,
    googleTokenUrl: `${origin}/token`,
    authorizationUrl: `${origin}/o/oauth2/v2/auth`,
    introspectionUrl: `${origin}/introspect`,
    registerClient: (client: RegisteredClient) => {
      clients.set(client.clientId, client);
    },
    registerServiceAccount: (account: ServiceAccount) => {
      accounts.set(account.clientEmail, account);
    },
    issueRefreshToken: (
      clientId: string,
      username: string,
      scope = "POP.AccessAsUser.All offline_access",
    ) => issueRefresh({ clientId, username, scope }),
    revokeRefreshToken: (rt: string) => {
      refresh.delete(rt);
    },
    revokeAccessToken: (at: string) => {
      access.delete(at);
    },
    approveDevice: (userCode: string, username: string) => {
      const device = findDevice(userCode);
      device.state = "approved";
      device.username = username;
    },
    denyDevice: (userCode: string) => {
      findDevice(userCode).state = "denied";
    },
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  });
}
