/** Throw-away test PKI made with the openssl CLI (ECDSA P-256: fast to generate). */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function openssl(dir: string, ...args: string[]): void {
  try {
    execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  } catch (err) {
    throw new Error(`openssl ${args[0]} failed`, { cause: err });
  }
}

export interface Identity {
  readonly commonName: string;
  /** e.g. "DNS:localhost,IP:127.0.0.1" */
  readonly subjectAltName: string;
}

export interface Pki {
  readonly caCert: string;
  readonly serverKey: string;
  readonly serverCert: string;
}

/**
 * A CA and a server certificate it signed for `server`, written into `dir` as ca.pem, ca.key,
 * server.key and server.pem (servers that read files use those), and returned as PEM.
 */
export function makePki(dir: string, server: Identity): Pki {
  openssl(
    dir,
    "req",
    "-x509",
    ...EC,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=mail-ingest test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
  openssl(
    dir,
    "req",
    ...EC,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    `/CN=${server.commonName}`,
  );
  writeFileSync(
    join(dir, "server.ext"),
    [
      `subjectAltName=${server.subjectAltName}`,
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "",
    ].join("\n"),
  );
  openssl(
    dir,
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
    "server.ext",
  );
  const read = (name: string) => readFileSync(join(dir, name), "utf8");
  return { caCert: read("ca.pem"), serverKey: read("server.key"), serverCert: read("server.pem") };
}

/** A self-signed certificate for `server` (which no default trust store accepts). */
export function makeSelfSigned(dir: string, server: Identity): { key: string; cert: string } {
  openssl(
    dir,
    "req",
    "-x509",
    ...EC,
    "-keyout",
    "self.key",
    "-out",
    "self.pem",
    "-days",
    "2",
    "-subj",
    `/CN=${server.commonName}`,
    "-addext",
    `subjectAltName=${server.subjectAltName}`,
  );
  return {
    key: readFileSync(join(dir, "self.key"), "utf8"),
    cert: readFileSync(join(dir, "self.pem"), "utf8"),
  };
}
