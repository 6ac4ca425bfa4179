/**
 * What both Lambda handlers share besides config (which is `lambdas/config/`: the environment
 * contract and the loaders): building things once per container, and Powertools logging.
 */
import type { Logger } from "@aws-lambda-powertools/logger";
import type { SessionLogger } from "../ingest/types.ts";

/** Memoises a factory: the first call builds, later calls reuse (one per Lambda container). */
export function lazy<T>(build: () => T): () => T {
  let built: { value: T } | undefined;
  return () => {
    built ??= { value: build() };
    return built.value;
  };
}

/** Keys whose values are never logged, whatever a caller passes in `fields`. */
const SECRET_KEYS = /password|secret|token|authorization|credential/i;

function redactFields(fields: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!fields) return {};
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = SECRET_KEYS.test(key) ? "****" : value;
  }
  return out;
}

/**
 * The session's logger on top of Powertools Logger: fields (uidl, messageId, …) become top-level
 * JSON keys next to the appended correlation keys (mailbox, tick).
 */
export function sessionLogger(logger: Logger): SessionLogger {
  return {
    debug: (message, fields) => logger.debug(message, redactFields(fields)),
    info: (message, fields) => logger.info(message, redactFields(fields)),
    warn: (message, fields) => logger.warn(message, redactFields(fields)),
    error: (message, fields) => logger.error(message, redactFields(fields)),
  };
}
