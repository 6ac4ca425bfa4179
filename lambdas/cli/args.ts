/** Argument helpers shared by the commands. */
import { type ParseArgsConfig, parseArgs } from "node:util";
import {
  type AppConfig,
  ConfigError,
  loadConfigFile,
  type MailboxConfig,
} from "../config/index.ts";
import { UsageError } from "./io.ts";

/** The parsed `--option` values; named so the declaration build can emit the return type. */
export type ParsedOptions<T extends NonNullable<ParseArgsConfig["options"]>> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: false }>
>["values"];

export function parse<T extends NonNullable<ParseArgsConfig["options"]>>(
  args: readonly string[],
  options: T,
): ParsedOptions<T> {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Loads `--config` and narrows to `--mailbox` when given. */
export async function loadSelection(
  configPath: string | undefined,
  mailboxId: string | undefined,
): Promise<{ config: AppConfig; mailboxes: readonly MailboxConfig[] }> {
  if (!configPath) throw new UsageError("--config FILE is required");
  const config = await loadConfigFile(configPath);
  if (mailboxId === undefined) return { config, mailboxes: config.mailboxes };
  const mailbox = config.mailboxes.find((m) => m.id === mailboxId);
  if (!mailbox)
    throw new ConfigError("--mailbox", `no mailbox with id "${mailboxId}" in ${configPath}`);
  return { config, mailboxes: [mailbox] };
}

/** "90", "90s", "5m", "1h" → milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new UsageError(`invalid duration "${text}" (use e.g. 60s, 5m, 1h)`);
  const value = Number(match[1]);
  const unit = match[2] ?? "s";
  const ms = value * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as "ms" | "s" | "m" | "h"];
  if (ms < 1000) throw new UsageError(`--every must be at least 1s, got "${text}"`);
  return ms;
}
