/** Throwaway test PKI generated with openssl: a CA, a CA-signed server cert, a self-signed cert. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  try {
    ssl(
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=POP3 Test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign",
    );
    ssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=pop.test");
    writeFileSync(
      join(dir, "ext.cnf"),
      "subjectAltName=DNS:pop.test\nextendedKeyUsage=serverAuth\n",
    );
    ssl(
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.pem",
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
    );
    ssl(
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "self.key",
      "-out",
      "self.pem",
      "-days",
      "2",
      "-subj",
      "/CN=pop.test",
      "-addext",
      "subjectAltName=DNS:pop.test,IP:127.0.0.1",
    );
    const read = (name: string) => readFileSync(join(dir, name), "utf8");
    return {
      caCert: read("ca.pem"),
      serverKey: read("server.key"),
      serverCert: read("server.pem"),
      selfSignedKey: read("self.key"),
      selfSignedCert: read("self.pem"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
