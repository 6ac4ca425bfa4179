/**
 * What both Lambda handlers share: reading their environment (the one place they do, and only
 * on first invocation, never at import), loading the mailbox config, and Powertools logging.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "@aws-lambda-powertools/logger";
import type { AppConfig } from "../config.ts";
import { parseConfig } from "../config.ts";
import { describeError, ErrorCode, MailIngestError } from "../errors.ts";
import type { SessionLogger } from "../ingest/types.ts";
import { describePosition, parseJsonOrPosition } from "../json-position.ts";

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

/** Seconds an SSM config parameter (and the parse of it) is reused before it is fetched again. */
export const DEFAULT_CONFIG_CACHE_SECONDS = 300;
/** Seconds a Secrets Manager value is reused; a rotated OAuth token is tracked in memory meanwhile. */
export const DEFAULT_SECRET_CACHE_SECONDS = 300;

/** Fetches an SSM parameter's string value (Powertools `getParameter` in the Lambda). */
export type GetParameter = (name: string, maxAgeSeconds: number) => Promise<string | undefined>;

/** Reads a config file's text; `node:fs/promises` `readFile` in production. */
export type ReadConfigFile = (file: string) => Promise<string>;

/** The environment variables that name a config source; exactly one must be set. */
export const ConfigSourceEnv = {
  /** A JSON file deployed with the function code; relative paths resolve against the task root. */
  file: "MAIL_INGEST_CONFIG_FILE",
  /** An SSM parameter holding the JSON, re-read every `CONFIG_CACHE_SECONDS`. */
  parameter: "MAIL_INGEST_CONFIG_PARAMETER",
  /** The JSON itself. */
  inline: "MAIL_INGEST_CONFIG",
} as const;

const readUtf8: ReadConfigFile = (file) => readFile(file, "utf8");

/**
 * Parses config JSON. The error gives the fault's line and column, never the parser's message or
 * a `cause`: `JSON.parse` messages quote their input, and a config managed outside CDK may hold a
 * plain password.
 */
function parseJson(text: string, what: string): unknown {
  const parsed = parseJsonOrPosition(text);
  if (parsed.ok) return parsed.value;
  throw new MailIngestError(
    ErrorCode.CONFIG_INVALID,
    `${what} is not valid JSON: ${describePosition(parsed.at)}`,
  );
}

/**
 * The deployed config file: read and validated once, then kept for the container's life, since
 * the file is part of the immutable code package (a config change deploys new code). A failed
 * read is not kept, so a later invocation reports the same precise error instead of a stale one.
 */
function fileConfigLoader(
  env: NodeJS.ProcessEnv,
  name: string,
  readConfigFile: ReadConfigFile,
): () => Promise<AppConfig> {
  let cached: Promise<AppConfig> | undefined;
  const load = async (): Promise<AppConfig> => {
    // Lambda unpacks the code package into LAMBDA_TASK_ROOT (/var/task), which is also the cwd.
    const file = path.resolve(env.LAMBDA_TASK_ROOT || process.cwd(), name);
    let text: string;
    try {
      text = await readConfigFile(file);
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
      throw new MailIngestError(
        ErrorCode.CONFIG_INVALID,
        missing
          ? `config file ${file} (${ConfigSourceEnv.file}) does not exist`
          : `cannot read config file ${file} (${ConfigSourceEnv.file})`,
        { cause: err },
      );
    }
    const json = parseJson(text, `config file ${file}`);
    try {
      return await parseConfig(json, path.dirname(file));
    } catch (err) {
      // Name the file too: the schema error alone does not say which deployment shipped it.
      throw new MailIngestError(ErrorCode.CONFIG_INVALID, `${file}: ${describeError(err)}`, {
        cause: err,
      });
    }
  };
  return () => {
    if (!cached) {
      const attempt = load();
      attempt.catch(() => {
        if (cached === attempt) cached = undefined;
      });
      cached = attempt;
    }
    return cached;
  };
}

/**
 * Loads the mailbox config, validated by {@link parseConfig}, from whichever one of
 * {@link ConfigSourceEnv} is set:
 *
 * - `MAIL_INGEST_CONFIG_FILE`: a JSON file shipped inside the code package (what the
 *   `MailIngestion` construct deploys; no size limit), read once per container;
 * - `MAIL_INGEST_CONFIG_PARAMETER`: an SSM parameter name, fetched through `getParameter` with a
 *   `CONFIG_CACHE_SECONDS` max age, and re-parsed only when its text changes;
 * - `MAIL_INGEST_CONFIG`: the JSON itself.
 *
 * Setting two is rejected rather than ranked: which config a fleet of pollers runs must never
 * depend on a precedence rule nobody remembers. The config holds secret *sources* (`{secretId}`),
 * never secret values.
 */
export function createConfigLoader(
  env: NodeJS.ProcessEnv,
  getParameter: GetParameter,
  readConfigFile: ReadConfigFile = readUtf8,
): () => Promise<AppConfig> {
  let fromFile: { name: string; load: () => Promise<AppConfig> } | undefined;
  let last: { text: string; config: Promise<AppConfig> } | undefined;
  return async () => {
    const set = Object.values(ConfigSourceEnv).filter((name) => env[name]);
    if (set.length !== 1) {
      throw new MailIngestError(
        ErrorCode.CONFIG_INVALID,
        set.length === 0
          ? `set one of ${Object.values(ConfigSourceEnv).join(", ")} to locate the mailbox config`
          : `set only one of ${set.join(", ")}: each names a whole mailbox config`,
      );
    }
    const file = env[ConfigSourceEnv.file];
    if (file) {
      if (fromFile?.name !== file) {
        fromFile = { name: file, load: fileConfigLoader(env, file, readConfigFile) };
      }
      return fromFile.load();
    }
    const parameter = env[ConfigSourceEnv.parameter];
    let text: string | undefined;
    if (parameter) {
      const cacheSeconds = integerEnv(env, "CONFIG_CACHE_SECONDS", DEFAULT_CONFIG_CACHE_SECONDS);
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
      text = env[ConfigSourceEnv.inline] ?? "";
    }
    if (last?.text !== text) {
      const source = text;
      const what = parameter ? `config parameter ${parameter}` : ConfigSourceEnv.inline;
      const config = Promise.resolve().then(() => parseConfig(parseJson(source, what)));
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
