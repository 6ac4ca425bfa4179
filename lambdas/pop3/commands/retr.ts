/**
 * RFC 1939 §7 RETR. Resolves at +OK; the stream carries the message's raw octets, framed and
 * dot-unstuffed by the reader. With `expectedSize` (the LIST size) the stream errors with
 * SIZE_MISMATCH when the count differs. Consume each stream before awaiting a later command: the
 * next response is only read once this body has been read to its terminator.
 */
import type { Readable } from "node:stream";
import type { Pop3Engine } from "../engine.ts";
import { usageError } from "../errors.ts";
import { checkMsg } from "./args.ts";

export async function retr(
  engine: Pop3Engine,
  msg: number,
  options?: { expectedSize?: number },
): Promise<Readable> {
  const expectedSize = options?.expectedSize;
  if (expectedSize !== undefined && !(Number.isSafeInteger(expectedSize) && expectedSize >= 0)) {
    throw usageError("expectedSize must be a non-negative integer");
  }
  return engine.exec("body", "RETR", `RETR ${checkMsg(msg)}`, { expectedSize });
}
