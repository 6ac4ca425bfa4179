/**
 * Interop: the POP3 client against a real Dovecot 2.3 (private instance, see
 * test/helpers/dovecot.ts). Dovecot serves CRLF line endings, so every delivered message is CRLF
 * and RETR must return it byte for byte.
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { sampleMessages } from "../../lambdas/demo/messages.ts";
import { ErrorCode, isMailIngestError } from "../../lambdas/errors.ts";
import {
  type AuthMethod,
  Pop3Client,
  type Pop3Options,
  type TraceEvent,
} from "../../lambdas/pop3/index.ts";
import {
  type DovecotHandle,
  describeDovecot,
  ipv6LoopbackAvailable,
  startDovecot,
} from "../helpers/dovecot.ts";
import { generateLargeMessage, generateMessage, largeMessageSize } from "../helpers/messages.ts";

/** One maildrop per test, so tests never see each other's messages or session locks. */
const USERS = ["tls", "auth", "plain", "list", "retr", "big", "dele", "drop", "lock", "v6"].map(
  (user) => ({ user, password: `${user}-S3cret pass` }),
);
const password = (user: string) => `${user}-S3cret pass`;

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

async function streamSha256(stream: Readable, onChunk?: () => void): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    onChunk?.();
  }
  return hash.digest("hex");
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isMailIngestError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
}

describeDovecot("POP3 client against Dovecot", () => {
  let dovecot: DovecotHandle;
  let ipv6 = false;
  const clients: Pop3Client[] = [];

  beforeAll(async () => {
    ipv6 = await ipv6LoopbackAvailable();
    dovecot = await startDovecot({ users: USERS, ipv6 });
  });

  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });

  afterAll(async () => {
    await dovecot?.stop();
  });

  /** Connects with the test CA; `tls` defaults to implicit TLS on the pop3s port. */
  async function connect(options: Partial<Pop3Options> = {}): Promise<Pop3Client> {
    const tls = options.tls ?? "implicit";
    const client = await Pop3Client.connect({
      host: dovecot.host,
      port: tls === "implicit" ? dovecot.pop3sPort : dovecot.pop3Port,
      tls,
      ca: dovecot.caPem,
      timeoutMs: 10_000,
      ...options,
    });
    clients.push(client);
    return client;
  }

  async function session(user: string, options: Partial<Pop3Options> = {}): Promise<Pop3Client> {
    const client = await connect(options);
    await client.login({
      username: user,
      password: password(user),
      allowInsecureAuth: options.tls === "none",
    });
    return client;
  }

  it("logs in over implicit TLS, verifying Dovecot's certificate against the test CA", async () => {
    await dovecot.deliver("tls", [generateMessage(1)]);
    const client = await session("tls");
    expect(client.secure).toBe(true);
    expect(await client.stat()).toEqual({ count: 1, size: generateMessage(1).length });
    await client.quit();
  });

  it("upgrades with STLS, then stops offering STLS in the re-read capabilities", async () => {
    const client = await connect({ tls: "starttls" });
    expect(client.secure).toBe(true);
    expect(client.capabilities.stls).toBe(false);
    await client.login({ username: "tls", password: password("tls") });
    await client.noop();
    await client.quit();
  });

  it("fails TLS verification without the CA, and for a name the certificate does not carry", async () => {
    await expectCode(connect({ ca: undefined }), ErrorCode.TLS_FAILED);
    await expectCode(connect({ tls: "starttls", ca: undefined }), ErrorCode.TLS_FAILED);
    await expectCode(connect({ servername: "mail.example.com" }), ErrorCode.TLS_FAILED);
  });

  it.each<AuthMethod>(["user", "plain", "login", "cram-md5", "apop"])(
    "authenticates with %s over TLS and rejects a wrong password",
    async (auth) => {
      const client = await connect();
      await client.login({ username: "auth", password: password("auth"), auth });
      expect(await client.stat()).toMatchObject({ count: 0 });
      await client.quit();

      const wrong = await connect();
      await expectCode(
        wrong.login({ username: "auth", password: "not the password", auth }),
        ErrorCode.AUTH_FAILED,
      );
    },
  );

  it.each<AuthMethod>(["cram-md5", "apop"])(
    "authenticates with %s over plaintext when allowInsecureAuth is set",
    async (auth) => {
      const client = await connect({ tls: "none" });
      expect(client.secure).toBe(false);
      await client.login({
        username: "plain",
        password: password("plain"),
        auth,
        allowInsecureAuth: true,
      });
      await client.noop();
      await client.quit();
    },
  );

  it("refuses to send plaintext credentials without TLS before anything reaches the wire", async () => {
    const trace: TraceEvent[] = [];
    const client = await connect({ tls: "none", trace: (event) => trace.push(event) });
    for (const auth of ["auto", "user", "plain", "apop"] as const) {
      await expectCode(
        client.login({ username: "plain", password: password("plain"), auth }),
        ErrorCode.INSECURE_AUTH,
      );
    }
    const sent = trace.filter((e) => e.direction === "C").map((e) => e.line);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.filter((line) => /^(USER|PASS|APOP|AUTH)\b/i.test(line))).toEqual([]);
  });

  it("reports LIST sizes and distinct UIDLs that match what was delivered, in order", async () => {
    const sent = Array.from({ length: 40 }, (_, i) => generateMessage(100 + i));
    await dovecot.deliver("list", sent);
    const client = await session("list");
    const list = await client.list();
    expect(list).toEqual(sent.map((m, i) => ({ msg: i + 1, size: m.length })));
    const uidl = await client.uidl();
    expect(uidl.map((u) => u.msg)).toEqual(sent.map((_, i) => i + 1));
    expect(new Set(uidl.map((u) => u.uidl)).size).toBe(sent.length);
    // pop3_uidl_format %08Xu%08Xv: IMAP UID then UIDVALIDITY, both 8 hex digits.
    expect(uidl.every((u) => /^[0-9a-f]{16}$/i.test(u.uidl))).toBe(true);
    expect(await client.uidl(3)).toEqual(uidl[2]);
    expect(await client.stat()).toEqual({
      count: sent.length,
      size: sent.reduce((sum, m) => sum + m.length, 0),
    });
    await client.quit();
  });

  it("RETRs every sample and dot-stuffed message byte-exact", async () => {
    const sent = [
      ...sampleMessages().map((m) => Buffer.from(m.data)),
      ...[0, 7, 14, 3, 5].map((i) => generateMessage(i)),
    ];
    await dovecot.deliver("retr", sent);
    const client = await session("retr");
    const list = await client.list();
    for (const [index, expected] of sent.entries()) {
      const stream = await client.retr(index + 1, { expectedSize: list[index]?.size });
      expect(await streamSha256(stream), `message ${index + 1}`).toBe(sha256(expected));
    }
    await client.quit();
  });

  it("streams a 100 MB RETR byte-exact in bounded memory", async () => {
    const total = 100 * 1024 * 1024;
    const expectedSha = await streamSha256(generateLargeMessage(total, 3));
    await dovecot.deliverStream("big", generateLargeMessage(total, 3));
    const client = await session("big", { tls: "none" });
    const [entry] = await client.list();
    expect(entry?.size).toBe(largeMessageSize(total, 3));

    const baseline = process.memoryUsage();
    let peakRss = baseline.rss;
    let peakHeap = baseline.heapUsed;
    const stream = await client.retr(1, { expectedSize: entry?.size });
    const sha = await streamSha256(stream, () => {
      const now = process.memoryUsage();
      peakRss = Math.max(peakRss, now.rss);
      peakHeap = Math.max(peakHeap, now.heapUsed);
    });
    expect(sha).toBe(expectedSha);
    // A client that collected the body would grow by at least its 100 MB.
    expect((peakRss - baseline.rss) / 2 ** 20).toBeLessThan(64);
    expect((peakHeap - baseline.heapUsed) / 2 ** 20).toBeLessThan(64);
    await client.quit();
  });

  it("removes DELE-marked messages once QUIT is acknowledged", async () => {
    const sent = [generateMessage(200), generateMessage(201), generateMessage(202)];
    await dovecot.deliver("dele", sent);
    const client = await session("dele");
    await client.dele(1);
    await client.dele(3);
    await client.quit();
    expect(await dovecot.messageCount("dele")).toBe(1);

    const again = await session("dele");
    expect(await again.stat()).toEqual({ count: 1, size: sent[1]?.length });
    expect(await streamSha256(await again.retr(1))).toBe(sha256(sent[1] as Buffer));
    await again.quit();
  });

  it("removes nothing when the connection is dropped after DELE without QUIT", async () => {
    await dovecot.deliver("drop", [generateMessage(300), generateMessage(301)]);
    const client = await session("drop");
    await client.dele(1);
    await client.dele(2);
    client.close();

    // Dovecot releases the session lock once it notices the disconnect.
    let again: Pop3Client | undefined;
    for (let attempt = 0; !again; attempt++) {
      try {
        again = await session("drop");
      } catch (err) {
        if (attempt > 50 || !isMailIngestError(err, ErrorCode.IN_USE)) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    expect((await again.stat()).count).toBe(2);
    await again.quit();
    expect(await dovecot.messageCount("drop")).toBe(2);
  });

  it("maps Dovecot's pop3_lock_session refusal of a second session to IN_USE", async () => {
    const first = await session("lock");
    // Dovecot waits ~10 s for the session dotlock (not configurable) before answering IN-USE.
    await expectCode(session("lock", { timeoutMs: 30_000 }), ErrorCode.IN_USE);
    await first.quit();
  });

  it("connects over IPv6 loopback (::1), verifying the certificate's ::1 SAN", async (ctx) => {
    if (!ipv6) ctx.skip();
    await dovecot.deliver("v6", [generateMessage(400)]);
    const client = await session("v6", { host: "::1" });
    expect(client.secure).toBe(true);
    expect((await client.stat()).count).toBe(1);
    await client.quit();
  });
});
