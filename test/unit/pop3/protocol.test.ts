import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../../lambdas/errors.ts";
import { serverError } from "../../../lambdas/pop3/errors.ts";
import {
  isTransient,
  isValidUidl,
  Pop3Client,
  parseCapabilities,
  parseResponseCode,
} from "../../../lambdas/pop3/index.ts";
import { apopDigest, authenticate, plain, type SaslIo } from "../../../lambdas/pop3/sasl.ts";
import { startTranscriptServer } from "../../helpers/transcript-server.ts";

/** A scripted SASL peer: records what the client sent and replays canned replies. */
function peer(replies: string[]): { io: SaslIo; sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    io: async (line) => {
      sent.push(line);
      const reply = replies.shift();
      if (reply === undefined) throw new Error("script exhausted");
      return reply;
    },
  };
}

describe("SASL initial response and the 255-octet rule (RFC 5034 §4)", () => {
  // "AUTH PLAIN " + base64 + CRLF; base64 of n octets is 4*ceil(n/3) characters.
  const lineLength = (password: string) =>
    `AUTH PLAIN ${Buffer.from(`\0u\0${password}`).toString("base64")}\r\n`.length;

  it("sends the initial response on a command line of exactly 255 octets", async () => {
    let password = "";
    while (lineLength(`${password}x`) <= 255) password += "x";
    expect(lineLength(password)).toBeLessThanOrEqual(255);
    expect(lineLength(password)).toBeGreaterThan(250);
    const { io, sent } = peer(["+OK"]);
    await authenticate(io, plain("u", password));
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatch(/^AUTH PLAIN \S+$/);
  });

  it("switches to the two-step form one base64 quantum above 255 octets", async () => {
    let password = "";
    while (lineLength(password) <= 255) password += "x";
    const { io, sent } = peer(["+ ", "+OK"]);
    await authenticate(io, plain("u", password));
    expect(sent).toEqual(["AUTH PLAIN", Buffer.from(`\0u\0${password}`).toString("base64")]);
  });

  it("cancels with * after too many challenges", async () => {
    const { io, sent } = peer([...Array(20).fill("+ "), "-ERR cancelled"]);
    await expect(authenticate(io, plain("u", "p"))).rejects.toMatchObject({
      code: ErrorCode.PROTOCOL,
    });
    expect(sent.at(-1)).toBe("*");
  });
});

describe("APOP digest (RFC 1939 §7)", () => {
  it("matches the RFC example", () => {
    expect(apopDigest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf")).toBe(
      "c4c9334bac560ecc979e58001b3e22fb",
    );
  });
});

describe("response codes (RFC 2449 §8, RFC 3206)", () => {
  it("splits a bracketed code from the text", () => {
    expect(parseResponseCode("[SYS/TEMP] try later")).toEqual({
      code: "SYS/TEMP",
      text: "try later",
    });
    expect(parseResponseCode("[in-use] busy")).toEqual({ code: "IN-USE", text: "busy" });
    expect(parseResponseCode("no code [IN-USE]")).toEqual({
      code: undefined,
      text: "no code [IN-USE]",
    });
  });

  it("maps hierarchical codes by prefix and unknown codes to the phase default", () => {
    expect(serverError("RETR", "[SYS/TEMP/DISK] full", false).code).toBe(ErrorCode.SYS_TEMP);
    expect(serverError("RETR", "[X-VENDOR] odd", false).code).toBe(ErrorCode.COMMAND_FAILED);
    expect(serverError("PASS", "[X-VENDOR] odd", true).code).toBe(ErrorCode.AUTH_FAILED);
    expect(serverError("PASS", "nope", true).code).toBe(ErrorCode.AUTH_FAILED);
  });
});

// These start from what a server says or what the network does, never from an ErrorCode, so they
// fail when the -ERR mapping or the retry decision changes; restating the TRANSIENT list could not.
describe("retry decision for server replies and network failures (isTransient)", () => {
  it("retries a locked, delayed or temporarily failing mailbox", () => {
    const replies: Array<[string, string, boolean]> = [
      ["PASS", "[IN-USE] mailbox locked by another session", true],
      ["PASS", "[LOGIN-DELAY] minimum time between logins not met", true],
      ["RETR", "[SYS/TEMP/DISK] spool full", false],
    ];
    for (const [verb, text, authPhase] of replies) {
      expect(isTransient(serverError(verb, text, authPhase)), text).toBe(true);
    }
  });

  it("does not retry rejected credentials, permanent failures or plain -ERR", () => {
    const replies: Array<[string, string, boolean]> = [
      ["PASS", "[AUTH] invalid credentials", true],
      ["PASS", "authentication failed", true],
      ["PASS", "[X-VENDOR] odd", true],
      ["RETR", "[SYS/PERM] mailbox is gone", false],
      ["RETR", "no such message", false],
    ];
    for (const [verb, text, authPhase] of replies) {
      expect(isTransient(serverError(verb, text, authPhase)), text).toBe(false);
    }
  });

  it("retries a connection that nobody accepts", async () => {
    const server = await startTranscriptServer([]);
    const { port } = server;
    await server.close();
    const err = await Pop3Client.connect({ host: "127.0.0.1", port, tls: "none" }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: ErrorCode.CONNECT_FAILED });
    expect(isTransient(err)).toBe(true);
  });

  it("does not retry an error that did not come from the client", () => {
    expect(isTransient(new Error("ECONNRESET"))).toBe(false);
  });
});

describe("CAPA parsing (RFC 2449 §5-6)", () => {
  it("is case-insensitive on tags and ignores malformed values", () => {
    const caps = parseCapabilities([
      "sasl plain Login",
      "Expire 0 USER",
      "LOGIN-DELAY soon",
      "X-UNKNOWN 1",
    ]);
    expect(caps.sasl).toEqual(["PLAIN", "LOGIN"]);
    expect(caps.expire).toBe(0);
    expect(caps.loginDelay).toBeUndefined();
    expect(caps.raw).toContain("X-UNKNOWN 1");
  });
});

describe("isValidUidl (RFC 1939 §7)", () => {
  it("accepts 1-70 printable non-space ASCII characters only", () => {
    expect(isValidUidl("a")).toBe(true);
    expect(isValidUidl("~".repeat(70))).toBe(true);
    expect(isValidUidl("")).toBe(false);
    expect(isValidUidl("a".repeat(71))).toBe(false);
    expect(isValidUidl("a b")).toBe(false);
    expect(isValidUidl("caf\u00e9")).toBe(false);
  });
});
