import { describe, expect, it } from "vitest";
import { ErrorCode, MailIngestError } from "../../../lambdas/errors.ts";
import { serverError } from "../../../lambdas/pop3/errors.ts";
import {
  isTransient,
  isValidUidl,
  parseCapabilities,
  parseResponseCode,
} from "../../../lambdas/pop3/index.ts";
import { apopDigest, authenticate, plain, type SaslIo } from "../../../lambdas/pop3/sasl.ts";

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

  it("classifies transient failures", () => {
    for (const code of [
      ErrorCode.IN_USE,
      ErrorCode.LOGIN_DELAY,
      ErrorCode.SYS_TEMP,
      ErrorCode.TIMEOUT,
      ErrorCode.CONNECTION_CLOSED,
      ErrorCode.CONNECT_FAILED,
      ErrorCode.CONNECT_TIMEOUT,
    ]) {
      expect(isTransient(new MailIngestError(code, "x")), code).toBe(true);
    }
    for (const code of [
      ErrorCode.AUTH_FAILED,
      ErrorCode.SYS_PERM,
      ErrorCode.TLS_FAILED,
      ErrorCode.PROTOCOL,
    ]) {
      expect(isTransient(new MailIngestError(code, "x")), code).toBe(false);
    }
    expect(isTransient(new Error("plain"))).toBe(false);
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
