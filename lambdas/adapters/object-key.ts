/**
 * Object key rules shared by every {@link ObjectStore} adapter. The pipeline builds keys itself,
 * so a bad key is a bug; rejecting it everywhere (not only on disk, where `..` would escape the
 * root) keeps the adapters interchangeable and the contract suite honest.
 */
import { ErrorCode, MailIngestError } from "../errors.ts";
import { TEMP_DIR_NAME } from "./fs-atomic.ts";

/** Validates a `/`-separated relative key and returns its segments. */
export function keySegments(key: string): string[] {
  const problem = keyProblem(key);
  if (problem !== undefined) {
    throw new MailIngestError(
      ErrorCode.STORE_FAILED,
      `Invalid object key ${JSON.stringify(key)}: ${problem}`,
    );
  }
  return key.split("/");
}

function keyProblem(key: string): string | undefined {
  if (key.length === 0) return "empty";
  if (key.includes("\0")) return "contains NUL";
  if (key.includes("\\")) return "contains a backslash";
  if (key.startsWith("/")) return "absolute";
  const segments = key.split("/");
  for (const segment of segments) {
    if (segment === "") return "empty path segment";
    if (segment === "." || segment === "..") return "dot segment";
  }
  if (segments[0] === TEMP_DIR_NAME) return `the ${TEMP_DIR_NAME}/ prefix is reserved`;
  return undefined;
}
