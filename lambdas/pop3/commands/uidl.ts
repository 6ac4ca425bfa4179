/**
 * RFC 1939 §7 UIDL. Values are returned exactly as sent (latin1-decoded, so every octet maps to
 * one character): out-of-spec values are not rejected here, `isValidUidl` lets callers decide.
 */
import type { Pop3Engine } from "../engine.ts";
import { protocolError } from "../errors.ts";
import type { UidlEntry } from "../types.ts";
import { checkMsg, toInt } from "./args.ts";

export function uidl(engine: Pop3Engine): Promise<UidlEntry[]>;
export function uidl(engine: Pop3Engine, msg: number): Promise<UidlEntry>;
export async function uidl(engine: Pop3Engine, msg?: number): Promise<UidlEntry[] | UidlEntry> {
  if (msg !== undefined) {
    return parseUidlLine(await engine.exec("single", "UIDL", `UIDL ${checkMsg(msg)}`));
  }
  const lines = await engine.exec("multi", "UIDL", "UIDL");
  return lines.map(parseUidlLine);
}

/** Parses one unique-id listing: the +OK text of `UIDL n`, or one line of `UIDL`. */
export function parseUidlLine(line: string): UidlEntry {
  // RFC 1939 §7: "msg SP unique-id"; the id is taken verbatim to the end of the line.
  const m = /^(\d+) +(.*)$/s.exec(line);
  if (!m) throw protocolError("UIDL", "malformed unique-id listing");
  return { msg: toInt(m[1], "UIDL"), uidl: m[2] ?? "" };
}
