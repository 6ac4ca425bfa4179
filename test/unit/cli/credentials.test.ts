/**
 * The CLI's credentials, end to end except for the POP3 login: secrets from a local file or from
 * Secrets Manager (the real SDK, answered in-process), and OAuth2 refreshes against a real token
 * endpoint on loopback.
 */
import { once } from "node:events";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { cliCredentials } from "../../../lambdas/cli/credentials.ts";
import { parseConfig } from "../../../lambdas/config/index.ts";
import { resolveCredentials } from "../../../lambdas/secrets/index.ts";
import { mockSecretsManager } from "../adapters/mock-aws.ts";

/** Refresh tokens the endpoint received, in order; it rotates each into `<token>-next`. */
let received: string[];
let server: Server;
let tokenUrl: string;
let dir: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
      const refresh = form.get("refresh_token") ?? "";
      received.push(`${form.get("grant_type")}:${refresh}`);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          access_token: `at-for-${refresh}`,
          token_type: "Bearer",
          // Already expired after the skew, so every resolve refreshes again.
          expires_in: 1,
          refresh_token: `${refresh}-next`,
        }),
      );
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  tokenUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  dir = await mkdtemp(path.join(tmpdir(), "cli-credentials-"));
});

afterAll(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  received = [];
});

const base = { host: "pop.example.com", username: "u", auth: "xoauth2" };
const oauth = () => ({ clientId: "cid", refreshToken: "rt-1-SECRET", tokenUrl, note: "keep me" });

describe("cliCredentials", () => {
  it("refreshes an OAuth2 secret from a file and rewrites the file (mode 0600) with the rotated token", async () => {
    const file = path.join(dir, "oauth.json");
    await writeFile(file, JSON.stringify(oauth()), { mode: 0o644 });
    const config = await parseConfig({ mailboxes: [{ ...base, id: "a", password: { file } }] });
    const mailbox = config.mailboxes[0];
    if (!mailbox) throw new Error("no mailbox");
    const warnings: string[] = [];
    const deps = await cliCredentials(config.mailboxes, {}, (m) => warnings.push(m));

    await expect(resolveCredentials(mailbox, deps)).resolves.toEqual({
      accessToken: "at-for-rt-1-SECRET",
    });
    const stored = JSON.parse(await readFile(file, "utf8"));
    expect(stored).toMatchObject({ ...oauth(), refreshToken: "rt-1-SECRET-next" });
    expect(Date.parse(stored.rotatedAt)).toBeGreaterThan(0);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    // The next run (here: a fresh process's deps) starts from the rotated token in the file.
    const next = await cliCredentials(config.mailboxes, {}, (m) => warnings.push(m));
    await expect(resolveCredentials(mailbox, next)).resolves.toEqual({
      accessToken: "at-for-rt-1-SECRET-next",
    });
    expect(received).toEqual(["refresh_token:rt-1-SECRET", "refresh_token:rt-1-SECRET-next"]);
    expect(warnings).toEqual([]);
  });

  it("keeps a rotated token from an env secret in memory and warns that env cannot be written back", async () => {
    const config = await parseConfig({
      mailboxes: [{ ...base, id: "e", password: { env: "MAIL_OAUTH" } }],
    });
    const mailbox = config.mailboxes[0];
    if (!mailbox) throw new Error("no mailbox");
    const warnings: string[] = [];
    const env = { MAIL_OAUTH: JSON.stringify(oauth()) };
    const deps = await cliCredentials(config.mailboxes, env, (m) => warnings.push(m));
    await resolveCredentials(mailbox, deps);
    await expect(resolveCredentials(mailbox, deps)).resolves.toEqual({
      accessToken: "at-for-rt-1-SECRET-next",
    });
    expect(warnings[0]).toBe(
      "rotated OAuth2 refresh token for mailbox e kept in memory only: an environment variable cannot be written back; update MAIL_OAUTH",
    );
    expect(warnings.join("\n")).not.toContain("SECRET");
  });

  it("writes a rotated refresh token back to the mailbox's Secrets Manager secret, keeping its other fields", async () => {
    let stored = JSON.stringify(oauth());
    const { client, calls } = mockSecretsManager((call) => {
      if (call.command === "GetSecretValueCommand") return { Name: "mail/b", SecretString: stored };
      if (call.command === "PutSecretValueCommand") {
        stored = String(call.input.SecretString);
        return {};
      }
      throw new Error(`unexpected ${call.command}`);
    });
    const config = await parseConfig({
      mailboxes: [{ ...base, id: "b", password: { secretId: "mail/b" } }],
    });
    const mailbox = config.mailboxes[0];
    if (!mailbox) throw new Error("no mailbox");
    const warnings: string[] = [];
    const deps = await cliCredentials(config.mailboxes, {}, (m) => warnings.push(m), {
      secretsManager: client,
    });

    await expect(resolveCredentials(mailbox, deps)).resolves.toEqual({
      accessToken: "at-for-rt-1-SECRET",
    });
    expect(JSON.parse(stored)).toMatchObject({ ...oauth(), refreshToken: "rt-1-SECRET-next" });
    expect(calls.filter((c) => c.command === "PutSecretValueCommand")).toHaveLength(1);
    expect(calls.find((c) => c.command === "PutSecretValueCommand")?.input.SecretId).toBe("mail/b");
    expect(warnings).toEqual([]);
  });

  it("names the mailbox once when its secret file is missing", async () => {
    const config = await parseConfig({
      mailboxes: [{ ...base, id: "c", password: { file: path.join(dir, "absent") } }],
    });
    const mailbox = config.mailboxes[0];
    if (!mailbox) throw new Error("no mailbox");
    const deps = await cliCredentials(config.mailboxes, {}, () => {});
    const err = await resolveCredentials(mailbox, deps).catch((e: unknown) => e);
    expect(String((err as Error).message)).toMatch(
      /^mailbox c: cannot read password file .*absent: ENOENT/,
    );
    expect((err as Error).message.match(/mailbox c:/g)).toHaveLength(1);
  });
});
