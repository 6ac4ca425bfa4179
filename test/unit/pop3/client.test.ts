import { Socket } from "node:net";
import { describe, expect, it, vi } from "vitest";
import { ErrorCode } from "../../../lambdas/errors.ts";
import {
  isTransient,
  isValidUidl,
  Pop3Client,
  type Pop3Credentials,
  Pop3ServerError,
} from "../../../lambdas/pop3/index.ts";
import { startTranscriptServer } from "../../helpers/transcript-server.ts";
import { capa, GREETING, opening, readAll, TIMESTAMP, USER_PASS, withSession } from "./session.ts";

const insecure = (c: Partial<Pop3Credentials> = {}): Pop3Credentials => ({
  username: "bob",
  password: "secret",
  allowInsecureAuth: true,
  ...c,
});

/** Lines that would carry a credential to the server. */
const CREDENTIAL_LINE = /^(USER|PASS|AUTH|APOP)\b/i;

describe("Pop3Client greeting and CAPA (RFC 2449)", () => {
  it("captures the greeting, the APOP timestamp and the capabilities", async () => {
    await withSession(
      [
        ...opening(
          "TOP",
          "UIDL",
          "USER",
          "SASL PLAIN xoauth2",
          "RESP-CODES",
          "AUTH-RESP-CODE",
          "PIPELINING",
          "EXPIRE NEVER",
          "LOGIN-DELAY 900",
          "IMPLEMENTATION Shlemazle Plotz v302",
        ),
      ],
      async ({ client }) => {
        expect(client.greeting).toBe(`POP3 server ready ${TIMESTAMP}`);
        expect(client.apopTimestamp).toBe(TIMESTAMP);
        expect(client.secure).toBe(false);
        const caps = client.capabilities;
        expect(caps.sasl).toEqual(["PLAIN", "XOAUTH2"]);
        expect(caps).toMatchObject({
          top: true,
          uidl: true,
          user: true,
          stls: false,
          respCodes: true,
          authRespCode: true,
          pipelining: true,
          expire: "NEVER",
          loginDelay: 900,
          implementation: "Shlemazle Plotz v302",
        });
        expect(caps.raw).toHaveLength(10);
      },
    );
  });

  it("works with a server that has no CAPA, logging in with USER/PASS", async () => {
    await withSession(
      [
        "S: +OK old server",
        "C: CAPA",
        "S: -ERR unknown command",
        ...USER_PASS,
        "C: CAPA",
        "S: -ERR unknown command",
        "C: STAT",
        "S: +OK 2 320",
      ],
      async ({ client }) => {
        expect(client.capabilities.raw).toEqual([]);
        expect(client.apopTimestamp).toBeUndefined();
        await client.login(insecure());
        expect(await client.stat()).toEqual({ count: 2, size: 320 });
      },
    );
  });

  it("re-reads CAPA after login (RFC 2449 §5)", async () => {
    await withSession(
      [...opening("USER"), ...USER_PASS, ...capa("USER", "PIPELINING", "EXPIRE 30")],
      async ({ client }) => {
        expect(client.capabilities.pipelining).toBe(false);
        await client.login(insecure());
        expect(client.capabilities.pipelining).toBe(true);
        expect(client.capabilities.expire).toBe(30);
      },
    );
  });

  it("fails connect with the mapped code when the greeting is -ERR", async () => {
    const server = await startTranscriptServer(["S: -ERR [SYS/TEMP] too busy"]);
    try {
      const err = await Pop3Client.connect({
        host: server.host,
        port: server.port,
        tls: "none",
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Pop3ServerError);
      expect(err).toMatchObject({
        code: ErrorCode.SYS_TEMP,
        responseCode: "SYS/TEMP",
        serverText: "too busy",
      });
    } finally {
      await server.close();
    }
  });

  it("connects over IPv6 loopback", async () => {
    await withSession(
      [...opening("USER"), "C: NOOP", "S: +OK"],
      async ({ client }) => {
        await client.noop();
      },
      { host: "::1" },
      { host: "::1" },
    );
  });

  it("fails with CONNECT_FAILED when nothing listens", async () => {
    const server = await startTranscriptServer([]);
    const port = server.port;
    await server.close();
    await expect(
      Pop3Client.connect({ host: "127.0.0.1", port, tls: "none" }),
    ).rejects.toMatchObject({
      code: ErrorCode.CONNECT_FAILED,
    });
  });
});

describe("Pop3Client authentication", () => {
  it("auto picks SASL PLAIN with an initial response when offered", async () => {
    const ir = Buffer.from("\0bob\0secret").toString("base64");
    await withSession(
      [...opening("USER", "SASL PLAIN LOGIN"), `C: AUTH PLAIN ${ir}`, "S: +OK", ...capa("USER")],
      async ({ client }) => client.login(insecure()),
    );
  });

  it("sends PLAIN in two steps when the initial response would exceed 255 octets (RFC 5034 §4)", async () => {
    const password = "p".repeat(200);
    const ir = Buffer.from(`\0bob\0${password}`).toString("base64");
    expect(`AUTH PLAIN ${ir}\r\n`.length).toBeGreaterThan(255);
    await withSession(
      [
        ...opening("SASL PLAIN"),
        "C: AUTH PLAIN",
        "S: + ",
        `C: ${ir}`,
        "S: +OK",
        ...capa("SASL PLAIN"),
      ],
      async ({ client }) => client.login(insecure({ password })),
    );
  });

  it("auto falls back to USER/PASS when PLAIN is not offered", async () => {
    await withSession(
      [...opening("USER", "SASL LOGIN"), ...USER_PASS, ...capa("USER")],
      async ({ client }) => client.login(insecure()),
    );
  });

  it("auto uses APOP when only the greeting timestamp is available (RFC 1939 §7 digest)", async () => {
    // RFC 1939 §7 example: timestamp + "tanstaaf" hashes to this digest.
    await withSession(
      [
        ...opening("TOP"),
        "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb",
        "S: +OK maildrop has 1 message",
        ...capa("TOP"),
      ],
      async ({ client }) => client.login(insecure({ username: "mrose", password: "tanstaaf" })),
    );
  });

  it("refuses explicit APOP when the greeting has no timestamp", async () => {
    await withSession(["S: +OK hi", ...capa("USER")], async ({ client }) => {
      await expect(client.login(insecure({ auth: "apop" }))).rejects.toMatchObject({
        code: ErrorCode.AUTH_UNSUPPORTED,
      });
    });
  });

  it("speaks AUTH LOGIN", async () => {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    await withSession(
      [
        ...opening("SASL LOGIN"),
        "C: AUTH LOGIN",
        `S: + ${b64("Username:")}`,
        `C: ${b64("bob")}`,
        `S: + ${b64("Password:")}`,
        `C: ${b64("secret")}`,
        "S: +OK",
        ...capa("SASL LOGIN"),
      ],
      async ({ client }) => client.login(insecure({ auth: "login" })),
    );
  });

  it("speaks CRAM-MD5 (RFC 2195 §2 example)", async () => {
    const challenge = Buffer.from("<1896.697170952@postoffice.reston.mci.net>").toString("base64");
    const answer = Buffer.from("tim b913a602c7eda7a495b4e6e7334d3890").toString("base64");
    await withSession(
      [
        ...opening("SASL CRAM-MD5"),
        "C: AUTH CRAM-MD5",
        `S: + ${challenge}`,
        `C: ${answer}`,
        "S: +OK",
        ...capa(),
      ],
      async ({ client }) =>
        client.login(insecure({ username: "tim", password: "tanstaaftanstaaf", auth: "cram-md5" })),
    );
  });

  it("auto picks XOAUTH2 for a token and uses the two-step form", async () => {
    const payload = Buffer.from("user=bob@example.com\x01auth=Bearer tok123\x01\x01").toString(
      "base64",
    );
    await withSession(
      [
        ...opening("USER", "SASL PLAIN XOAUTH2"),
        "C: AUTH XOAUTH2",
        "S: + ",
        `C: ${payload}`,
        "S: +OK",
        ...capa(),
      ],
      async ({ client }) =>
        client.login({
          username: "bob@example.com",
          accessToken: "tok123",
          allowInsecureAuth: true,
        }),
    );
  });

  it("answers an XOAUTH2 error challenge with an empty line and reports AUTH_FAILED", async () => {
    const payload = Buffer.from("user=bob\x01auth=Bearer expired\x01\x01").toString("base64");
    const errJson = Buffer.from(
      '{"status":"401","schemes":"Bearer","scope":"https://mail"}',
    ).toString("base64");
    await withSession(
      [
        ...opening("SASL XOAUTH2"),
        "C: AUTH XOAUTH2",
        "S: + ",
        `C: ${payload}`,
        `S: + ${errJson}`,
        "C: ",
        "S: -ERR Authentication failure",
        "C: NOOP",
        "S: +OK",
      ],
      async ({ client }) => {
        await expect(
          client.login({ username: "bob", accessToken: "expired", allowInsecureAuth: true }),
        ).rejects.toMatchObject({
          code: ErrorCode.AUTH_FAILED,
          serverText: "Authentication failure",
        });
        // The session stays in sync after the failed exchange.
        await client.noop();
      },
    );
  });

  it("sends OAUTHBEARER with an initial response when it fits (RFC 7628 §3.1)", async () => {
    const server = await withSession(
      [...opening("SASL OAUTHBEARER"), { c: /^AUTH OAUTHBEARER \S+$/ }, "S: +OK", ...capa()],
      async ({ client }) =>
        client.login({ username: "bob", accessToken: "t", allowInsecureAuth: true }),
    );
    const encoded = server.received[1]?.split(" ")[2] ?? "";
    expect(Buffer.from(encoded, "base64").toString()).toBe(
      `n,a=bob,\x01host=127.0.0.1\x01port=${server.port}\x01auth=Bearer t\x01\x01`,
    );
  });

  it("answers an OAUTHBEARER error challenge with 0x01 (RFC 7628 §3.2.3)", async () => {
    const errJson = Buffer.from('{"status":"invalid_token"}').toString("base64");
    await withSession(
      [
        ...opening("SASL OAUTHBEARER"),
        { c: /^AUTH OAUTHBEARER / },
        `S: + ${errJson}`,
        "C: AQ==",
        "S: -ERR [AUTH] denied",
      ],
      async ({ client }) => {
        await expect(
          client.login({ username: "bob", accessToken: "t", allowInsecureAuth: true }),
        ).rejects.toMatchObject({ code: ErrorCode.AUTH_FAILED, responseCode: "AUTH" });
      },
    );
  });

  it("maps [IN-USE] on PASS to IN_USE, a transient error carrying the server text", async () => {
    await withSession(
      [
        ...opening("USER", "RESP-CODES"),
        "C: USER bob",
        "S: +OK",
        "C: PASS secret",
        "S: -ERR [IN-USE] mailbox locked",
      ],
      async ({ client }) => {
        const err = await client.login(insecure()).catch((e: unknown) => e);
        expect(err).toMatchObject({
          code: ErrorCode.IN_USE,
          responseCode: "IN-USE",
          serverText: "mailbox locked",
        });
        expect(isTransient(err)).toBe(true);
      },
    );
  });

  it.each([
    ["-ERR wrong password", ErrorCode.AUTH_FAILED],
    ["-ERR [AUTH] wrong password", ErrorCode.AUTH_FAILED],
    ["-ERR [LOGIN-DELAY] too soon", ErrorCode.LOGIN_DELAY],
    ["-ERR [SYS/TEMP] backend down", ErrorCode.SYS_TEMP],
    ["-ERR [SYS/PERM] account disabled", ErrorCode.SYS_PERM],
  ])("maps %s on PASS to %s", async (reply, code) => {
    await withSession(
      [...opening("USER"), "C: USER bob", "S: +OK", "C: PASS secret", `S: ${reply}`],
      async ({ client }) => {
        await expect(client.login(insecure())).rejects.toMatchObject({ code });
      },
    );
  });

  it.each([
    ["username", { username: "bob\r\nDELE 1" }],
    ["password", { password: "pw\nQUIT" }],
    ["password NUL", { password: "pw\0x" }],
    ["accessToken", { accessToken: "t\r" }],
  ])("rejects CR/LF/NUL in the %s before sending anything", async (_name, bad) => {
    const server = await withSession(
      [...opening("USER", "SASL PLAIN XOAUTH2")],
      async ({ client }) => {
        await expect(client.login(insecure(bad))).rejects.toMatchObject({
          code: ErrorCode.INVALID_CREDENTIAL,
        });
      },
    );
    expect(server.received).toEqual(["CAPA"]);
  });

  it.each([
    ["user", {}],
    ["plain", { auth: "plain" as const }],
    ["apop", { auth: "apop" as const }],
    ["cram-md5", { auth: "cram-md5" as const }],
    ["xoauth2 token", { accessToken: "tok", password: undefined }],
  ])(
    "refuses %s without TLS unless allowInsecureAuth, before sending anything",
    async (_name, c) => {
      const server = await withSession(
        [...opening("USER", "SASL PLAIN CRAM-MD5 XOAUTH2")],
        async ({ client }) => {
          await expect(
            client.login({ username: "bob", password: "secret", ...c }),
          ).rejects.toMatchObject({
            code: ErrorCode.INSECURE_AUTH,
          });
        },
      );
      expect(server.received.filter((l) => CREDENTIAL_LINE.test(l))).toEqual([]);
    },
  );

  it("redacts PASS, AUTH payloads, continuations and the APOP digest in the trace", async () => {
    const secret = "s3cr3t-value";
    const b64 = Buffer.from(`\0bob\0${secret}`).toString("base64");
    const traces: string[] = [];
    await withSession(
      [...opening("USER"), "C: USER bob", "S: +OK", `C: PASS ${secret}`, "S: +OK", ...capa()],
      async ({ client, trace }) => {
        await client.login(insecure({ password: secret }));
        traces.push(...trace.map((t) => `${t.direction}: ${t.line}`));
      },
    );
    await withSession(
      [...opening("SASL PLAIN"), `C: AUTH PLAIN ${b64}`, "S: +OK", ...capa()],
      async ({ client, trace }) => {
        await client.login(insecure({ password: secret }));
        traces.push(...trace.map((t) => `${t.direction}: ${t.line}`));
      },
    );
    await withSession(
      [
        ...opening("SASL PLAIN"),
        "C: AUTH PLAIN",
        "S: + ",
        { c: /^[A-Za-z0-9+/=]{300,}$/ },
        "S: +OK",
        ...capa(),
      ],
      async ({ client, trace }) => {
        await client.login(insecure({ password: secret.repeat(20) }));
        traces.push(...trace.map((t) => `${t.direction}: ${t.line}`));
      },
    );
    await withSession(
      [...opening(), { c: /^APOP bob [0-9a-f]{32}$/ }, "S: +OK", ...capa()],
      async ({ client, trace }) => {
        await client.login(insecure({ password: secret }));
        traces.push(...trace.map((t) => `${t.direction}: ${t.line}`));
      },
    );
    expect(traces).toContain("C: PASS ****");
    expect(traces).toContain("C: AUTH PLAIN ****");
    expect(traces).toContain("C: ****");
    expect(traces).toContain("C: APOP bob ****");
    expect(traces).toContain("C: USER bob");
    for (const line of traces) {
      expect(line).not.toContain(secret);
      expect(line).not.toContain(b64);
      expect(line).not.toMatch(/[0-9a-f]{32}/);
    }
  });
});

describe("Pop3Client commands (RFC 1939 §5, §7)", () => {
  it("runs STAT, LIST, UIDL, TOP, RETR, DELE, RSET, NOOP and QUIT", async () => {
    await withSession(
      [
        ...opening("USER", "TOP", "UIDL"),
        ...USER_PASS,
        ...capa("USER", "TOP", "UIDL"),
        "C: STAT",
        "S: +OK 2 320",
        "C: LIST",
        "S: +OK 2 messages",
        "S: 1 120",
        "S: 2 200 extra-info",
        "S: .",
        "C: LIST 2",
        "S: +OK 2 200",
        "C: UIDL",
        "S: +OK",
        "S: 1 whqtswO00WBw418f9t5JxYwZ",
        "S: 2 QhdPYR:00WBw1Ph7x7",
        "S: .",
        "C: UIDL 1",
        "S: +OK 1 whqtswO00WBw418f9t5JxYwZ",
        "C: TOP 1 0",
        "S: +OK top of message follows",
        "S: Subject: hi",
        "S: ",
        "S: .",
        "C: RETR 1",
        "S: +OK 120 octets",
        "S: Subject: hi",
        "S: ",
        "S: ..leading dot",
        "S: .",
        "C: DELE 1",
        "S: +OK message 1 deleted",
        "C: RSET",
        "S: +OK",
        "C: NOOP",
        "S: +OK",
        "C: QUIT",
        "S: +OK dewey POP3 server signing off",
        { close: true },
      ],
      async ({ client }) => {
        await client.login(insecure());
        expect(await client.stat()).toEqual({ count: 2, size: 320 });
        expect(await client.list()).toEqual([
          { msg: 1, size: 120 },
          { msg: 2, size: 200 },
        ]);
        expect(await client.list(2)).toEqual({ msg: 2, size: 200 });
        expect(await client.uidl()).toEqual([
          { msg: 1, uidl: "whqtswO00WBw418f9t5JxYwZ" },
          { msg: 2, uidl: "QhdPYR:00WBw1Ph7x7" },
        ]);
        expect(await client.uidl(1)).toEqual({ msg: 1, uidl: "whqtswO00WBw418f9t5JxYwZ" });
        expect((await readAll(await client.top(1, 0))).toString()).toBe("Subject: hi\r\n\r\n");
        expect((await readAll(await client.retr(1))).toString()).toBe(
          "Subject: hi\r\n\r\n.leading dot\r\n",
        );
        await client.dele(1);
        await client.rset();
        await client.noop();
        await client.quit();
        await expect(client.noop()).rejects.toMatchObject({ code: ErrorCode.CONNECTION_CLOSED });
      },
    );
  });

  it("rejects one command on -ERR and keeps the session usable", async () => {
    await withSession(
      [
        ...opening(),
        "C: RETR 9",
        "S: -ERR no such message",
        "C: LIST 9",
        "S: -ERR [SYS/TEMP] later",
        "C: NOOP",
        "S: +OK",
      ],
      async ({ client }) => {
        await expect(client.retr(9)).rejects.toMatchObject({
          code: ErrorCode.COMMAND_FAILED,
          command: "RETR",
          serverText: "no such message",
        });
        await expect(client.list(9)).rejects.toMatchObject({ code: ErrorCode.SYS_TEMP });
        await client.noop();
      },
    );
  });

  it("reports a failed QUIT so the caller knows deletions were not committed (RFC 1939 §6)", async () => {
    await withSession(
      [...opening(), "C: DELE 1", "S: +OK", "C: QUIT", "S: -ERR some deleted messages not removed"],
      async ({ client }) => {
        await client.dele(1);
        await expect(client.quit()).rejects.toMatchObject({ code: ErrorCode.COMMAND_FAILED });
      },
    );
  });

  it("close() drops the connection without QUIT and rejects queued commands", async () => {
    const server = await withSession(
      [...opening(), "C: DELE 1", "S: +OK", { stall: true }],
      async ({ client }) => {
        await client.dele(1);
        const pending = client.noop();
        client.close();
        await expect(pending).rejects.toMatchObject({ code: ErrorCode.CONNECTION_CLOSED });
      },
    );
    expect(server.received).not.toContain("QUIT");
  });

  it("returns hostile and duplicate UIDLs verbatim and lets isValidUidl judge them", async () => {
    const long = "x".repeat(71);
    await withSession(
      [
        ...opening("UIDL"),
        "C: UIDL",
        "S: +OK",
        "S: 1 dup",
        "S: 2 dup",
        "S: 3 has space\t",
        `S: 4 ${long}`,
        "S: 5 ..dotted",
        "S: 6 caf\u00e9",
        "S: .",
      ],
      async ({ client }) => {
        const list = await client.uidl();
        expect(list.map((u) => u.uidl)).toEqual([
          "dup",
          "dup",
          "has space\t",
          long,
          "..dotted",
          "caf\u00c3\u00a9",
        ]);
        expect(list.map((u) => isValidUidl(u.uidl))).toEqual([
          true,
          true,
          false,
          false,
          true,
          false,
        ]);
      },
    );
  });

  it("undoes byte-stuffing in listing lines and rejects malformed ones with PROTOCOL", async () => {
    await withSession(
      [
        GREETING,
        ...capa("..DOTTED", "USER"),
        "C: LIST",
        "S: +OK",
        "S: 1 abc",
        "S: .",
        "C: NOOP",
        "S: +OK",
      ],
      async ({ client }) => {
        expect(client.capabilities.raw).toEqual([".DOTTED", "USER"]);
        await expect(client.list()).rejects.toMatchObject({ code: ErrorCode.PROTOCOL });
        await client.noop();
      },
    );
  });

  it("fails the connection with PROTOCOL on a response without +OK or -ERR", async () => {
    await withSession(
      [...opening(), "C: NOOP", "S: HELLO", { stall: true }],
      async ({ client }) => {
        await expect(client.noop()).rejects.toMatchObject({ code: ErrorCode.PROTOCOL });
        await expect(client.stat()).rejects.toMatchObject({ code: ErrorCode.PROTOCOL });
      },
    );
  });

  it("rejects invalid message numbers without sending a command", async () => {
    const server = await withSession([...opening()], async ({ client }) => {
      await expect(client.retr(0)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
      await expect(client.dele(1.5)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
      await expect(client.top(1, -1)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    });
    expect(server.received).toEqual(["CAPA"]);
  });
});

describe("Pop3Client pipelining (RFC 2449 §6.6)", () => {
  /** Three RETRs, all read by the server before it answers any: a non-pipelining client stalls. */
  const threeRetrs = [
    ...opening("USER", "PIPELINING"),
    ...USER_PASS,
    ...capa("USER", "PIPELINING"),
    "C: RETR 1",
    "C: RETR 2",
    "C: RETR 3",
    "S: +OK",
    { raw: "one\r\n.\r\n" },
    "S: +OK",
    { raw: "two\r\n...\r\n.\r\n" },
    "S: +OK",
    { raw: "three\r\n.\r\n" },
  ];

  it("writes RETRs ahead of their responses and delivers the streams in order", async () => {
    const bodies = ["one\r\n", "two\r\n..\r\n", "three\r\n"];
    await withSession(threeRetrs, async ({ client }) => {
      await client.login(insecure());
      const pending = [1, 2, 3].map((n) =>
        client.retr(n, { expectedSize: Buffer.byteLength(bodies[n - 1] ?? "") }),
      );
      const got: string[] = [];
      for (const p of pending) got.push((await readAll(await p)).toString());
      expect(got).toEqual(bodies);
    });
  });

  it("sends the RETRs queued in one event-loop turn in one write", async () => {
    // Each socket write is a TCP segment (and, over TLS, a record) and a wake-up of the server:
    // _write is called per unbatched chunk, _writev once per corked batch.
    const single = vi.spyOn(Socket.prototype, "_write");
    const batched = vi.spyOn(Socket.prototype, "_writev");
    try {
      await withSession(threeRetrs, async ({ client }) => {
        await client.login(insecure());
        single.mockClear();
        batched.mockClear();
        const pending = [1, 2, 3].map((n) => client.retr(n));
        for (const p of pending) await readAll(await p);
      });
      const retrWrites = [
        ...single.mock.calls.map(([chunk]) => String(chunk)),
        ...batched.mock.calls.map(([chunks]) => chunks.map((c) => String(c.chunk)).join("")),
      ].filter((text) => text.includes("RETR"));
      expect(retrWrites).toEqual(["RETR 1\r\nRETR 2\r\nRETR 3\r\n"]);
    } finally {
      single.mockRestore();
      batched.mockRestore();
    }
  });

  it("keeps at most pipelineWindow commands outstanding", async () => {
    await withSession(
      [
        ...opening("USER", "PIPELINING"),
        ...USER_PASS,
        ...capa("USER", "PIPELINING"),
        "C: NOOP",
        "C: STAT",
        { expectQuiet: true },
        "S: +OK",
        "C: LIST 1",
        "S: +OK 0 0",
        "S: +OK 1 10",
      ],
      async ({ client }) => {
        await client.login(insecure());
        const results = await Promise.all([client.noop(), client.stat(), client.list(1)]);
        expect(results[2]).toEqual({ msg: 1, size: 10 });
      },
      { pipelineWindow: 2 },
    );
  });

  it("sends one command at a time without PIPELINING", async () => {
    await withSession(
      [
        ...opening("USER"),
        ...USER_PASS,
        ...capa("USER"),
        "C: NOOP",
        { expectQuiet: true },
        "S: +OK",
        "C: STAT",
        "S: +OK 0 0",
      ],
      async ({ client }) => {
        await client.login(insecure());
        await Promise.all([client.noop(), client.stat()]);
      },
    );
  });

  it("keeps later streams correct when the consumer abandons an earlier one", async () => {
    await withSession(
      [
        ...opening("USER", "PIPELINING"),
        ...USER_PASS,
        ...capa("USER", "PIPELINING"),
        "C: RETR 1",
        "C: RETR 2",
        "S: +OK",
        { raw: `${"a".repeat(200_000)}\r\n.\r\n` },
        "S: +OK",
        { raw: "second\r\n.\r\n" },
      ],
      async ({ client }) => {
        await client.login(insecure());
        const first = client.retr(1);
        const second = client.retr(2);
        (await first).destroy();
        expect((await readAll(await second)).toString()).toBe("second\r\n");
      },
    );
  });
});
