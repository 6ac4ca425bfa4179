import { dovecotAvailable } from "./dovecot.ts";

/** Says once, up front, whether the Dovecot interop tests will run, so a skip is never silent. */
export default function setup(): void {
  const found = dovecotAvailable();
  if (found.ok) {
    process.stdout.write(`[mail-ingest] Dovecot found at ${found.path}: interop tests will run.\n`);
  } else if (process.env.CI) {
    throw new Error(`Dovecot is required in CI but was not found: ${found.reason}`);
  } else {
    process.stdout.write(
      `\n[mail-ingest] NOTICE: Dovecot interop tests SKIPPED (${found.reason}). Install it with: apt-get install dovecot-pop3d\n\n`,
    );
  }
}
