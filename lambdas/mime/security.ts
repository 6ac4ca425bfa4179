/**
 * Signing and encryption as the MIME structure declares them. Nothing is verified or decrypted:
 * this reads content types only, and encrypted parts are stored as they are.
 *
 * - S/MIME (RFC 8551 §3.5, §3.2.2): multipart/signed with protocol application/pkcs7-signature;
 *   application/pkcs7-mime with smime-type signed-data (signed) or enveloped-data /
 *   authEnveloped-data (encrypted). The `x-` spellings of RFC 2311 are accepted too.
 * - PGP/MIME (RFC 3156 §4, §5): multipart/signed with protocol application/pgp-signature;
 *   multipart/encrypted with protocol application/pgp-encrypted.
 */
import type { Security } from "./parsed.ts";

const SMIME_SIGNATURE = new Set(["application/pkcs7-signature", "application/x-pkcs7-signature"]);
const SMIME_MIME = new Set(["application/pkcs7-mime", "application/x-pkcs7-mime"]);

/**
 * Adds what one MIME part declares to `into`. `params` are its Content-Type parameters (names
 * lower-case). The first finding of each kind wins, so the outermost layer is the one reported.
 */
export function noteSecurity(
  into: Security,
  contentType: string,
  params: Readonly<Record<string, string>>,
): void {
  const protocol = params.protocol?.trim().toLowerCase();
  if (contentType === "multipart/signed") {
    if (protocol !== undefined && SMIME_SIGNATURE.has(protocol)) into.signed ??= "smime";
    else if (protocol === "application/pgp-signature") into.signed ??= "pgp";
  } else if (contentType === "multipart/encrypted") {
    if (protocol === "application/pgp-encrypted") into.encrypted ??= "pgp";
  } else if (SMIME_MIME.has(contentType)) {
    const smimeType = params["smime-type"]?.trim().toLowerCase();
    if (smimeType === "signed-data") into.signed ??= "smime";
    else if (smimeType === "enveloped-data" || smimeType === "authenveloped-data") {
      into.encrypted ??= "smime";
    }
  }
}
