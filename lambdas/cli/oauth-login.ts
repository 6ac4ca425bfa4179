/**
 * `mail-ingest oauth login`: obtains a delegated refresh token and stores the refresh-token
 * secret JSON (`{clientId, clientSecret?, refreshToken, tokenUrl, scope, rotatedAt}`) a mailbox's
 * password source reads.
 *
 * - Microsoft: the device authorization grant (RFC 8628), which works on a headless server.
 * - Google: the installed-app loopback flow (RFC 8252 §7.3) with PKCE (RFC 7636, S256).
 *
 * Failures end with exit 1 and one line quoting the provider's `error` and `error_description`
 * (bounded). Nothing secret is printed except the result itself when no destination is given.
 */
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { describeError } from "../errors.ts";
import { writeSecretFile } from "../secrets/file.ts";
import { providerError, safeUrl } from "../secrets/oauth.ts";
import { isRecord } from "../util/is-record.ts";
import { parse } from "./args.ts";
import { type CliIo, EXIT_MAILBOX_FAILED, EXIT_OK, UsageError } from "./io.ts";

const MICROSOFT_AUTHORITY = "https://login.microsoftonline.com";
const MICROSOFT_SCOPE = "https://outlook.office365.com/POP.AccessAsUser.All offline_access";
const GOOGLE_AUTH_URL = "https://accounts.google.com/o/oauth2/v2/auth";
const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";
const GOOGLE_SCOPE = "https://mail.google.com/";
const DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";
/** RFC 8628 §3.2: the default polling interval when the answer has none, s. */
const DEFAULT_INTERVAL_S = 5;
/** RFC 8628 §3.5: slow_down adds 5 s to the interval for this and all later requests. */
const SLOW_DOWN_S = 5;
/** How long the loopback flow waits for the browser, ms. */
const LOOPBACK_TIMEOUT_MS = 5 * 60_000;
/** Per-request budget against the provider, ms. */
const REQUEST_TIMEOUT_MS = 30_000;

/** A failed sign-in: main prints `mail-ingest: oauth login failed: <message>` and exits 1. */
class LoginError extends Error {}

interface RefreshTokenJson {
  clientId: string;
  clientSecret?: string;
  refreshToken: string;
  tokenUrl: string;
  scope: string;
  rotatedAt: string;
}

export async function oauthCommand(args: readonly string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "login")
    throw new UsageError(`unknown oauth command "${sub ?? ""}" (use: oauth login)`);
  const values = parse(rest, {
    provider: { type: "string" },
    tenant: { type: "string" },
    "client-id": { type: "string" },
    "client-secret": { type: "string" },
    authority: { type: "string" },
    scope: { type: "string" },
    out: { type: "string" },
    force: { type: "boolean", default: false },
    "secret-id": { type: "string" },
    "ssm-parameter": { type: "string" },
  });
  const provider = values.provider;
  if (provider !== "microsoft" && provider !== "google") {
    throw new UsageError("--provider must be microsoft or google");
  }
  const clientId = values["client-id"];
  if (!clientId) throw new UsageError("--client-id is required");
  const destinations = [values.out, values["secret-id"], values["ssm-parameter"]].filter(
    (v) => v !== undefined,
  );
  if (destinations.length > 1) {
    throw new UsageError("give at most one of --out, --secret-id, --ssm-parameter");
  }
  const out = values.out === undefined ? undefined : resolve(io.cwd, values.out);
  try {
    // Before any sign-in: a user should not consent only to be told the file exists.
    if (out && !values.force && (await exists(out))) {
      throw new LoginError(`${out} exists; use --force to overwrite it`);
    }
    const clientSecret = values["client-secret"];
    const result =
      provider === "microsoft"
        ? await deviceCodeFlow(io, {
            authority: trimSlash(values.authority ?? MICROSOFT_AUTHORITY),
            tenant: values.tenant ?? "organizations",
            clientId,
            clientSecret,
            scope: values.scope ?? MICROSOFT_SCOPE,
          })
        : await loopbackFlow(io, {
            authUrl: values.authority
              ? `${trimSlash(values.authority)}/o/oauth2/v2/auth`
              : GOOGLE_AUTH_URL,
            tokenUrl: values.authority ? `${trimSlash(values.authority)}/token` : GOOGLE_TOKEN_URL,
            clientId,
            clientSecret,
            scope: values.scope ?? GOOGLE_SCOPE,
          });
    const text = `${JSON.stringify(result, null, 2)}\n`;
    if (out) {
      await writeSecretFile(out, text, { replace: values.force === true });
      io.stderr.write(`mail-ingest: refresh token stored in ${out} (mode 0600)\n`);
    } else if (values["secret-id"]) {
      await storeInSecretsManager(values["secret-id"], text);
      io.stderr.write(`mail-ingest: refresh token stored in secret ${values["secret-id"]}\n`);
    } else if (values["ssm-parameter"]) {
      await storeInSsm(values["ssm-parameter"], text);
      io.stderr.write(
        `mail-ingest: refresh token stored in SSM parameter ${values["ssm-parameter"]}\n`,
      );
    } else {
      io.stdout.write(text);
    }
    return EXIT_OK;
  } catch (err) {
    const message = err instanceof LoginError ? err.message : describeError(err);
    io.stderr.write(`mail-ingest: oauth login failed: ${message.replace(/[\r\n]+/g, " ")}\n`);
    return EXIT_MAILBOX_FAILED;
  }
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** POSTs a form; returns the JSON body and status. Network failures name the URL only. */
async function postForm(url: string, form: Record<string, string | undefined>) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) if (v !== undefined) body.set(k, v);
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: body.toString(),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    throw new LoginError(`${safeUrl(url)} unreachable: ${describeError(err)}`);
  }
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    json = undefined;
  }
  return { ok: res.ok, status: res.status, json };
}

function refused(where: string, status: number, json: unknown): LoginError {
  return new LoginError(`${where}: ${providerError(json, status).detail}`);
}

/** The §5.1 answer's refresh token; a sign-in without one cannot serve an unattended poller. */
function tokenResult(
  json: unknown,
  base: { clientId: string; clientSecret?: string; tokenUrl: string; scope: string },
): RefreshTokenJson {
  if (!isRecord(json) || typeof json.refresh_token !== "string" || json.refresh_token === "") {
    throw new LoginError(
      "the provider issued no refresh_token (Microsoft: include offline_access in --scope; Google: revoke the app's access and sign in again)",
    );
  }
  return {
    clientId: base.clientId,
    ...(base.clientSecret ? { clientSecret: base.clientSecret } : {}),
    refreshToken: json.refresh_token,
    tokenUrl: base.tokenUrl,
    scope: base.scope,
    rotatedAt: new Date().toISOString(),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function deviceCodeFlow(
  io: CliIo,
  o: { authority: string; tenant: string; clientId: string; clientSecret?: string; scope: string },
): Promise<RefreshTokenJson> {
  const base = `${o.authority}/${encodeURIComponent(o.tenant)}/oauth2/v2.0`;
  const tokenUrl = `${base}/token`;
  // RFC 8628 §3.1 device authorization request.
  const start = await postForm(`${base}/devicecode`, { client_id: o.clientId, scope: o.scope });
  const d = start.json;
  if (
    !start.ok ||
    !isRecord(d) ||
    typeof d.device_code !== "string" ||
    typeof d.user_code !== "string"
  ) {
    throw refused("device authorization refused", start.status, d);
  }
  const uri =
    typeof d.verification_uri === "string"
      ? d.verification_uri
      : "https://microsoft.com/devicelogin";
  io.stderr.write(`To sign in, open ${uri} and enter the code ${d.user_code}\n`);
  let intervalS = Number(d.interval) > 0 ? Number(d.interval) : DEFAULT_INTERVAL_S;
  const expiresAt = Date.now() + (Number(d.expires_in) > 0 ? Number(d.expires_in) : 900) * 1000;
  for (;;) {
    await sleep(intervalS * 1000);
    if (Date.now() > expiresAt)
      throw new LoginError("expired_token: the code expired before sign-in");
    // RFC 8628 §3.4 device access token request.
    const res = await postForm(tokenUrl, {
      grant_type: DEVICE_CODE_GRANT,
      client_id: o.clientId,
      client_secret: o.clientSecret,
      device_code: d.device_code,
    });
    if (res.ok) return tokenResult(res.json, { ...o, tokenUrl });
    const { error } = providerError(res.json, res.status);
    // RFC 8628 §3.5: keep polling while pending; slow down when told to; anything else ends it.
    if (error === "authorization_pending") continue;
    if (error === "slow_down") {
      intervalS += SLOW_DOWN_S;
      continue;
    }
    throw refused("sign-in failed", res.status, res.json);
  }
}

async function loopbackFlow(
  io: CliIo,
  o: { authUrl: string; tokenUrl: string; clientId: string; clientSecret?: string; scope: string },
): Promise<RefreshTokenJson> {
  // RFC 7636 §4.1-4.2: a high-entropy verifier, sent only to the token endpoint; S256 challenge.
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  // RFC 6749 §10.12: state binds the redirect to this sign-in (CSRF).
  const state = randomBytes(16).toString("base64url");
  let settle: (r: { code: string } | { error: LoginError }) => void = () => {};
  const answered = new Promise<{ code: string } | { error: LoginError }>((r) => {
    settle = r;
  });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname !== "/") {
      res.writeHead(404).end();
      return;
    }
    const q = url.searchParams;
    const reply = (status: number, text: string) => {
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
      res.end(`${text}\n`);
    };
    if (q.get("state") !== state) {
      reply(400, "Sign-in failed: state mismatch. Close this window.");
      settle({
        error: new LoginError(
          "state mismatch in the redirect (RFC 6749 §10.12); sign-in abandoned",
        ),
      });
      return;
    }
    const error = q.get("error");
    const code = q.get("code");
    if (error || !code) {
      reply(400, "Sign-in failed. Close this window.");
      const detail = providerError(
        {
          error: error ?? "invalid_request",
          error_description: q.get("error_description") ?? undefined,
        },
        400,
      ).detail;
      settle({ error: new LoginError(`authorization refused: ${detail}`) });
      return;
    }
    reply(200, "Signed in to mail-ingest. You can close this window.");
    settle({ code });
  });
  // RFC 8252 §7.3: loopback IP literal, any free port.
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  try {
    const auth = new URL(o.authUrl);
    for (const [k, v] of Object.entries({
      client_id: o.clientId,
      redirect_uri: redirectUri,
      response_type: "code",
      scope: o.scope,
      state,
      code_challenge: challenge,
      code_challenge_method: "S256",
      // Google issues a refresh token only for offline access, and again only with consent.
      access_type: "offline",
      prompt: "consent",
    })) {
      auth.searchParams.set(k, v);
    }
    io.stderr.write(`Open this URL in a browser on this machine to sign in:\n${auth.toString()}\n`);
    // Cleared below: a pending timer would keep the process alive after the sign-in.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<{ error: LoginError }>((r) => {
      timer = setTimeout(
        () => r({ error: new LoginError("no sign-in within 5 minutes") }),
        LOOPBACK_TIMEOUT_MS,
      );
    });
    const outcome = await Promise.race([answered, timeout]).finally(() => clearTimeout(timer));
    if ("error" in outcome) throw outcome.error;
    const res = await postForm(o.tokenUrl, {
      grant_type: "authorization_code",
      code: outcome.code,
      redirect_uri: redirectUri,
      client_id: o.clientId,
      client_secret: o.clientSecret,
      code_verifier: verifier,
    });
    if (!res.ok) throw refused("code exchange refused", res.status, res.json);
    return tokenResult(res.json, { ...o, tokenUrl: o.tokenUrl });
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** A new version of the secret, or the secret itself when it does not exist yet. */
async function storeInSecretsManager(secretId: string, text: string): Promise<void> {
  const sm = await import("@aws-sdk/client-secrets-manager");
  const client = new sm.SecretsManagerClient({});
  try {
    await client.send(new sm.PutSecretValueCommand({ SecretId: secretId, SecretString: text }));
  } catch (err) {
    if (!(err instanceof Error && err.name === "ResourceNotFoundException")) throw err;
    await client.send(new sm.CreateSecretCommand({ Name: secretId, SecretString: text }));
  }
}

async function storeInSsm(name: string, text: string): Promise<void> {
  const ssm = await import("@aws-sdk/client-ssm");
  await new ssm.SSMClient({}).send(
    new ssm.PutParameterCommand({ Name: name, Value: text, Type: "SecureString", Overwrite: true }),
  );
}
