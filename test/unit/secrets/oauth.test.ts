import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { describeError, ErrorCode, MailIngestError } from "../../../lambdas/errors.ts";
import {
  type RefreshTokenRotation,
  type RefreshTokenSecret,
  TokenProvider,
} from "../../../lambdas/secrets/oauth.ts";

/** What the token endpoint received, per request. */
interface TokenRequest {
  readonly method: string;
  readonly contentType: string;
  readonly form: URLSearchParams;
}

type Reply = (form: URLSearchParams) => { status: number; body: unknown };

/** A real RFC 6749 token endpoint on loopback whose answers each test scripts. */
let server: Server;
let tokenUrl: string;
let requests: TokenRequest[];
let reply: Reply;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void readBody(req).then((text) => {
      const form = new URLSearchParams(text);
      requests.push({
        method: req.method ?? "",
        contentType: req.headers["content-type"] ?? "",
        form,
      });
      const { status, body } = reply(form);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  tokenUrl = `http://127.0.0.1:${port}/tenant/oauth2/v2.0/token`;
});

afterAll(async () => {
  server.close();
  await once(server, "close");
});

beforeEach(() => {
  requests = [];
  let n = 0;
  reply = () => {
    n += 1;
    return {
      status: 200,
      body: { access_token: `at-${n}`, token_type: "Bearer", expires_in: 3600 },
    };
  };
});

const REFRESH = "rt-original-SECRET-value";
const CLIENT_SECRET = "client-SECRET-xyz";

function secret(overrides: Partial<RefreshTokenSecret> = {}): RefreshTokenSecret {
  return {
    clientId: "client-1",
    clientSecret: CLIENT_SECRET,
    refreshToken: REFRESH,
    tokenUrl,
    scope: "https://outlook.office365.com/POP.AccessAsUser.All offline_access",
    ...overrides,
  };
}

function provider(clock: { t: number }, persisted: RefreshTokenRotation[] = []) {
  return new TokenProvider({
    now: () => clock.t,
    persistRefreshToken: async (rotation) => {
      persisted.push(rotation);
    },
  });
}

describe("TokenProvider", () => {
  it("sends an RFC 6749 §6 refresh_token grant as a form POST and returns the access token", async () => {
    const tokens = provider({ t: 0 });
    await expect(tokens.getAccessToken(secret(), { key: "m1" })).resolves.toBe("at-1");
    expect(requests).toHaveLength(1);
    const [request] = requests;
    expect(request?.method).toBe("POST");
    expect(request?.contentType).toBe("application/x-www-form-urlencoded");
    expect(Object.fromEntries(request?.form ?? [])).toEqual({
      grant_type: "refresh_token",
      refresh_token: REFRESH,
      client_id: "client-1",
      client_secret: CLIENT_SECRET,
      scope: "https://outlook.office365.com/POP.AccessAsUser.All offline_access",
    });
  });

  it("omits client_secret for a public client", async () => {
    const tokens = provider({ t: 0 });
    await tokens.getAccessToken(
      secret({ clientSecret: undefined, scope: "https://mail.google.com/" }),
    );
    expect(requests[0]?.form.has("client_secret")).toBe(false);
    expect(requests[0]?.form.get("scope")).toBe("https://mail.google.com/");
  });

  it("serves the cached token until expiry minus the skew, then refreshes", async () => {
    const clock = { t: 1_000_000 };
    const tokens = provider(clock);
    await expect(tokens.getAccessToken(secret(), { key: "m1" })).resolves.toBe("at-1");
    // expires_in 3600 s, default skew 60 s: usable for 3540 s after the request.
    clock.t += 3_539_000;
    await expect(tokens.getAccessToken(secret(), { key: "m1" })).resolves.toBe("at-1");
    expect(requests).toHaveLength(1);
    clock.t += 1_000;
    await expect(tokens.getAccessToken(secret(), { key: "m1" })).resolves.toBe("at-2");
    expect(requests).toHaveLength(2);
  });

  it("keeps separate tokens per key", async () => {
    const tokens = provider({ t: 0 });
    await expect(tokens.getAccessToken(secret(), { key: "m1" })).resolves.toBe("at-1");
    await expect(tokens.getAccessToken(secret(), { key: "m2" })).resolves.toBe("at-2");
    await expect(tokens.getAccessToken(secret(), { key: "m1" })).resolves.toBe("at-1");
    expect(requests).toHaveLength(2);
  });

  it("shares one refresh between concurrent callers of the same key", async () => {
    const tokens = provider({ t: 0 });
    const both = await Promise.all([
      tokens.getAccessToken(secret(), { key: "m1" }),
      tokens.getAccessToken(secret(), { key: "m1" }),
    ]);
    expect(both).toEqual(["at-1", "at-1"]);
    expect(requests).toHaveLength(1);
  });

  it("persists a rotated refresh token before handing out the new access token", async () => {
    const clock = { t: 0 };
    const order: string[] = [];
    reply = (form) => ({
      status: 200,
      body: {
        access_token: `at-for-${form.get("refresh_token")}`,
        expires_in: 3600,
        refresh_token: "rt-rotated-1",
      },
    });
    let releasePersist: () => void = () => {};
    const tokens = new TokenProvider({
      now: () => clock.t,
      persistRefreshToken: async (rotation) => {
        order.push(`persist ${rotation.key} ${rotation.refreshToken}`);
        await new Promise<void>((resolve) => {
          releasePersist = resolve;
        });
        order.push("persisted");
      },
    });
    const pending = tokens.getAccessToken(secret(), { key: "secret/m1" }).then((token) => {
      order.push(`got ${token}`);
      return token;
    });
    // The write has started and, until it is released, no token has been handed out.
    await vi.waitFor(() => expect(order).toEqual(["persist secret/m1 rt-rotated-1"]));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(order).toEqual(["persist secret/m1 rt-rotated-1"]);
    releasePersist();
    await expect(pending).resolves.toBe(`at-for-${REFRESH}`);
    expect(order).toEqual(["persist secret/m1 rt-rotated-1", "persisted", `got at-for-${REFRESH}`]);
  });

  it("uses the rotated refresh token next time, even when handed the stale cached secret", async () => {
    const clock = { t: 0 };
    const persisted: RefreshTokenRotation[] = [];
    let n = 0;
    reply = () => {
      n += 1;
      return {
        status: 200,
        body: { access_token: `at-${n}`, expires_in: 3600, refresh_token: `rt-rotated-${n}` },
      };
    };
    const tokens = provider(clock, persisted);
    await tokens.getAccessToken(secret(), { key: "m1" });
    clock.t += 3_600_000;
    // The secrets cache still returns the original refresh token; the provider must not reuse it.
    await expect(tokens.getAccessToken(secret(), { key: "m1" })).resolves.toBe("at-2");
    expect(requests.map((r) => r.form.get("refresh_token"))).toEqual([REFRESH, "rt-rotated-1"]);
    expect(persisted).toEqual([
      { key: "m1", refreshToken: "rt-rotated-1" },
      { key: "m1", refreshToken: "rt-rotated-2" },
    ]);
  });

  it("does not call persist when the endpoint returns the same refresh token", async () => {
    reply = () => ({
      status: 200,
      body: { access_token: "at", expires_in: 3600, refresh_token: REFRESH },
    });
    const persisted: RefreshTokenRotation[] = [];
    await provider({ t: 0 }, persisted).getAccessToken(secret(), { key: "m1" });
    expect(persisted).toEqual([]);
  });

  it("hands out the token when persisting a rotation fails, reports it, and retries the write next time", async () => {
    reply = () => ({
      status: 200,
      body: { access_token: "at-new", expires_in: 3600, refresh_token: "rt-rotated" },
    });
    let failWrites = true;
    const writes: string[] = [];
    const failures: string[] = [];
    const tokens = new TokenProvider({
      now: () => 0,
      persistRefreshToken: async ({ refreshToken }) => {
        writes.push(refreshToken);
        if (failWrites) throw new Error("PutSecretValue throttled");
      },
      onPersistFailure: (key, err) => failures.push(`${key}: ${describeError(err)}`),
    });
    // Issue 9: a failed write-back never fails the poll.
    await expect(tokens.getAccessToken(secret(), { key: "m1" })).resolves.toBe("at-new");
    expect(failures).toEqual(["m1: PutSecretValue throttled"]);
    failWrites = false;
    await expect(tokens.getAccessToken(secret(), { key: "m1" })).resolves.toBe("at-new");
    expect(writes).toEqual(["rt-rotated", "rt-rotated"]);
    await tokens.getAccessToken(secret(), { key: "m1" });
    expect(writes).toHaveLength(2);
    expect(requests).toHaveLength(1);
  });

  it("writes a rotation back only once the stored token is older than writeBackAfterMs", async () => {
    const clock = { t: 10 * 3_600_000 };
    let n = 0;
    reply = () => {
      n += 1;
      return {
        status: 200,
        body: { access_token: `at-${n}`, expires_in: 3600, refresh_token: `rt-rotated-${n}` },
      };
    };
    const writes: string[] = [];
    const tokens = new TokenProvider({
      now: () => clock.t,
      writeBackAfterMs: 24 * 3_600_000,
      persistRefreshToken: async ({ refreshToken }) => {
        writes.push(refreshToken);
      },
    });
    // Stored 1 h ago: the rotation stays in memory.
    const stored = secret({ rotatedAt: clock.t - 3_600_000 });
    await expect(tokens.getAccessToken(stored, { key: "m1" })).resolves.toBe("at-1");
    expect(writes).toEqual([]);
    clock.t += 3_600_000;
    await expect(tokens.getAccessToken(stored, { key: "m1" })).resolves.toBe("at-2");
    expect(requests.map((r) => r.form.get("refresh_token"))).toEqual([REFRESH, "rt-rotated-1"]);
    expect(writes).toEqual([]);
    // 24 h after the stored token was written, the pending rotation goes back before the next
    // refresh; that refresh's rotation is then young again and stays in memory.
    clock.t += 22 * 3_600_000;
    await expect(tokens.getAccessToken(stored, { key: "m1" })).resolves.toBe("at-3");
    expect(writes).toEqual(["rt-rotated-2"]);
    // An unknown age (no rotatedAt) counts as old: written at once.
    await tokens.getAccessToken(secret({ refreshToken: "rt-other" }), { key: "m2" });
    expect(writes).toEqual(["rt-rotated-2", "rt-rotated-4"]);
  });

  it("writes back at once after the provider revoked the rotated token it held in memory", async () => {
    const clock = { t: 0 };
    let n = 0;
    const revoked = new Set<string>();
    reply = (form) => {
      const sent = form.get("refresh_token") ?? "";
      if (revoked.has(sent)) return { status: 400, body: { error: "invalid_grant" } };
      n += 1;
      return {
        status: 200,
        body: { access_token: `at-${n}`, expires_in: 3600, refresh_token: `rt-rotated-${n}` },
      };
    };
    const writes: string[] = [];
    const tokens = new TokenProvider({
      now: () => clock.t,
      writeBackAfterMs: 24 * 3_600_000,
      persistRefreshToken: async ({ refreshToken }) => {
        writes.push(refreshToken);
      },
    });
    const stored = secret({ rotatedAt: 0 });
    await tokens.getAccessToken(stored, { key: "m1" });
    expect(writes).toEqual([]);
    revoked.add("rt-rotated-1");
    clock.t += 3_600_000;
    // The unwritten token is refused; the stored one still works and its rotation is stored.
    await expect(tokens.getAccessToken(stored, { key: "m1" })).resolves.toBe("at-2");
    expect(requests.map((r) => r.form.get("refresh_token"))).toEqual([
      REFRESH,
      "rt-rotated-1",
      REFRESH,
    ]);
    expect(writes).toEqual(["rt-rotated-2"]);
  });

  it("starts over when the operator replaces the secret's refresh token", async () => {
    const tokens = provider({ t: 0 });
    await tokens.getAccessToken(secret(), { key: "m1" });
    await expect(
      tokens.getAccessToken(secret({ refreshToken: "rt-reconsented" }), { key: "m1" }),
    ).resolves.toBe("at-2");
    expect(requests[1]?.form.get("refresh_token")).toBe("rt-reconsented");
  });

  it("fails with OAUTH_FAILED naming the endpoint's error, never the refresh token or client secret", async () => {
    reply = (form) => ({
      status: 400,
      body: {
        error: "invalid_grant",
        // A hostile or chatty endpoint echoing what we sent must not leak it into our message.
        error_description: `AADSTS70000: token ${form.get("refresh_token")} expired (client ${form.get("client_secret")})`,
      },
    });
    const err = await provider({ t: 0 })
      .getAccessToken(secret(), { key: "m1" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MailIngestError);
    const e = err as MailIngestError;
    expect(e.code).toBe(ErrorCode.OAUTH_FAILED);
    expect(e.message).toContain("invalid_grant");
    expect(e.message).toContain("AADSTS70000");
    expect(e.message).toContain("/tenant/oauth2/v2.0/token");
    const everything = `${e.message} ${String(e.stack)} ${JSON.stringify(e)}`;
    expect(everything).not.toContain(REFRESH);
    expect(everything).not.toContain(CLIENT_SECRET);
  });

  it("classifies a 5xx from the endpoint as temporary (SYS_TEMP), not as a bad credential", async () => {
    reply = () => ({ status: 503, body: { error: "temporarily_unavailable" } });
    const err = await provider({ t: 0 })
      .getAccessToken(secret())
      .catch((e: unknown) => e);
    expect((err as MailIngestError).code).toBe(ErrorCode.SYS_TEMP);
  });

  it("fails with OAUTH_FAILED when a 200 answer has no access_token", async () => {
    reply = () => ({ status: 200, body: { token_type: "Bearer" } });
    const err = await provider({ t: 0 })
      .getAccessToken(secret())
      .catch((e: unknown) => e);
    expect((err as MailIngestError).code).toBe(ErrorCode.OAUTH_FAILED);
  });

  it("reports an unreachable endpoint as CONNECT_FAILED without the secret", async () => {
    const closed = createServer();
    closed.listen(0, "127.0.0.1");
    await once(closed, "listening");
    const { port } = closed.address() as AddressInfo;
    closed.close();
    await once(closed, "close");
    const err = await provider({ t: 0 })
      .getAccessToken(secret({ tokenUrl: `http://127.0.0.1:${port}/token` }))
      .catch((e: unknown) => e);
    expect((err as MailIngestError).code).toBe(ErrorCode.CONNECT_FAILED);
    expect((err as Error).message).not.toContain(REFRESH);
    // What reports and logs print: fetch's cause chain down to the refused socket, still no secret.
    const described = describeError(err);
    expect(described).toContain(`fetch failed: connect ECONNREFUSED 127.0.0.1:${port}`);
    expect(described).not.toContain(REFRESH);
    expect(described).not.toContain(CLIENT_SECRET);
  });
});
