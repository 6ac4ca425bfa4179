/**
 * The login method choice (lambdas/pop3/auth.ts), tested without a server for the branches the
 * transcript tests in client.test.ts do not reach. Each case names the server's offer and the
 * credentials, and the method a regression in the "auto" order would change.
 */
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../../lambdas/errors.ts";
import { type AuthContext, chooseMethod } from "../../../lambdas/pop3/auth.ts";
import { parseCapabilities } from "../../../lambdas/pop3/index.ts";
import type { Pop3Credentials } from "../../../lambdas/pop3/types.ts";

/** A server that answered CAPA with `caps`, and whose greeting had `timestamp`. */
function server(caps: string[], timestamp?: string): AuthContext {
  return { capabilities: parseCapabilities(caps), capaSupported: true, apopTimestamp: timestamp };
}

const password: Pop3Credentials = { username: "bob", password: "pw" };
const token: Pop3Credentials = { username: "bob", accessToken: "tok" };
const both: Pop3Credentials = { username: "bob", password: "pw", accessToken: "tok" };

describe("auto login method", () => {
  it("uses OAUTHBEARER for a token when the server offers it but not XOAUTH2", () => {
    expect(chooseMethod(server(["SASL PLAIN OAUTHBEARER"]), token)).toBe("oauthbearer");
  });

  it("falls back to the password when the server offers no token mechanism", () => {
    expect(chooseMethod(server(["SASL PLAIN"]), both)).toBe("plain");
  });

  it("refuses a lone token when the server offers no token mechanism", () => {
    expect(() => chooseMethod(server(["SASL PLAIN"]), token)).toThrow(
      expect.objectContaining({ code: ErrorCode.AUTH_UNSUPPORTED }),
    );
  });

  it("tries USER on a server that refused CAPA (RFC 1939 baseline)", () => {
    const noCapa = { ...server([]), capaSupported: false };
    expect(chooseMethod(noCapa, password)).toBe("user");
  });

  it("prefers APOP, then CRAM-MD5, then LOGIN when neither PLAIN nor USER is offered", () => {
    const sasl = "SASL LOGIN CRAM-MD5";
    expect(chooseMethod(server([sasl], "<1.2@host>"), password)).toBe("apop");
    expect(chooseMethod(server([sasl]), password)).toBe("cram-md5");
    expect(chooseMethod(server(["SASL LOGIN"]), password)).toBe("login");
  });

  it("fails with AUTH_UNSUPPORTED when nothing is in common", () => {
    expect(() => chooseMethod(server(["TOP", "UIDL"]), password)).toThrow(
      expect.objectContaining({ code: ErrorCode.AUTH_UNSUPPORTED }),
    );
  });
});

describe("requested login method", () => {
  it("is used as asked, even when the server does not list it", () => {
    expect(chooseMethod(server(["USER"]), { ...password, auth: "cram-md5" })).toBe("cram-md5");
  });

  it("fails with INVALID_CREDENTIAL when its secret is missing", () => {
    expect(() => chooseMethod(server([]), { ...password, auth: "xoauth2" })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_CREDENTIAL }),
    );
    expect(() => chooseMethod(server([]), { ...token, auth: "plain" })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_CREDENTIAL }),
    );
  });
});
