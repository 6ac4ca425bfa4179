/**
 * Rotated refresh tokens written back to Secrets Manager and SSM Parameter Store with the real
 * AWS SDK over HTTP (test/helpers/aws-secrets-fake.ts; fauxqs serves neither), against the local
 * OAuth2 authority: the issue 9 rules (write back only once the stored token is older than the
 * threshold or was revoked; a failed write never fails the poll and is retried later).
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { cliCredentials } from "../../lambdas/cli/credentials.ts";
import { type MailboxConfig, parseConfig } from "../../lambdas/config/index.ts";
import { credentialDeps, resolveCredentials } from "../../lambdas/secrets/credentials.ts";
import { secretsManagerStore } from "../../lambdas/secrets/secrets-manager.ts";
import { ssmSecretStore } from "../../lambdas/secrets/ssm.ts";
import { type AwsSecretsFake, startAwsSecretsFake } from "../helpers/aws-secrets-fake.ts";
import { type OAuthServerHandle, startOAuthServer } from "../helpers/oauth-server.ts";
import { finish } from "../helpers/process.ts";

const CLIENT_SECRET = "wb-client-SECRET-0123456789";
const HOUR_MS = 3_600_000;

let aws: AwsSecretsFake;
let authority: OAuthServerHandle;

beforeAll(async () => {
  aws = await startAwsSecretsFake();
  authority = await startOAuthServer();
  authority.registerClient({ clientId: "wb", clientSecret: CLIENT_SECRET });
});
afterAll(async () => {
  await aws?.close();
  await authority?.close();
});
beforeEach(() => {
  aws.calls.length = 0;
  aws.failWrites = 0;
  // Every resolve refreshes (3600 s tokens would be served from cache).
  authority.expiresInS = 30;
});

function oauthSecret(rotatedAt?: Date): string {
  return JSON.stringify({
    clientId: "wb",
    clientSecret: CLIENT_SECRET,
    refreshToken: authority.issueRefreshToken("wb", "alice"),
    tokenUrl: authority.tokenUrl(),
    note: "owner: mail team",
    ...(rotatedAt ? { rotatedAt: rotatedAt.toISOString() } : {}),
  });
}

async function mailbox(password: Record<string, string>): Promise<MailboxConfig> {
  const config = await parseConfig({
    mailboxes: [{ id: "m", host: "pop.example.com", username: "alice", auth: "xoauth2", password }],
  });
  return config.mailboxes[0] as MailboxConfig;
}

const writes = (target: string) => aws.calls.filter((c) => c.target.endsWith(target));

describe("ssmParameter secrets", () => {
  it("resolves an OAuth2 SecureString with decryption and writes the rotation back with PutParameter Overwrite", async () => {
    aws.parameters.set("/mail/ssm-a", { value: oauthSecret(), type: "SecureString", version: 1 });
    const box = await mailbox({ ssmParameter: "/mail/ssm-a" });
    const warnings: string[] = [];
    const deps = await cliCredentials([box], {}, (m) => warnings.push(m), { ssm: aws.ssm() });
    const creds = await resolveCredentials(box, deps);
    expect(authority.issuedAccessTokens).toContain(creds.accessToken);
    expect(aws.calls.find((c) => c.target.endsWith("GetParameter"))?.input.WithDecryption).toBe(
      true,
    );
    const put = writes("PutParameter");
    expect(put).toHaveLength(1);
    expect(put[0]?.input).toMatchObject({
      Name: "/mail/ssm-a",
      Overwrite: true,
      Type: "SecureString",
    });
    const stored = JSON.parse(aws.parameters.get("/mail/ssm-a")?.value ?? "{}");
    expect(stored).toMatchObject({ note: "owner: mail team", clientSecret: CLIENT_SECRET });
    expect(stored.refreshToken).toBe(authority.issuedRefreshTokens.at(-1));
    expect(Date.parse(stored.rotatedAt)).toBeGreaterThan(Date.now() - HOUR_MS);
    expect(warnings).toEqual([]);
  });

  it("names the parameter, not its value, when it does not exist", async () => {
    const box = await mailbox({ ssmParameter: "/mail/absent" });
    const deps = await cliCredentials([box], {}, () => {}, { ssm: aws.ssm() });
    const err = await resolveCredentials(box, deps).catch((e: unknown) => e);
    expect(String((err as Error).message)).toContain("cannot read SSM parameter /mail/absent");
  });
});

describe("write-back threshold and failures (the poller's wiring: credentialDeps with writeBackAfterSeconds)", () => {
  function pollerDeps(warnings: string[]) {
    return credentialDeps({
      warn: (m) => warnings.push(m),
      store: secretsManagerStore({ cacheSeconds: 300, client: aws.secretsManager() }),
      ssm: ssmSecretStore({ cacheSeconds: 300, client: aws.ssm() }),
      writeBackAfterSeconds: 24 * 3600,
    });
  }

  it("keeps a rotation in memory while the stored token is younger than 24 h, and uses it", async () => {
    aws.secrets.set("mail/young", oauthSecret(new Date(Date.now() - HOUR_MS)));
    const before = aws.secrets.get("mail/young");
    const box = await mailbox({ secretId: "mail/young" });
    const deps = pollerDeps([]);
    authority.expiresInS = 1; // expired after the 60 s skew: every call refreshes
    await resolveCredentials(box, deps);
    await resolveCredentials(box, deps);
    expect(writes("PutSecretValue")).toHaveLength(0);
    expect(aws.secrets.get("mail/young")).toBe(before);
    // The second refresh sent the rotated token held in memory, not the stored one.
    const sent = authority.requests.slice(-2).map((r) => r.form.get("refresh_token"));
    expect(sent[1]).toBe(authority.issuedRefreshTokens.at(-2));
    expect(sent[0]).not.toBe(sent[1]);
  });

  it("writes a rotation back once the stored token is older than 24 h", async () => {
    aws.secrets.set("mail/old", oauthSecret(new Date(Date.now() - 25 * HOUR_MS)));
    const box = await mailbox({ secretId: "mail/old" });
    await resolveCredentials(box, pollerDeps([]));
    expect(writes("PutSecretValue")).toHaveLength(1);
    expect(JSON.parse(aws.secrets.get("mail/old") ?? "{}").refreshToken).toBe(
      authority.issuedRefreshTokens.at(-1),
    );
  });

  it("a throttled write-back does not fail the poll: logged without secrets, retried on the next run", async () => {
    aws.secrets.set("mail/throttled", oauthSecret());
    const box = await mailbox({ secretId: "mail/throttled" });
    const warnings: string[] = [];
    const deps = pollerDeps(warnings);
    aws.failWrites = 1;
    const creds = await resolveCredentials(box, deps);
    const rotated = authority.issuedRefreshTokens.at(-1);
    expect(authority.issuedAccessTokens).toContain(creds.accessToken);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(
      "could not store the rotated OAuth2 refresh token for mail/throttled",
    );
    expect(warnings[0]).toContain("ThrottlingException");
    const leaked = [
      CLIENT_SECRET,
      ...authority.issuedRefreshTokens,
      ...authority.issuedAccessTokens,
    ];
    for (const value of leaked) expect(warnings[0]?.includes(value)).toBe(false);
    // The next run in this container writes the pending token before anything else (its own
    // rotation then finds the stored token young and stays in memory).
    await resolveCredentials(box, deps);
    expect(writes("PutSecretValue")).toHaveLength(2);
    expect(JSON.parse(aws.secrets.get("mail/throttled") ?? "{}").refreshToken).toBe(rotated);
  });
});

describe("oauth login stores the secret in AWS", () => {
  const CLI = path.resolve(import.meta.dirname, "../../bin/mail-ingest.js");

  /** The Google loopback flow with the test as the browser, storing to `destination`. */
  async function googleLogin(destination: string[]) {
    authority.registerClient({ clientId: "store-id", clientSecret: "store-client-SECRET" });
    const child = spawn(
      process.execPath,
      [
        CLI,
        "oauth",
        "login",
        "--provider",
        "google",
        "--client-id",
        "store-id",
        "--client-secret",
        "store-client-SECRET",
        "--authority",
        authority.origin,
        ...destination,
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...aws.env } },
    );
    const done = finish(child);
    let stderr = "";
    const url = await new Promise<string>((resolve) => {
      child.stderr?.on("data", (d: Buffer) => {
        stderr += d.toString();
        const m = /http:\/\/\S+\/o\/oauth2\/v2\/auth\S+/.exec(stderr);
        if (m) resolve(m[0]);
      });
    });
    await fetch(url);
    return done;
  }

  it("--ssm-parameter writes a SecureString; --secret-id creates the secret, then adds a version", async () => {
    const ssm = await googleLogin(["--ssm-parameter", "/mail/login"]);
    expect(ssm.code, ssm.stderr).toBe(0);
    expect(ssm.stdout).toBe("");
    const parameter = aws.parameters.get("/mail/login");
    expect(parameter?.type).toBe("SecureString");
    expect(JSON.parse(parameter?.value ?? "{}").refreshToken).toBe(
      authority.issuedRefreshTokens.at(-1),
    );

    const created = await googleLogin(["--secret-id", "mail/login"]);
    expect(created.code, created.stderr).toBe(0);
    expect(writes("CreateSecret")).toHaveLength(1);
    const updated = await googleLogin(["--secret-id", "mail/login"]);
    expect(updated.code, updated.stderr).toBe(0);
    expect(JSON.parse(aws.secrets.get("mail/login") ?? "{}").refreshToken).toBe(
      authority.issuedRefreshTokens.at(-1),
    );
    expect(writes("PutSecretValue").length).toBeGreaterThanOrEqual(2);
  });
});
