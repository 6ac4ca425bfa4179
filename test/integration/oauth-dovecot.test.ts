/**
 * OAuth2 end to end with a real server deciding: Dovecot's oauth2 passdb validates every bearer
 * token by RFC 7662 introspection against the local authority (test/helpers/oauth-server.ts), so
 * XOAUTH2 and OAUTHBEARER logins are accepted or refused by Dovecot, not by a fake. Each grant
 * then runs through the real CLI: secret file -> token endpoint -> Dovecot -> a stored message.
 */
import { execFileSync, spawn } from "node:child_process";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ErrorCode, isMailIngestError } from "../../lambdas/errors.ts";
import { type AuthMethod, Pop3Client } from "../../lambdas/pop3/index.ts";
import { type DovecotHandle, describeDovecot } from "../helpers/dovecot.ts";
import { generateMessage } from "../helpers/messages.ts";
import { type OAuthDovecot, startOAuthDovecot } from "../helpers/oauth-dovecot.ts";
import type { OAuthServerHandle } from "../helpers/oauth-server.ts";
import { finish } from "../helpers/process.ts";

const CLI = path.resolve(import.meta.dirname, "../../bin/mail-ingest.js");
const USERS = ["alice", "bob", "app", "cert", "sha1", "sa", "rot", "both"];

/** An RSA key and a self-signed certificate, as an admin uploads to an app registration. */
function keyAndCertificate(dir: string, name: string): { key: string; cert: string } {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "1",
      "-subj",
      `/CN=${name}`,
    ],
    { cwd: dir, stdio: "pipe" },
  );
  return {
    key: execFileSync("cat", [`${name}.key`], { cwd: dir }).toString(),
    cert: execFileSync("cat", [`${name}.pem`], { cwd: dir }).toString(),
  };
}

describeDovecot("OAuth2 against Dovecot's oauth2 passdb", () => {
  let world: OAuthDovecot | undefined;
  let dovecot: DovecotHandle;
  let authority: OAuthServerHandle;
  let dir: string;

  beforeAll(async () => {
    world = await startOAuthDovecot(USERS, "mi-oauth-");
    ({ dovecot, authority, dir } = world);
  });
  afterAll(async () => {
    await world?.stop();
  });

  async function login(user: string, accessToken: string, auth: AuthMethod) {
    const client = await Pop3Client.connect({
      host: dovecot.host,
      port: dovecot.pop3sPort,
      tls: "implicit",
      ca: dovecot.caPem,
      servername: "localhost",
      timeoutMs: 15_000,
    });
    try {
      await client.login({ username: user, accessToken, auth });
      const { count } = await client.stat();
      await client.quit();
      return count;
    } finally {
      client.close();
    }
  }

  async function refused(user: string, accessToken: string, auth: AuthMethod) {
    const err = await login(user, accessToken, auth).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isMailIngestError(err, ErrorCode.AUTH_FAILED), String(err)).toBe(true);
  }

  it.each<AuthMethod>(["xoauth2", "oauthbearer"])(
    "Dovecot accepts %s with an active token for the user, and refuses a revoked, an unknown or another user's token",
    async (auth) => {
      authority.registerClient({ clientId: `direct-${auth}` });
      const rt = authority.issueRefreshToken(`direct-${auth}`, "alice");
      const res = await fetch(authority.tokenUrl(), {
        method: "POST",
        body: new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: rt,
          client_id: `direct-${auth}`,
        }),
      });
      const { access_token: token } = (await res.json()) as { access_token: string };
      await dovecot.deliver("alice", [generateMessage(1)]);
      await expect(login("alice", token, auth)).resolves.toBeGreaterThan(0);
      // The passdb compares the introspected username with the login name.
      await refused("bob", token, auth);
      await refused("alice", `${token}x`, auth);
      authority.revokeAccessToken(token);
      await refused("alice", token, auth);
    },
  );

  interface Poll {
    code: number | null;
    stdout: string;
    stderr: string;
    ingested: number;
  }

  /** Delivers one message, polls `user` with the secret in a file via the real CLI. */
  async function pollWith(
    name: string,
    user: string,
    secret: Record<string, unknown>,
    auth: AuthMethod = "xoauth2",
  ): Promise<Poll> {
    const secretFile = path.join(dir, `${name}.secret.json`);
    await writeFile(secretFile, JSON.stringify(secret), { mode: 0o600 });
    const config = path.join(dir, `${name}.config.json`);
    await writeFile(
      config,
      JSON.stringify({
        storage: { type: "fs", dir: path.join(dir, `data-${name}`) },
        queue: { type: "fs", dir: path.join(dir, `data-${name}`, "queue") },
        mailboxes: [
          {
            id: name,
            host: dovecot.host,
            port: dovecot.pop3sPort,
            tls: "implicit",
            ca: dovecot.caPem,
            servername: "localhost",
            username: user,
            auth,
            password: { file: secretFile },
          },
        ],
      }),
    );
    await dovecot.deliver(user, [generateMessage(Math.floor(Math.random() * 1000))]);
    const child = spawn(process.execPath, [CLI, "poll", "--config", config, "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const result = await finish(child);
    let ingested = -1;
    try {
      const report = JSON.parse(result.stdout) as { mailboxes?: Array<{ ingested?: number }> };
      ingested = report.mailboxes?.[0]?.ingested ?? -1;
    } catch {
      // Left at -1: the assertions below show stdout and stderr.
    }
    return { ...result, ingested };
  }

  /** No token, assertion, key or secret appears in anything the CLI printed. */
  function expectNoSecrets(poll: Poll, secrets: readonly string[]): void {
    const output = `${poll.stdout}\n${poll.stderr}`;
    for (const value of [
      ...secrets,
      ...authority.issuedAccessTokens,
      ...authority.issuedRefreshTokens,
    ]) {
      expect(output.includes(value), "a secret appeared in the CLI output").toBe(false);
    }
    for (const request of authority.requests) {
      for (const name of ["client_assertion", "assertion"]) {
        const value = request.form.get(name);
        if (value) expect(output.includes(value)).toBe(false);
      }
    }
  }

  it("client_credentials with a client secret: app-only token, Dovecot accepts it, a message is stored", async () => {
    const clientSecret = "app-client-SECRET-value-123";
    authority.registerClient({ clientId: "app-id", clientSecret, mailbox: "app" });
    const poll = await pollWith("app", "app", {
      grant: "client_credentials",
      clientId: "app-id",
      clientSecret,
      tokenUrl: authority.tokenUrl(),
      scope: "https://outlook.office365.com/.default",
    });
    expect(poll.code, poll.stderr).toBe(0);
    expect(poll.ingested).toBe(1);
    expect(authority.requests.at(-1)?.form.get("grant_type")).toBe("client_credentials");
    expectNoSecrets(poll, [clientSecret]);
  });

  it("check prints the grant, the access token's expiry and its roles, never the token", async () => {
    authority.registerClient({
      clientId: "app-id",
      clientSecret: "app-client-SECRET-value-123",
      mailbox: "app",
    });
    await pollWith("app", "app", {
      grant: "client_credentials",
      clientId: "app-id",
      clientSecret: "app-client-SECRET-value-123",
      tokenUrl: authority.tokenUrl(),
      scope: "https://outlook.office365.com/.default",
    });
    const child = spawn(
      process.execPath,
      [CLI, "check", "--config", path.join(dir, "app.config.json")],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const result = await finish(child);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      /oauth: grant client_credentials, access token expires \d{4}-\d\d-\d\dT[\d:.]+Z, roles: POP\.AccessAsApp/,
    );
    expectNoSecrets({ ...result, ingested: 0 }, ["app-client-SECRET-value-123"]);
  });

  it("client_credentials with a certificate: the authority verifies the signed assertion and x5t#S256", async () => {
    const { key, cert } = keyAndCertificate(dir, "cert-app");
    authority.registerClient({ clientId: "cert-id", certificatePem: cert, mailbox: "cert" });
    const poll = await pollWith(
      "cert",
      "cert",
      {
        grant: "client_credentials",
        clientId: "cert-id",
        tokenUrl: authority.tokenUrl(),
        scope: "https://outlook.office365.com/.default",
        clientCertificate: { privateKeyPem: key, certificatePem: cert },
      },
      "oauthbearer",
    );
    expect(poll.code, poll.stderr).toBe(0);
    expect(poll.ingested).toBe(1);
    const last = authority.requests.at(-1);
    expect(last?.status).toBe(200);
    expect(last?.form.get("client_assertion_type")).toBe(
      "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    );
    expect(last?.form.has("client_secret")).toBe(false);
    expectNoSecrets(poll, [key]);
  });

  it("client_credentials with a certificate and the SHA-1 x5t header for older tenants", async () => {
    const { key, cert } = keyAndCertificate(dir, "sha1-app");
    authority.registerClient({ clientId: "sha1-id", certificatePem: cert, mailbox: "sha1" });
    const poll = await pollWith("sha1", "sha1", {
      grant: "client_credentials",
      clientId: "sha1-id",
      tokenUrl: authority.tokenUrl(),
      clientCertificate: { privateKeyPem: key, certificatePem: cert, thumbprint: "x5t" },
    });
    expect(poll.code, poll.stderr).toBe(0);
    const assertion = authority.requests.at(-1)?.form.get("client_assertion") ?? "";
    const header = JSON.parse(Buffer.from(assertion.split(".")[0] ?? "", "base64url").toString());
    expect(header).toHaveProperty("x5t");
    expect(header).not.toHaveProperty("x5t#S256");
  });

  it("client_credentials with a certificate the app registration does not hold: refused, exit 1, no key in the output", async () => {
    const registered = keyAndCertificate(dir, "right-app");
    const other = keyAndCertificate(dir, "wrong-app");
    authority.registerClient({
      clientId: "both-id",
      certificatePem: registered.cert,
      mailbox: "both",
    });
    const poll = await pollWith("both", "both", {
      grant: "client_credentials",
      clientId: "both-id",
      tokenUrl: authority.tokenUrl(),
      clientCertificate: { privateKeyPem: other.key, certificatePem: other.cert },
    });
    expect(poll.code).toBe(1);
    expect(poll.stdout + poll.stderr).toContain("invalid_client");
    expectNoSecrets(poll, [other.key]);
  });

  it("jwt_bearer with a Google service-account key: the authority verifies the RS256 assertion, the subject's mailbox is read", async () => {
    const { key } = keyAndCertificate(dir, "sa");
    const publicKeyPem = execFileSync("openssl", ["pkey", "-pubout"], { input: key }).toString();
    authority.registerServiceAccount({
      clientEmail: "poller@proj.iam.gserviceaccount.com",
      publicKeyPem,
    });
    const poll = await pollWith("sa", "sa", {
      grant: "jwt_bearer",
      // Pasted whole from Google's key file: extra fields are ignored.
      serviceAccount: {
        type: "service_account",
        project_id: "proj",
        private_key_id: "abc",
        private_key: key,
        client_email: "poller@proj.iam.gserviceaccount.com",
        token_uri: authority.googleTokenUrl,
      },
      subject: "sa",
      scope: "https://mail.google.com/",
    });
    expect(poll.code, poll.stderr).toBe(0);
    expect(poll.ingested).toBe(1);
    const assertion = authority.requests.at(-1)?.form.get("assertion") ?? "";
    const claims = JSON.parse(Buffer.from(assertion.split(".")[1] ?? "", "base64url").toString());
    expect(claims).toMatchObject({
      iss: "poller@proj.iam.gserviceaccount.com",
      sub: "sa",
      scope: "https://mail.google.com/",
      aud: authority.googleTokenUrl,
    });
    expect(claims.exp - claims.iat).toBeLessThanOrEqual(3600);
    expectNoSecrets(poll, [key]);
  });

  it("refresh_token with rotation: the rotated token is written back to the file (0600) and the next run uses it", async () => {
    authority.registerClient({ clientId: "rot-id", clientSecret: "rot-client-SECRET-1234" });
    const first = authority.issueRefreshToken("rot-id", "rot");
    authority.revokeOnRotate = true;
    try {
      const secret = {
        clientId: "rot-id",
        clientSecret: "rot-client-SECRET-1234",
        refreshToken: first,
        tokenUrl: authority.tokenUrl(),
        scope: "https://outlook.office365.com/POP.AccessAsUser.All offline_access",
      };
      const poll = await pollWith("rot", "rot", secret);
      expect(poll.code, poll.stderr).toBe(0);
      expect(poll.ingested).toBe(1);
      const file = path.join(dir, "rot.secret.json");
      const stored = JSON.parse(await readFile(file, "utf8"));
      expect(stored.refreshToken).not.toBe(first);
      expect(authority.issuedRefreshTokens).toContain(stored.refreshToken);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expectNoSecrets(poll, [secret.clientSecret]);
      // The authority revoked `first` when it rotated: only the written-back token works now.
      const again = await pollWith("rot", "rot", stored);
      expect(again.code, again.stderr).toBe(0);
      expect(again.ingested).toBe(1);
      expect((await readdir(dir)).filter((n) => n.includes(".tmp"))).toEqual([]);
    } finally {
      authority.revokeOnRotate = false;
    }
  });

  /** Runs `mail-ingest oauth login ...`; `waitFor` resolves with the first stderr match. */
  function login_(args: string[], env: NodeJS.ProcessEnv = {}) {
    const child = spawn(process.execPath, [CLI, "oauth", "login", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    let stderr = "";
    const waiters: Array<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      for (const w of waiters.splice(0)) {
        const m = stderr.match(w.re);
        if (m) w.resolve(m);
        else waiters.push(w);
      }
    });
    const done = finish(child);
    return {
      done,
      waitFor: (re: RegExp) =>
        new Promise<RegExpMatchArray>((resolve, reject) => {
          const m = stderr.match(re);
          if (m) return resolve(m);
          waiters.push({ re, resolve });
          void done.then((r) => reject(new Error(`CLI exited ${r.code}: ${r.stderr}`)));
        }),
    };
  }

  it("oauth login, Microsoft device code: prints the code, honours slow_down, writes a 0600 secret that then polls through Dovecot", async () => {
    authority.registerClient({ clientId: "device-id" });
    authority.slowDownOnce = true;
    try {
      const out = path.join(dir, "device.json");
      const run = login_([
        "--provider",
        "microsoft",
        "--tenant",
        "tenant",
        "--client-id",
        "device-id",
        "--authority",
        authority.origin,
        "--out",
        out,
      ]);
      const [, code] = await run.waitFor(/enter the code (\S+)/);
      authority.approveDevice(code ?? "", "alice");
      const result = await run.done;
      expect(result.code, result.stderr).toBe(0);
      const device = authority.deviceCodes.find((d) => d.userCode === code);
      // One slow_down, then the token: at least two polls, and the CLI kept going after slow_down.
      expect(device?.polls()).toBeGreaterThanOrEqual(2);
      const polls = authority.requests.filter((r) => r.form.get("device_code"));
      expect(polls.map((r) => r.error)).toContain("slow_down");
      const secret = JSON.parse(await readFile(out, "utf8"));
      expect(secret).toMatchObject({
        clientId: "device-id",
        tokenUrl: authority.tokenUrl("tenant"),
        scope: "https://outlook.office365.com/POP.AccessAsUser.All offline_access",
      });
      expect(authority.issuedRefreshTokens).toContain(secret.refreshToken);
      expect((await stat(out)).mode & 0o777).toBe(0o600);
      expect(result.stdout + result.stderr).not.toContain(secret.refreshToken);

      // The file refuses a second login without --force.
      const again = login_([
        "--provider",
        "microsoft",
        "--client-id",
        "device-id",
        "--authority",
        authority.origin,
        "--out",
        out,
      ]);
      const refusedRun = await again.done;
      expect(refusedRun.code).toBe(1);
      expect(refusedRun.stderr).toContain("use --force");

      const poll = await pollWith("device", "alice", secret);
      expect(poll.code, poll.stderr).toBe(0);
      expect(poll.ingested).toBeGreaterThanOrEqual(1);
    } finally {
      authority.slowDownOnce = false;
    }
  });

  it("oauth login, Microsoft: a declined consent and a wrong tenant each end with exit 1 and one line quoting the provider", async () => {
    authority.registerClient({ clientId: "deny-id" });
    const run = login_([
      "--provider",
      "microsoft",
      "--tenant",
      "tenant",
      "--client-id",
      "deny-id",
      "--authority",
      authority.origin,
    ]);
    const [, code] = await run.waitFor(/enter the code (\S+)/);
    authority.denyDevice(code ?? "");
    const denied = await run.done;
    expect(denied.code).toBe(1);
    const line = denied.stderr.trim().split("\n").at(-1) ?? "";
    expect(line).toMatch(/^mail-ingest: oauth login failed: .*access_denied: AADSTS65004/);
    expect(denied.stdout).toBe("");

    const wrong = await login_([
      "--provider",
      "microsoft",
      "--tenant",
      "no-such-tenant",
      "--client-id",
      "deny-id",
      "--authority",
      authority.origin,
    ]).done;
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim()).toBe(
      "mail-ingest: oauth login failed: device authorization refused: invalid_request: AADSTS90002: Tenant not found.",
    );
  });

  it("oauth login, Google loopback + PKCE: the test plays the browser; the secret printed to stdout then polls through Dovecot", async () => {
    authority.registerClient({ clientId: "google-id", clientSecret: "google-client-SECRET-42" });
    authority.authorizeAs = "bob";
    const run = login_([
      "--provider",
      "google",
      "--client-id",
      "google-id",
      "--client-secret",
      "google-client-SECRET-42",
      "--authority",
      authority.origin,
    ]);
    const [url] = await run.waitFor(/http:\/\/127\.0\.0\.1:\d+\/o\/oauth2\/v2\/auth\S+/);
    const auth = new URL(url ?? "");
    expect(auth.searchParams.get("code_challenge_method")).toBe("S256");
    expect(auth.searchParams.get("scope")).toBe("https://mail.google.com/");
    expect(new URL(auth.searchParams.get("redirect_uri") ?? "").hostname).toBe("127.0.0.1");
    // The browser: the authority consents and redirects to the CLI's loopback listener.
    const browser = await fetch(url ?? "", { redirect: "follow" });
    expect(browser.status).toBe(200);
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    const secret = JSON.parse(result.stdout);
    expect(secret).toMatchObject({
      clientId: "google-id",
      clientSecret: "google-client-SECRET-42",
      tokenUrl: authority.googleTokenUrl,
      scope: "https://mail.google.com/",
    });
    const exchange = authority.requests.at(-1);
    expect(exchange?.form.get("grant_type")).toBe("authorization_code");
    expect(exchange?.status).toBe(200);
    const poll = await pollWith("google", "bob", secret);
    expect(poll.code, poll.stderr).toBe(0);
    expect(poll.ingested).toBeGreaterThanOrEqual(1);
  });

  it("oauth login, Google: a redirect with the wrong state is refused and nothing is exchanged", async () => {
    authority.registerClient({ clientId: "state-id", clientSecret: "state-client-SECRET" });
    const before = authority.requests.length;
    const run = login_([
      "--provider",
      "google",
      "--client-id",
      "state-id",
      "--client-secret",
      "state-client-SECRET",
      "--authority",
      authority.origin,
    ]);
    const [url] = await run.waitFor(/http:\/\/127\.0\.0\.1:\d+\/o\/oauth2\/v2\/auth\S+/);
    const redirect = new URL(new URL(url ?? "").searchParams.get("redirect_uri") ?? "");
    redirect.searchParams.set("code", "attacker-code");
    redirect.searchParams.set("state", "forged");
    expect((await fetch(redirect)).status).toBe(400);
    const result = await run.done;
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("state mismatch");
    expect(authority.requests.length).toBe(before);
  });
});
