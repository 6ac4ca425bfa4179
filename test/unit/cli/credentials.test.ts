import { describe, expect, it } from "vitest";
import { cliCredentials } from "../../../lambdas/cli/credentials.ts";
import { parseConfig } from "../../../lambdas/config/index.ts";

const base = { id: "a", host: "pop.example.com", username: "u" };

describe("cliCredentials", () => {
  it("resolves local secrets without touching AWS, but can still refresh OAuth2 tokens", async () => {
    const config = await parseConfig({ mailboxes: [{ ...base, password: { env: "PW" } }] });
    const deps = await cliCredentials(config.mailboxes, { PW: "x" }, () => {});
    expect(deps.getSecret).toBeUndefined();
    expect(deps.tokenProvider).toBeDefined();
    expect(deps.env).toEqual({ PW: "x" });
  });

  it("reads {secretId} passwords from Secrets Manager when any mailbox names one", async () => {
    const config = await parseConfig({
      mailboxes: [
        { ...base, password: { env: "PW" } },
        { ...base, id: "b", password: { secretId: "mail-ingest/b" } },
      ],
    });
    const deps = await cliCredentials(config.mailboxes, {}, () => {});
    expect(typeof deps.getSecret).toBe("function");
  });
});
