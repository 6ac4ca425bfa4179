/** The grant shapes a secret may hold: what parses, and errors that name fields, never values. */
import { describe, expect, it } from "vitest";
import { ErrorCode, type MailIngestError } from "../../../lambdas/errors.ts";
import { parseSecretString } from "../../../lambdas/secrets/parse.ts";

const KEY = "-----BEGIN PRIVATE KEY-----\nMIIsecretKEYmaterial\n-----END PRIVATE KEY-----\n";
const CERT = "-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n";
const TOKEN_URL = "https://login.microsoftonline.com/t/oauth2/v2.0/token";

function parseError(json: unknown): MailIngestError {
  try {
    parseSecretString(JSON.stringify(json));
  } catch (err) {
    return err as MailIngestError;
  }
  throw new Error("expected a parse error");
}

describe("grants in the secret JSON", () => {
  it("defaults to refresh_token and reads rotatedAt as epoch ms", () => {
    const parsed = parseSecretString(
      JSON.stringify({
        clientId: "c",
        refreshToken: "r",
        tokenUrl: TOKEN_URL,
        rotatedAt: "2026-11-30T00:00:00Z",
      }),
    );
    expect(parsed).toEqual({
      kind: "oauth",
      oauth: {
        clientId: "c",
        clientSecret: undefined,
        refreshToken: "r",
        tokenUrl: TOKEN_URL,
        scope: undefined,
        rotatedAt: Date.parse("2026-11-30T00:00:00Z"),
      },
    });
  });

  it("reads client_credentials with a secret, or with a certificate (x5t#S256 by default)", () => {
    expect(
      parseSecretString(
        JSON.stringify({
          grant: "client_credentials",
          clientId: "c",
          clientSecret: "s",
          tokenUrl: TOKEN_URL,
          scope: "https://outlook.office365.com/.default",
        }),
      ),
    ).toMatchObject({ kind: "oauth", oauth: { grant: "client_credentials", clientSecret: "s" } });
    expect(
      parseSecretString(
        JSON.stringify({
          grant: "client_credentials",
          clientId: "c",
          tokenUrl: TOKEN_URL,
          clientCertificate: { privateKeyPem: KEY, certificatePem: CERT },
        }),
      ),
    ).toMatchObject({
      oauth: {
        clientCertificate: { privateKeyPem: KEY, certificatePem: CERT, thumbprint: "x5t#S256" },
      },
    });
  });

  it("reads jwt_bearer from a whole pasted Google key file", () => {
    const parsed = parseSecretString(
      JSON.stringify({
        grant: "jwt_bearer",
        serviceAccount: {
          type: "service_account",
          private_key_id: "k1",
          private_key: KEY,
          client_email: "sa@p.iam.gserviceaccount.com",
          token_uri: "https://oauth2.googleapis.com/token",
        },
        subject: "user@example.com",
        scope: "https://mail.google.com/",
      }),
    );
    expect(parsed).toEqual({
      kind: "oauth",
      oauth: {
        grant: "jwt_bearer",
        serviceAccount: {
          private_key: KEY,
          client_email: "sa@p.iam.gserviceaccount.com",
          token_uri: "https://oauth2.googleapis.com/token",
        },
        subject: "user@example.com",
        scope: "https://mail.google.com/",
      },
    });
  });

  it.each([
    [{ grant: "password", clientId: "c" }, "field grant must be"],
    [
      { grant: "client_credentials", clientId: "c", tokenUrl: TOKEN_URL },
      "exactly one of clientSecret or clientCertificate",
    ],
    [
      {
        grant: "client_credentials",
        clientId: "c",
        tokenUrl: TOKEN_URL,
        clientSecret: KEY,
        clientCertificate: { privateKeyPem: KEY, certificatePem: CERT },
      },
      "exactly one of",
    ],
    [
      {
        grant: "client_credentials",
        clientId: "c",
        tokenUrl: TOKEN_URL,
        clientCertificate: { privateKeyPem: KEY, certificatePem: CERT, thumbprint: "md5" },
      },
      "thumbprint",
    ],
    [
      {
        grant: "client_credentials",
        clientId: "c",
        tokenUrl: TOKEN_URL,
        clientCertificate: { privateKeyPem: KEY },
      },
      "clientCertificate.certificatePem",
    ],
    [
      { grant: "jwt_bearer", serviceAccount: { private_key: KEY, client_email: "e" }, scope: "s" },
      "serviceAccount.token_uri",
    ],
    [
      {
        grant: "jwt_bearer",
        serviceAccount: {
          private_key: KEY,
          client_email: "e",
          token_uri: "http://example.com/token",
        },
        scope: "s",
      },
      "must be https",
    ],
    [
      {
        grant: "jwt_bearer",
        serviceAccount: {
          private_key: KEY,
          client_email: "e",
          token_uri: "https://oauth2.googleapis.com/token",
        },
      },
      "field scope",
    ],
  ])("refuses %j naming the field, never a value", (json, message) => {
    const err = parseError(json);
    expect(err.code).toBe(ErrorCode.SECRET_UNRESOLVED);
    expect(err.message).toContain(message);
    expect(err.message).not.toContain("secretKEY");
  });
});
