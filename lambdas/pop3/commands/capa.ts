/**
 * RFC 2449 §5 CAPA. Updates the engine's capabilities on +OK; a -ERR (a pre-RFC 2449 server)
 * leaves them as they were, which the caller has set to what fits (empty after STLS).
 */
import { ErrorCode, MailIngestError } from "../../errors.ts";
import { emptyCapabilities } from "../capabilities.ts";
import type { Pop3Engine } from "../engine.ts";
import type { Capabilities } from "../types.ts";

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

/**
 * Parses CAPA lines (RFC 2449 §5: one capability per line, tag then space-separated params; tags
 * are case-insensitive). Unknown tags stay visible in `raw`.
 */
export function parseCapabilities(lines: readonly string[]): Capabilities {
  const caps = emptyCapabilities();
  caps.raw = [...lines];
  for (const line of lines) {
    const [rawTag = "", ...params] = line.trim().split(/\s+/);
    switch (rawTag.toUpperCase()) {
      case "SASL":
        for (const p of params) if (p) caps.sasl.push(p.toUpperCase());
        break;
      case "PIPELINING":
        caps.pipelining = true;
        break;
      case "UIDL":
        caps.uidl = true;
        break;
      case "TOP":
        caps.top = true;
        break;
      case "USER":
        caps.user = true;
        break;
      case "STLS":
        caps.stls = true;
        break;
      case "RESP-CODES":
        caps.respCodes = true;
        break;
      case "AUTH-RESP-CODE":
        caps.authRespCode = true;
        break;
      case "EXPIRE": {
        // RFC 2449 §6.7: "EXPIRE NEVER" or "EXPIRE <days> [USER]".
        const value = params[0]?.toUpperCase();
        if (value === "NEVER") caps.expire = "NEVER";
        else if (value && /^\d+$/.test(value)) caps.expire = Number(value);
        break;
      }
      case "LOGIN-DELAY": {
        // RFC 2449 §6.8: "LOGIN-DELAY <seconds> [USER]".
        const value = params[0];
        if (value && /^\d+$/.test(value)) caps.loginDelay = Number(value);
        break;
      }
      case "IMPLEMENTATION":
        caps.implementation = params.join(" ");
        break;
      default:
        break;
    }
  }
  return caps;
}
