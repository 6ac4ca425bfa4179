/** Throwaway test PKI for the client's TLS tests: a CA, a CA-signed server cert, a self-signed cert. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makePki, makeSelfSigned } from "../../helpers/pki.ts";

export interface TestPki {
  caCert: string;
  /** Signed by the CA; its only identity is DNS:pop.test (no IP SAN). */
  serverKey: string;
  serverCert: string;
  /** Self-signed, SAN DNS:pop.test and IP:127.0.0.1. */
  selfSignedKey: string;
  selfSignedCert: string;
}

export function generatePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "pop3-pki-"));
  try {
    const pki = makePki(dir, { commonName: "pop.test", subjectAltName: "DNS:pop.test" });
    const self = makeSelfSigned(dir, {
      commonName: "pop.test",
      subjectAltName: "DNS:pop.test,IP:127.0.0.1",
    });
    return { ...pki, selfSignedKey: self.key, selfSignedCert: self.cert };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
