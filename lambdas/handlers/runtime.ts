/**
 * What both Lambda handlers share: reading their environment (the one place they do, and only
 * on first invocation, never at import), loading the mailbox config, and Powertools logging.
 */
import type { Logger } from "@aws-lambda-powertools/logger";
import type { AppConfig } from "../config.ts";
import { parseConfig } from "../config.ts";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { SessionLogger } from "../ingest/types.ts";

/** Memoises a factory: the first call builds, later calls reuse (one per Lambda container). */
export function lazy<T>(build: () => T): () => T {
  let built: { value: T } | undefined;
  return () => {
    built ??= { value: build() };
    return built.value;
  };
}

/** A required environment variable; missing is a deployment bug, named in the error. */
export function requireEnv(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) {
    throw new MailIngestError(ErrorCode.CONFIG_INVALID, `environment variable ${name} is not set`);
  }
  return value;
}

/** An optional non-negative integer environment variable. */
export function integerEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new MailIngestError(
      ErrorCode.CONFIG_INVALID,
      `environment variable ${name} must be a non-negative integer`,
    );
  }
  return value;
}

/** Seconds the SSM parameter (and the parse of it) is reused before it is fetched again. */
export const DEFAULT_CONFIG_CACHE_SECONDS = 300;
/** Seconds a Secrets Manager value is reused; a rotated OAuth token is tracked in memory meanwhile. */
export const DEFAULT_SECRET_CACHE_SECONDS = 300;

/** Fetches an SSM parameter's string value (Powertools `getParameter` in the Lambda). */
export type GetParameter = (name: string, maxAgeSeconds: number) => Promise<string | undefined>;

/**
 * Loads the mailbox config from `MAIL_INGEST_CONFIG_PARAMETER` (an SSM parameter holding the JSON)
 * or `MAIL_INGEST_CONFIG` (the JSON itself, deployed with the function), validated by
 * {@link parseConfig}. The parse is redone only when the text changes. The config holds secret
 * *sources* (`{secretId}`), never secret values.
 */
export function createConfigLoader(
  env: NodeJS.ProcessEnv,
  getParameter: GetParameter,
): () => Promise<AppConfig> {
  let last: { text: string; config: Promise<AppConfig> } | undefined;
  return async () => {
    const parameter = env.MAIL_INGEST_CONFIG_PARAMETER;
    const cacheSeconds = integerEnv(env, "CONFIG_CACHE_SECONDS", DEFAULT_CONFIG_CACHE_SECONDS);
    let text: string | undefined;
    if (parameter) {
      try {
        text = await getParameter(parameter, cacheSeconds);
      } catch (err) {
        throw new MailIngestError(
          ErrorCode.CONFIG_INVALID,
          `cannot read config parameter ${parameter}`,
          { cause: err },
        );
      }
      if (text === undefined) {
        throw new MailIngestError(
          ErrorCode.CONFIG_INVALID,
          `config parameter ${parameter} not found`,
        );
      }
    } else {
      text = env.MAIL_INGEST_CONFIG;
    }
    if (!text) {
      throw new MailIngestError(
        ErrorCode.CONFIG_INVALID,
        "set MAIL_INGEST_CONFIG_PARAMETER (SSM parameter name) or MAIL_INGEST_CONFIG (JSON)",
      );
    }
    if (last?.text !== text) {
      const source = text;
      const config = Promise.resolve().then(() => {
        let json: unknown;
        try {
          json = JSON.parse(source);
        } catch {
          // No cause: JSON.parse errors quote their input, and a config may hold a plain password.
          throw new MailIngestError(ErrorCode.CONFIG_INVALID, "mailbox config is not valid JSON");
        }
        return parseConfig(json);
      });
      // A failed parse is not cached: the next invocation re-reads (the operator may fix it).
      config.catch(() => {
        if (last?.config === config) last = undefined;
      });
      last = { text, config };
    }
    return last.config;
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
