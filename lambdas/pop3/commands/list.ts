/** RFC 1939 §5 LIST: scan listings ("msg size", extra fields ignored). */
import type { Pop3Engine } from "../engine.ts";
import { protocolError } from "../errors.ts";
import type { ListEntry } from "../types.ts";
import { checkMsg, toInt } from "./args.ts";

export function list(engine: Pop3Engine): Promise<ListEntry[]>;
export function list(engine: Pop3Engine, msg: number): Promise<ListEntry>;
export async function list(engine: Pop3Engine, msg?: number): Promise<ListEntry[] | ListEntry> {
  if (msg !== undefined) {
    return parseListLine(await engine.exec("single", "LIST", `LIST ${checkMsg(msg)}`));
  }
  const lines = await engine.exec("multi", "LIST", "LIST");
  return lines.map(parseListLine);
}

/** Parses one scan listing: the +OK text of `LIST n`, or one line of `LIST`. */
export function parseListLine(line: string): ListEntry {
  // RFC 1939 §5: "msg SP size", possibly followed by more (ignored).
  const m = /^(\d+) +(\d+)(?:\s|$)/.exec(line);
  if (!m) throw protocolError("LIST", "malformed scan listing");
  return { msg: toInt(m[1], "LIST"), size: toInt(m[2], "LIST") };
}
