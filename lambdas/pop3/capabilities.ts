/** The capability model's starting point; the CAPA parser is in `commands/capa.ts`. */
import type { Capabilities } from "./types.ts";

/** Capabilities of a server that has no CAPA command (or refused it). */
export function emptyCapabilities(): Capabilities {
  return {
    raw: [],
    sasl: [],
    pipelining: false,
    uidl: false,
    top: false,
    user: false,
    stls: false,
    respCodes: false,
    authRespCode: false,
  };
}
