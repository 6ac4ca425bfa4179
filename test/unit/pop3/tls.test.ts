import { beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../../lambdas/errors.ts";
import { Pop3Client } from "../../../lambdas/pop3/index.ts";
import { startTranscriptServer } from "../../helpers/transcript-server.ts";
import { generatePki, type TestPki } from "./certs.ts";
import { capa, GREETING, opening, USER_PASS, withSession } from "./session.ts";

let pki: TestPki;
beforeAll(() => {
  pki = generatePki();
});

const serverTls = () => ({ key: pki.serverKey, cert: pki.serverCert });
const CREDENTIAL_LINE = /^(USER|PASS|AUTH|APOP)\b/i;

describe("implicit TLS (RFC 8314)", () => {
  it("verifies the server against the private CA and logs in without allowInsecureAuth", async () => {
    const server = await withSession(
      [...opening("USER"), ...USER_PASS, ...capa("USER")],
      async ({ client }) => {
        expect(client.secure).toBe(true);
        await client.login({ username: "bob", password: "secret" });
      },
      { tls: "implicit", ca: pki.caCert, servername: "pop.test" },
      { tls: serverTls(), implicitTls: true },
    );
    expect(server.sni).toEqual(["pop.test"]);
  });

  it("rejects a certificate from an unknown CA by default", async () => {
    const server = await startTranscriptServer([GREETING], { tls: serverTls(), implicitTls: true });
    try {
      await expect(
        Pop3Client.connect({
          host: server.host,
          port: server.port,
          tls: "implicit",
          servername: "pop.test",
        }),
      ).rejects.toMatchObject({ code: ErrorCode.TLS_FAILED });
    } finally {
      await server.close();
    }
  });

  it("rejects a self-signed certificate without a ca option", async () => {
    const server = await startTranscriptServer([GREETING], {
      tls: { key: pki.selfSignedKey, cert: pki.selfSignedCert },
      implicitTls: true,
    });
    try {
      await expect(
        Pop3Client.connect({ host: server.host, port: server.port, tls: "implicit" }),
      ).rejects.toMatchObject({ code: ErrorCode.TLS_FAILED });
    } finally {
      await server.close();
    }
  });

  it("checks the certificate identity against the IP host when no servername is given, sending no SNI", async () => {
    const server = await startTranscriptServer([GREETING], { tls: serverTls(), implicitTls: true });
    try {
      const err = await Pop3Client.connect({
        host: server.host,
        port: server.port,
        tls: "implicit",
        ca: pki.caCert,
      }).catch((e: unknown) => e);
      // The cert names only pop.test, so 127.0.0.1 must not pass the identity check.
      expect(err).toMatchObject({ code: ErrorCode.TLS_FAILED });
      expect(server.sni).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it("rejects a certificate that does not match the servername override", async () => {
    const server = await startTranscriptServer([GREETING], { tls: serverTls(), implicitTls: true });
    try {
      await expect(
        Pop3Client.connect({
          host: server.host,
          port: server.port,
          tls: "implicit",
          ca: pki.caCert,
          servername: "other.test",
        }),
      ).rejects.toMatchObject({ code: ErrorCode.TLS_FAILED });
    } finally {
      await server.close();
    }
  });
});

describe("STLS (RFC 2595)", () => {
  it("upgrades, re-reads CAPA over TLS and then allows login", async () => {
    const server = await withSession(
      [
        ...opening("STLS", "USER"),
        "C: STLS",
        "S: +OK Begin TLS negotiation",
        { starttls: true },
        ...capa("USER", "SASL PLAIN"),
        `C: AUTH PLAIN ${Buffer.from("\0bob\0secret").toString("base64")}`,
        "S: +OK",
        ...capa("USER", "PIPELINING"),
      ],
      async ({ client }) => {
        expect(client.secure).toBe(true);
        expect(client.capabilities.sasl).toEqual(["PLAIN"]);
        expect(client.capabilities.stls).toBe(false);
        await client.login({ username: "bob", password: "secret" });
        expect(client.capabilities.pipelining).toBe(true);
      },
      { tls: "starttls", ca: pki.caCert, servername: "pop.test" },
      { tls: serverTls() },
    );
    expect(server.sni).toEqual(["pop.test"]);
  });

  it("ignores a response injected after the STLS +OK in the same segment", async () => {
    await withSession(
      [
        ...opening("STLS", "USER"),
        "C: STLS",
        "S: +OK Begin TLS negotiation",
        // Hostile plaintext that, if framed, would answer the post-TLS CAPA.
        { raw: "+OK\r\nINJECTED\r\n.\r\n" },
        { starttls: true },
        ...capa("USER", "REAL"),
      ],
      async ({ client }) => {
        expect(client.capabilities.raw).toEqual(["USER", "REAL"]);
      },
      { tls: "starttls", ca: pki.caCert, servername: "pop.test" },
      { tls: serverTls() },
    );
  });

  it("forgets the plaintext capabilities when CAPA is refused after the upgrade (RFC 2595 §4)", async () => {
    await withSession(
      [
        ...opening("STLS", "USER", "PIPELINING", "SASL PLAIN"),
        "C: STLS",
        "S: +OK",
        { starttls: true },
        "C: CAPA",
        "S: -ERR not over TLS",
      ],
      async ({ client }) => {
        expect(client.secure).toBe(true);
        // Nothing learnt before the handshake may steer the session (a MITM could forge it).
        expect(client.capabilities).toMatchObject({ raw: [], sasl: [], pipelining: false });
      },
      { tls: "starttls", ca: pki.caCert, servername: "pop.test" },
      { tls: serverTls() },
    );
  });

  it("fails with STARTTLS_UNAVAILABLE when STLS is not offered, before any credential", async () => {
    const server = await startTranscriptServer([
      ...opening("USER", "SASL PLAIN"),
      "C: USER bob",
      "S: +OK",
    ]);
    try {
      await expect(
        Pop3Client.connect({ host: server.host, port: server.port, tls: "starttls" }),
      ).rejects.toMatchObject({ code: ErrorCode.STARTTLS_UNAVAILABLE });
      expect(server.received).toEqual(["CAPA"]);
      expect(server.received.filter((l) => CREDENTIAL_LINE.test(l))).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it("fails with STARTTLS_UNAVAILABLE when STLS is refused", async () => {
    const server = await startTranscriptServer([...opening("STLS"), "C: STLS", "S: -ERR not now"]);
    try {
      await expect(
        Pop3Client.connect({ host: server.host, port: server.port, tls: "starttls" }),
      ).rejects.toMatchObject({ code: ErrorCode.STARTTLS_UNAVAILABLE });
      expect(server.received).toEqual(["CAPA", "STLS"]);
    } finally {
      await server.close();
    }
  });

  it("fails with TLS_FAILED when the upgraded certificate is not trusted", async () => {
    const server = await startTranscriptServer(
      [...opening("STLS"), "C: STLS", "S: +OK", { starttls: true }, ...capa()],
      { tls: serverTls() },
    );
    try {
      await expect(
        Pop3Client.connect({
          host: server.host,
          port: server.port,
          tls: "starttls",
          servername: "pop.test",
        }),
      ).rejects.toMatchObject({ code: ErrorCode.TLS_FAILED });
      expect(server.received).toEqual(["CAPA", "STLS"]);
    } finally {
      await server.close();
    }
  });
});
