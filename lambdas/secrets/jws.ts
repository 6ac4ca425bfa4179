/**
 * The little JOSE this project needs, on `node:crypto`: RS256 compact JWS signing (RFC 7515,
 * RFC 7518 §3.3) for client assertions and service-account grants, X.509 thumbprints for the
 * `x5t` / `x5t#S256` headers (RFC 7515 §4.1.7-8), and an unverified look at a JWT's claims for
 * `check`. No JOSE dependency: signing one JWS is a few lines, and verification is the token
 * endpoint's job, not ours.
 */
import { createHash, createPrivateKey, sign, X509Certificate } from "node:crypto";
import { isRecord } from "../util/is-record.ts";

export function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

/** A compact RS256 JWS of `claims` with `header` (alg and typ are set here). */
export function signJwtRs256(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  privateKeyPem: string,
): string {
  const input = `${base64url(JSON.stringify({ alg: "RS256", typ: "JWT", ...header }))}.${base64url(JSON.stringify(claims))}`;
  // createPrivateKey accepts PKCS#1 and PKCS#8 PEM (Google key files hold PKCS#8).
  const signature = sign("sha256", Buffer.from(input), createPrivateKey(privateKeyPem));
  return `${input}.${base64url(signature)}`;
}

/** base64url of the SHA-256 (`x5t#S256`) or SHA-1 (`x5t`) digest of the certificate's DER. */
export function certificateThumbprint(certificatePem: string, digest: "sha256" | "sha1"): string {
  const der = new X509Certificate(certificatePem).raw;
  return base64url(createHash(digest).update(der).digest());
}

/**
 * The payload of a JWT-shaped token, or undefined for an opaque one. Not verified: used only to
 * show an operator what a token says it carries (Microsoft access tokens are JWTs; Google's are
 * opaque).
 */
export function peekJwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    return isRecord(claims) ? claims : undefined;
  } catch {
    return undefined;
  }
}
