/**
 * S/MIME samples made with the openssl CLI in a temporary directory: a throw-away ECDSA signer,
 * then `openssl smime` / `openssl cms` to sign (opaque or detached) and encrypt. Nothing is
 * vendored: each run makes fresh samples, so the tests cannot depend on one lucky encoding.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SmimeSigner {
  readonly dir: string;
  /** Runs `openssl <command> -in in -out out <rest>` on `input`, returning the file `out`. */
  run(args: readonly string[], input: Buffer): Buffer;
  close(): void;
}

export function makeSigner(): SmimeSigner {
  const dir = mkdtempSync(join(tmpdir(), "smime-"));
  const openssl = (args: readonly string[]): void => {
    try {
      execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
    } catch (err) {
      throw new Error(`openssl ${args.slice(0, 2).join(" ")} failed`, { cause: err });
    }
  };
  openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    "signer.key",
    "-out",
    "signer.pem",
    "-days",
    "2",
    "-subj",
    "/CN=mail-ingest S/MIME test signer/emailAddress=signer@example.com",
  ]);
  return {
    dir,
    run(args, input) {
      writeFileSync(join(dir, "in"), input);
      rmSync(join(dir, "out"), { force: true });
      // Options before the positional certificate files (`smime -encrypt ... cert.pem`).
      const [command = "smime", ...rest] = args;
      openssl([command, "-in", "in", "-out", "out", ...rest]);
      return readFileSync(join(dir, "out"));
    },
    close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Signing arguments for `openssl smime|cms -sign` with the test signer. */
export const SIGN = ["-sign", "-signer", "signer.pem", "-inkey", "signer.key"] as const;
