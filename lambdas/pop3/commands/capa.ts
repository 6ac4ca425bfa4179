/**
 * RFC 2449 §5 CAPA. Updates the engine's capabilities on +OK; a -ERR (a pre-RFC 2449 server)
 * leaves them as they were, which the caller has set to what fits (empty after STLS).
 */
import { ErrorCode, MailIngestError } from "../../errors.ts";
import { parseCapabilities } from "../capabilities.ts";
import type { Pop3Engine } from "../engine.ts";

/** Resolves true when the server answered CAPA, false when it refused the command. */
export async function capa(engine: Pop3Engine): Promise<boolean> {
  let lines: string[];
  try {
    lines = await engine.exec("multi", "CAPA", "CAPA");
  } catch (err) {
    if (err instanceof MailIngestError && err.code === ErrorCode.COMMAND_FAILED) return false;
    throw err;
  }
  engine.capaSupported = true;
  engine.capabilities = parseCapabilities(lines);
  return true;
}
