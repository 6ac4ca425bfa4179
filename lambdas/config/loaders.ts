/**
 * Every way config is loaded, each ending in the one validator, {@link parseConfig}: the CLI's
 * config file, and the Lambda's deployed file, SSM parameter or inline JSON. Errors give a JSON
 * fault's line and column, never the parser's message: `JSON.parse` messages quote their input,
 * and a config may hold a plain password.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describeError, ErrorCode, MailIngestError } from "../errors.ts";
import { describePosition, parseJsonOrPosition } from "../json-position.ts";
import { ConfigSourceEnv, EnvDefaults, integerEnv, LambdaEnv } from "./env.ts";
import { type AppConfig, ConfigError, parseConfig } from "./schema.ts";

/** Reads and validates a JSON config file. */
export async function loadConfigFile(file: string): Promise<AppConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError("(file)", `cannot read ${file}: ${(err as Error).message}`);
  }
  // The parser's own message quotes the config around the fault, which may be a password.
  const parsed = parseJsonOrPosition(text);
  if (!parsed.ok) {
    throw new ConfigError("(file)", `${file} is not valid JSON: ${describePosition(parsed.at)}`);
  }
  return parseConfig(parsed.value, path.dirname(path.resolve(file)));
}

/** Fetches an SSM parameter's string value (Powertools `getParameter` in the Lambda). */
export type GetParameter = (name: string, maxAgeSeconds: number) => Promise<string | undefined>;

/** Reads a config file's text; `node:fs/promises` `readFile` in production. */
export type ReadConfigFile = (file: string) => Promise<string>;

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
    const file = path.resolve(env[LambdaEnv.taskRoot] || process.cwd(), name);
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
      const cacheSeconds = integerEnv(
        env,
        LambdaEnv.configCacheSeconds,
        EnvDefaults.configCacheSeconds,
      );
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
