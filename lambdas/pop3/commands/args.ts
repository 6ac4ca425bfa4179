/** Argument checks and number parsing shared by the command files. */
import { protocolError, usageError } from "../errors.ts";

/** A message number as sent: RFC 1939 §5, message numbers start at 1. */
export function checkMsg(msg: number): number {
  if (!Number.isSafeInteger(msg) || msg < 1)
    throw usageError("message number must be a positive integer");
  return msg;
}

/** A run of digits from a response as a number; PROTOCOL beyond 2^53 - 1 (no silent rounding). */
export function toInt(digits: string | undefined, verb: string): number {
  const value = Number(digits);
  if (!Number.isSafeInteger(value)) throw protocolError(verb, "number out of range");
  return value;
}
