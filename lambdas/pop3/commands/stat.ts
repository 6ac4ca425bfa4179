/** RFC 1939 §5 STAT: message count and maildrop size in octets. */
import type { Pop3Engine } from "../engine.ts";
import { protocolError } from "../errors.ts";
import { toInt } from "./args.ts";

export interface StatResult {
  /** Messages in the maildrop, not counting those marked deleted. */
  count: number;
  /** Their total size, in octets. */
  size: number;
}

export async function stat(engine: Pop3Engine): Promise<StatResult> {
  return parseStat(await engine.exec("single", "STAT", "STAT"));
}

/** Parses the +OK text of STAT: "nn mm", possibly followed by more (RFC 1939 §5 drop listing). */
export function parseStat(text: string): StatResult {
  const m = /^(\d+)\s+(\d+)/.exec(text);
  if (!m) throw protocolError("STAT", "malformed drop listing");
  return { count: toInt(m[1], "STAT"), size: toInt(m[2], "STAT") };
}
