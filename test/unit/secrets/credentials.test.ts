import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MailboxConfig } from "../../../lambdas/config/index.ts";
import { ErrorCode, MailIngestError } from "../../../lambdas/errors.ts";
import type { ResolveCredentialsDeps } from "../../../lambdas/secrets/index.ts";
import {
  type OAuthSecret,
  parseSecretString,
  resolveCredentials,
  TokenProvider,
  withRotatedRefreshToken,
} from "../../../lambdas/secrets/index.ts";

const OAUTH = {
  clientId: "cid",
  refreshToken: "rt-SECRET",
  tokenUrl: "https://oauth2.googleapis.com/token",
  scope: "https://mail.google.com/",
};

function mailbox(overrides: Partial<MailboxConfig> = {}): MailboxConfig {
  return {
    id: "m1",
    host: "pop.gmail.com",
    port: 995,
    tls: "implicit",
    username: "u@example.com",
    password: { secretId: "mail/m1" },
    auth: "auto",
    allowInsecureAuth: false,
    timeoutMs: 30_000,
    delete: "never",
    maxMessageBytes: 1_000_000,
    ...overrides,
  };
}

/** Records which secrets it was asked for, keyed by the cache key the resolver chose. */
class RecordingTokens extends TokenProvider {
  readonly asked: Array<{ secret: OAuthSecret; key: string | undefined }> = [];
  constructor() {
    super({ persistRefreshToken: async () => {} });
  }
  override async getAccessToken(secret: OAuthSecret, options: { key?: string } = {}) {
    this.asked.push({ secret, key: options.key });
    return "access-1";
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "secrets-unit-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("parseSecretString", () => {
  it("treats plain text, including text that merely starts with a brace, as the password", () => {
    expect(parseSecretString("pa ss")).toEqual({ kind: "password", password: "pa ss" });
    expect(parseSecretString("{notjson")).toEqual({ kind: "password", password: "{notjson" });
  });

  it("reads JSON {password}", () => {
    expect(parseSecretString('{"password":"pw"}')).toEqual({
      kind: "password",
      password: "pw",
    });
  });

  it("reads OAuth2 JSON", () => {
    expect(parseSecretString(JSON.stringify({ ...OAUTH, clientSecret: "cs" }))).toEqual({
      kind: "oauth",
      oauth: { ...OAUTH, clientSecret: "cs" },
    });
  });

  it("rejects OAuth2 JSON with a plain-http token endpoint off loopback, without echoing the secret", () => {
    const err = (() => {
      try {
        parseSecretString(JSON.stringify({ ...OAUTH, tokenUrl: "http://example.com/token" }));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(MailIngestError);
    expect((err as MailIngestError).code).toBe(ErrorCode.SECRET_UNRESOLVED);
    expect((err as Error).message).toContain("https");
    expect((err as Error).message).not.toContain("rt-SECRET");
  });

  it("rejects broken OAuth2 JSON with its line and column, never sending or echoing it", () => {
    // A trailing comma: before, this was taken for a password and sent to the POP3 server.
    const text = `${JSON.stringify(OAUTH).slice(0, -1)},\n}`;
    const err = (() => {
      try {
        return parseSecretString(text);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(MailIngestError);
    expect((err as MailIngestError).code).toBe(ErrorCode.SECRET_UNRESOLVED);
    expect((err as Error).message).toBe("secret is not valid JSON: line 2, column 1");
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain("rt-SECRET");
  });

  it("rejects a JSON object that is neither shape", () => {
    expect(() => parseSecretString('{"user":"x"}')).toThrow(/password/);
  });
});

describe("resolveCredentials", () => {
  it("resolves a secretId through getSecret", async () => {
    const creds = await resolveCredentials(mailbox(), {
      getSecret: async (id) => (id === "mail/m1" ? '{"password":"pw-1"}' : "wrong"),
    });
    expect(creds).toEqual({ password: "pw-1" });
  });

  it("resolves env and file sources without a secrets store", async () => {
    const file = path.join(dir, "pw");
    await writeFile(file, "pw-file\n");
    await expect(
      resolveCredentials(mailbox({ password: { env: "PW" } }), { env: { PW: "pw-env" } }),
    ).resolves.toEqual({ password: "pw-env" });
    await expect(resolveCredentials(mailbox({ password: { file } }), {})).resolves.toEqual({
      password: "pw-file",
    });
  });

  it("exchanges an OAuth2 secret for an access token cached under the secret id", async () => {
    const tokens = new RecordingTokens();
    const creds = await resolveCredentials(mailbox({ auth: "xoauth2" }), {
      getSecret: async () => JSON.stringify(OAUTH),
      tokenProvider: tokens,
    });
    expect(creds).toEqual({ accessToken: "access-1" });
    expect(tokens.asked).toEqual([
      { secret: { ...OAUTH, clientSecret: undefined }, key: "mail/m1" },
    ]);
  });

  it("refuses an OAuth2 secret for a mailbox configured for a password mechanism", async () => {
    await expect(
      resolveCredentials(mailbox({ auth: "plain" }), {
        getSecret: async () => JSON.stringify(OAUTH),
        tokenProvider: new RecordingTokens(),
      }),
    ).rejects.toMatchObject({ code: ErrorCode.CONFIG_INVALID });
  });

  it("fails with SECRET_UNRESOLVED naming the secret id, not its value, when it cannot be read", async () => {
    const err = await resolveCredentials(mailbox(), {
      getSecret: async () => {
        throw new Error("ResourceNotFoundException");
      },
    }).catch((e: unknown) => e);
    expect((err as MailIngestError).code).toBe(ErrorCode.SECRET_UNRESOLVED);
    expect((err as Error).message).toContain("mail/m1");
  });
});

describe("resolveCredentials names the mailbox once, whatever failed", () => {
  it.each<[string, MailboxConfig, ResolveCredentialsDeps, ErrorCode]>([
    [
      "an unreadable source",
      mailbox({ password: { env: "NOPE" } }),
      {},
      ErrorCode.SECRET_UNRESOLVED,
    ],
    [
      "a secret that is neither shape",
      mailbox(),
      { getSecret: async () => '{"user":"x"}' },
      ErrorCode.SECRET_UNRESOLVED,
    ],
    [
      "a refused token refresh",
      mailbox({ auth: "xoauth2" }),
      {
        getSecret: async () => JSON.stringify(OAUTH),
        tokenProvider: new TokenProvider({
          persistRefreshToken: async () => {},
          fetch: async () =>
            new Response(JSON.stringify({ error: "invalid_grant" }), { status: 400 }),
        }),
      },
      ErrorCode.OAUTH_FAILED,
    ],
  ])("%s keeps its code and gets one prefix", async (_what, box, deps, code) => {
    const err = await resolveCredentials(box, deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MailIngestError);
    expect((err as MailIngestError).code).toBe(code);
    expect((err as Error).message).toMatch(/^mailbox m1: /);
    expect((err as Error).message.match(/mailbox m1/g)).toHaveLength(1);
    expect((err as Error).message).not.toContain("rt-SECRET");
  });
});

describe("withRotatedRefreshToken", () => {
  it("replaces only the refresh token, keeping every other field of the secret", () => {
    const current = JSON.stringify({ ...OAUTH, clientSecret: "cs", note: "owner: mail team" });
    const at = new Date("2026-11-30T07:00:00.000Z");
    expect(JSON.parse(withRotatedRefreshToken("mail/m1", current, "rt-NEW", at))).toEqual({
      ...OAUTH,
      clientSecret: "cs",
      note: "owner: mail team",
      refreshToken: "rt-NEW",
      // Dates the stored token for the write-back threshold.
      rotatedAt: "2026-11-30T07:00:00.000Z",
    });
  });

  it("refuses to overwrite a secret that now holds a password, without quoting it", () => {
    const err = (() => {
      try {
        withRotatedRefreshToken("mail/m1", "plain-pw-SECRET", "rt-NEW");
      } catch (e) {
        return e;
      }
    })();
    expect((err as MailIngestError).code).toBe(ErrorCode.SECRET_UNRESOLVED);
    expect((err as Error).message).toContain("mail/m1");
    expect((err as Error).message).not.toContain("plain-pw-SECRET");
  });
});
