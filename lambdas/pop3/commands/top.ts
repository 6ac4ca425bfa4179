/** RFC 1939 §7 TOP: the headers, the blank line and `lines` body lines, as a raw stream. */
import type { Readable } from "node:stream";
import type { Pop3Engine } from "../engine.ts";
import { usageError } from "../errors.ts";
import { checkMsg } from "./args.ts";

export async function top(engine: Pop3Engine, msg: number, lines: number): Promise<Readable> {
  if (!Number.isSafeInteger(lines) || lines < 0) {
    throw usageError("TOP line count must be a non-negative integer");
  }
  return engine.exec("body", "TOP", `TOP ${checkMsg(msg)} ${lines}`);
}
