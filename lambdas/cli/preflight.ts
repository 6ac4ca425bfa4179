/**
 * Checks the CLI makes before any session starts, so a mistake in the local setup is a config
 * error (exit 2) naming its field, rather than one failed mailbox per poll found only when that
 * mailbox's turn comes:
 *
 * - every selected mailbox's local secret source (`{"env"}`, `{"file"}`, or the inline string)
 *   can be read and holds a usable secret;
 * - an fs `storage.dir` or `queue.dir` that already exists is a directory.
 *
 * Secrets Manager (`{"secretId"}`) lookups stay lazy: they need the network and AWS credentials,
 * and their failure is reported per mailbox, naming the mailbox and the secret id. Sessions still
 * resolve every secret themselves, so a daemon picks up a password file that is later replaced.
 */
import { readFile, stat } from "node:fs/promises";
import { type AppConfig, ConfigError, type MailboxConfig } from "../config/index.ts";
import { describeError } from "../errors.ts";
import { parseSecretString } from "../secrets/parse.ts";

export async function preflight(
  config: AppConfig,
  mailboxes: readonly MailboxConfig[],
  env: NodeJS.ProcessEnv,
): Promise<void> {
  if (config.storage.type === "fs") await assertDirectory(config.storage.dir, "storage.dir");
  if (config.queue.type === "fs") await assertDirectory(config.queue.dir, "queue.dir");
  for (const mailbox of mailboxes) {
    await assertLocalSecret(mailbox, `mailboxes[${config.mailboxes.indexOf(mailbox)}]`, env);
  }
}

/** A missing directory is fine (it is created on first write); anything else there is not. */
async function assertDirectory(dir: string, field: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(dir)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    // ENOTDIR (a parent is a file), EACCES, ELOOP: every session would fail the same way.
    throw new ConfigError(field, `cannot use ${dir}: ${describeError(err)}`);
  }
  if (!isDirectory) throw new ConfigError(field, `${dir} exists and is not a directory`);
}

/** Errors name the field and the variable or path, never the secret. */
async function assertLocalSecret(
  mailbox: MailboxConfig,
  at: string,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const source = mailbox.password;
  let field = `${at}.password`;
  let value: string;
  if (typeof source === "string") {
    value = source;
  } else if ("env" in source) {
    field = `${field}.env`;
    const found = env[source.env];
    if (!found) throw new ConfigError(field, `${source.env} is not set`);
    value = found;
  } else if ("file" in source) {
    field = `${field}.file`;
    try {
      // The same trailing-newline rule as resolveSecret: `echo secret > file` adds one.
      value = (await readFile(source.file, "utf8")).replace(/\r?\n$/, "");
    } catch (err) {
      throw new ConfigError(field, `cannot read ${source.file}: ${describeError(err)}`);
    }
    if (value === "") throw new ConfigError(field, `${source.file} is empty`);
  } else {
    return;
  }
  try {
    parseSecretString(value);
  } catch (err) {
    throw new ConfigError(field, describeError(err));
  }
}
