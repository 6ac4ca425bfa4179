/**
 * The config schema: its types, defaults and the one validator ({@link parseConfig}). Every loader
 * (CLI file, Lambda file, SSM parameter, inline JSON) and the CDK synth go through it, so a rule
 * lives here once; downstream code receives the typed, defaulted {@link AppConfig}.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { AuthMethod, TlsMode } from "../pop3/index.ts";
import { isRecord } from "../util/is-record.ts";

export interface FsStorageConfig {
  readonly type: "fs";
  readonly dir: string;
}
export interface S3StorageConfig {
  readonly type: "s3";
  readonly bucket: string;
  readonly prefix?: string;
  readonly region?: string;
  readonly endpoint?: string;
  readonly forcePathStyle?: boolean;
}
export type StorageConfig = FsStorageConfig | S3StorageConfig;

export interface FsQueueConfig {
  readonly type: "fs";
  readonly dir: string;
}
export interface SqsQueueConfig {
  readonly type: "sqs";
  readonly queueUrl: string;
  readonly region?: string;
  readonly endpoint?: string;
  /**
   * The queue's MaximumMessageSize, bytes, when set below SQS's 1 MiB: larger bodies go out in
   * pointer form. @default 1048576
   */
  readonly maxMessageBytes?: number;
}
export type QueueConfig = FsQueueConfig | SqsQueueConfig;

/** Where a mailbox's secret comes from. A bare string is the password itself. */
export type SecretSource =
  | string
  | { readonly env: string }
  | { readonly file: string }
  | { readonly secretId: string }
  /** An SSM Parameter Store SecureString (standard tier: no per-secret cost). */
  | { readonly ssmParameter: string };

/** RFC 1939 §6: DELE is committed at QUIT; these say when we issue it. */
export type DeletePolicy = "never" | "after-ingest" | { readonly afterDays: number };

/** Which protocol a mailbox is read with. */
export type MailProtocol = "pop3" | "imap";

/**
 * IMAP only: what marking a message done does on the server, once it is committed.
 * - `none`: nothing (it is fetched with BODY.PEEK[], so not even \Seen changes);
 * - `markSeen`: sets \Seen; `{flag}`: sets a keyword (RFC 3501 §2.3.2);
 * - `{moveTo}`: UID MOVE (RFC 6851), else UID COPY + \Deleted + UID EXPUNGE (RFC 4315);
 *   the folder is created first when missing only with `create`;
 * - `delete`: \Deleted + UID EXPUNGE (RFC 4315), never a plain EXPUNGE.
 */
export type AfterIngest =
  | "none"
  | "markSeen"
  | "delete"
  | { readonly flag: string }
  | { readonly moveTo: string; readonly create: boolean };

export interface MailboxConfig {
  /** `[A-Za-z0-9._-]+`; used in storage keys and as the SQS FIFO group id. */
  readonly id: string;
  /**
   * @default "pop3". The three protocol fields are optional in the type only so that mailboxes
   * built in code before IMAP existed stay valid; {@link parseMailboxes} always sets them.
   */
  readonly protocol?: MailProtocol;
  /**
   * IMAP folders read in this order, as the server lists them, or a special-use attribute such
   * as `\\Junk` (RFC 6154). Empty for POP3. @default ["INBOX"] for IMAP
   */
  readonly folders?: readonly string[];
  /**
   * IMAP: what marking done means (see {@link AfterIngest}); `none` for POP3. The session marks
   * messages done when `delete` says so: for IMAP `delete` is derived from this ("never" for
   * `none`, else "after-ingest"), or, when `delete` is given instead, this is `delete`.
   */
  readonly afterIngest?: AfterIngest;
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
  /** PEM of a private CA (read from a file path, or given inline). */
  readonly ca?: string;
  /** TLS SNI / certificate name override for IP-address hosts. */
  readonly servername?: string;
  readonly username: string;
  readonly password: SecretSource;
  readonly auth: AuthMethod;
  readonly allowInsecureAuth: boolean;
  /** Per-command idle timeout, ms. */
  readonly timeoutMs: number;
  readonly delete: DeletePolicy;
  readonly maxMessagesPerRun?: number;
  readonly maxBytesPerRun?: number;
  /** Messages larger than this (LIST size, bytes) are skipped and reported, never deleted. */
  readonly maxMessageBytes: number;
}

/** Fields of {@link MailboxConfig} that {@link parseMailboxes} fills in when a config omits them. */
type DefaultedMailboxField =
  | "port"
  | "tls"
  | "auth"
  | "allowInsecureAuth"
  | "timeoutMs"
  | "delete"
  | "maxMessageBytes";

/**
 * A mailbox as written in a config, before defaults: `protocol` "pop3", `port` 995 for implicit
 * TLS else 110 (IMAP: 993, else 143), `folders` ["INBOX"] for IMAP, `afterIngest` "none", `tls`
 * "implicit", `auth` "auto", `allowInsecureAuth` false, `timeoutMs` 30000, `delete` "never",
 * `maxMessageBytes` 150 MiB.
 */
export type MailboxInput = Omit<MailboxConfig, DefaultedMailboxField> &
  Partial<Pick<MailboxConfig, DefaultedMailboxField>>;

export interface AppConfig {
  readonly storage: StorageConfig;
  readonly queue: QueueConfig;
  readonly mailboxes: readonly MailboxConfig[];
  /** How many mailboxes are polled at once. */
  readonly concurrency: number;
}

export const DEFAULT_DATA_DIR = "./mail-ingest-data";
export const DEFAULT_MAX_MESSAGE_BYTES = 150 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_CONCURRENCY = 4;
export const MAILBOX_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The one mailbox-id rule: {@link MAILBOX_ID_PATTERN}, and not `.` or `..`. The id is a path
 * segment of fs storage and state keys (where those two would name a directory), an S3 key
 * segment and the SQS FIFO group id (at most 128 characters).
 */
export function isValidMailboxId(id: string): boolean {
  return MAILBOX_ID_PATTERN.test(id) && id !== "." && id !== "..";
}

const TLS_MODES: readonly TlsMode[] = ["implicit", "starttls", "none"];
const AUTH_METHODS: readonly AuthMethod[] = [
  "auto",
  "plain",
  "login",
  "cram-md5",
  "user",
  "apop",
  "xoauth2",
  "oauthbearer",
];

/** LOGIN (RFC 3501 §6.2.3), AUTHENTICATE PLAIN, XOAUTH2 and OAUTHBEARER (RFC 7628). */
const IMAP_AUTH_METHODS: readonly AuthMethod[] = [
  "auto",
  "plain",
  "login",
  "xoauth2",
  "oauthbearer",
];

/** Thrown for any invalid config; the message always names the offending field. */
export class ConfigError extends MailIngestError {
  override readonly name = "ConfigError";
  readonly field: string;
  /** The message without the field, e.g. `must be a non-empty string`. */
  readonly problem: string;

  constructor(field: string, problem: string) {
    super(ErrorCode.CONFIG_INVALID, `config: ${field}: ${problem}`);
    this.field = field;
    this.problem = problem;
  }
}

type Json = Record<string, unknown>;

/** Reads fields of one JSON object, collecting precise errors and rejecting unknown keys. */
class Fields {
  private readonly seen = new Set<string>();

  constructor(
    private readonly obj: Json,
    private readonly at: string,
  ) {}

  private where(key: string): string {
    return this.at ? `${this.at}.${key}` : key;
  }

  string(key: string, options: { optional: true; pattern?: RegExp }): string | undefined;
  string(key: string, options?: { optional?: false; pattern?: RegExp }): string;
  string(key: string, options: { optional?: boolean; pattern?: RegExp } = {}): string | undefined {
    this.seen.add(key);
    const value = this.obj[key];
    if (value === undefined && options.optional) return undefined;
    if (typeof value !== "string" || value.length === 0) {
      throw new ConfigError(this.where(key), "must be a non-empty string");
    }
    if (options.pattern && !options.pattern.test(value)) {
      throw new ConfigError(this.where(key), `must match ${options.pattern}`);
    }
    return value;
  }

  integer(key: string, options: { min: number; max: number; fallback: number }): number;
  integer(key: string, options: { min: number; max: number }): number | undefined;
  integer(key: string, options: { min: number; max: number; fallback?: number }) {
    this.seen.add(key);
    const value = this.obj[key];
    if (value === undefined) return options.fallback;
    if (typeof value !== "number" || !Number.isInteger(value)) {
      throw new ConfigError(this.where(key), "must be an integer");
    }
    if (value < options.min || value > options.max) {
      throw new ConfigError(this.where(key), `must be between ${options.min} and ${options.max}`);
    }
    return value;
  }

  boolean(key: string, fallback: boolean): boolean {
    this.seen.add(key);
    const value = this.obj[key];
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") throw new ConfigError(this.where(key), "must be true or false");
    return value;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    this.seen.add(key);
    const value = this.obj[key];
    if (value === undefined) return fallback;
    if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
      throw new ConfigError(this.where(key), `must be one of ${allowed.join(", ")}`);
    }
    return value as T;
  }

  raw(key: string): unknown {
    this.seen.add(key);
    return this.obj[key];
  }

  /** Call last: unknown keys are almost always typos, so they are errors, not ignored. */
  done(): void {
    for (const key of Object.keys(this.obj)) {
      if (!this.seen.has(key)) throw new ConfigError(this.where(key), "unknown field");
    }
  }
}

/**
 * Validates a `storage` object. Exported for the poller, which builds its storage from
 * `BUCKET_NAME`/`BUCKET_PREFIX`: the same `storage.prefix` rules apply there.
 */
export function parseStorage(value: unknown, dataDir: string): StorageConfig {
  if (value === undefined) return { type: "fs", dir: dataDir };
  if (!isRecord(value)) throw new ConfigError("storage", "must be an object");
  const f = new Fields(value, "storage");
  const type = f.oneOf("type", ["fs", "s3"] as const, "fs");
  let result: StorageConfig;
  if (type === "fs") {
    result = { type, dir: f.string("dir", { optional: true }) ?? dataDir };
  } else {
    const prefix = f.string("prefix", { optional: true });
    if (prefix !== undefined && (prefix.startsWith("/") || prefix.split("/").includes(".."))) {
      throw new ConfigError("storage.prefix", "must be a relative key prefix without '..'");
    }
    result = {
      type,
      bucket: f.string("bucket"),
      prefix,
      region: f.string("region", { optional: true }),
      endpoint: f.string("endpoint", { optional: true }),
      forcePathStyle: f.boolean("forcePathStyle", false),
    };
  }
  f.done();
  return result;
}

/**
 * SQS's MaximumMessageSize range, bytes (1 KiB to 1 MiB). Below ~1 KiB a pointer-form body would
 * not fit either.
 */
export const MIN_QUEUE_MESSAGE_BYTES = 1024;
export const MAX_QUEUE_MESSAGE_BYTES = 1_048_576;

function parseQueue(value: unknown, dataDir: string): QueueConfig {
  if (value === undefined) return { type: "fs", dir: path.join(dataDir, "queue") };
  if (!isRecord(value)) throw new ConfigError("queue", "must be an object");
  const f = new Fields(value, "queue");
  const type = f.oneOf("type", ["fs", "sqs"] as const, "fs");
  const result: QueueConfig =
    type === "fs"
      ? { type, dir: f.string("dir", { optional: true }) ?? path.join(dataDir, "queue") }
      : {
          type,
          queueUrl: f.string("queueUrl", { pattern: /^https?:\/\// }),
          region: f.string("region", { optional: true }),
          endpoint: f.string("endpoint", { optional: true }),
          maxMessageBytes: f.integer("maxMessageBytes", {
            min: MIN_QUEUE_MESSAGE_BYTES,
            max: MAX_QUEUE_MESSAGE_BYTES,
          }),
        };
  f.done();
  return result;
}

function parseSecretSource(value: unknown, at: string, baseDir: string): SecretSource {
  if (typeof value === "string") {
    if (value.length === 0) throw new ConfigError(at, "must not be empty");
    return value;
  }
  if (!isRecord(value)) {
    throw new ConfigError(
      at,
      'must be a string, {"env": NAME}, {"file": PATH}, {"secretId": ID} or {"ssmParameter": NAME}',
    );
  }
  const keys = Object.keys(value);
  const key = keys[0];
  if (
    keys.length !== 1 ||
    (key !== "env" && key !== "file" && key !== "secretId" && key !== "ssmParameter")
  ) {
    throw new ConfigError(
      at,
      'must have exactly one of "env", "file", "secretId" or "ssmParameter"',
    );
  }
  const f = new Fields(value, at);
  const source = f.string(key);
  f.done();
  if (key === "env") return { env: source };
  if (key === "file") return { file: path.resolve(baseDir, source) };
  if (key === "ssmParameter") return { ssmParameter: source };
  return { secretId: source };
}

function parseDelete(value: unknown, at: string): DeletePolicy {
  if (value === undefined || value === "never") return "never";
  if (value === "after-ingest") return "after-ingest";
  if (isRecord(value)) {
    const f = new Fields(value, at);
    const afterDays = f.integer("afterDays", { min: 0, max: 36_500 });
    f.done();
    if (afterDays !== undefined) return { afterDays };
  }
  throw new ConfigError(at, 'must be "never", "after-ingest" or {"afterDays": N}');
}

async function parseCa(value: string | undefined, baseDir: string, at: string) {
  if (value === undefined || value.includes("-----BEGIN")) return value;
  try {
    return await readFile(path.resolve(baseDir, value), "utf8");
  } catch (err) {
    throw new ConfigError(at, `cannot read CA file ${value}: ${(err as Error).message}`);
  }
}

/** RFC 3501 §2.3.2: a keyword is an atom; `\\` would make it a system flag. */
const KEYWORD_PATTERN = /^(?:(?![(){%*"\\\]])[!-~])+$/;

function parseAfterIngest(value: unknown, at: string): AfterIngest {
  if (value === undefined || value === "none") return "none";
  if (value === "markSeen" || value === "delete") return value;
  if (isRecord(value)) {
    const f = new Fields(value, at);
    if ("flag" in value) {
      const flag = f.string("flag", { pattern: KEYWORD_PATTERN });
      f.done();
      return { flag };
    }
    if ("moveTo" in value) {
      const moveTo = f.string("moveTo");
      const create = f.boolean("create", false);
      f.done();
      return { moveTo, create };
    }
  }
  throw new ConfigError(
    at,
    'must be "none", "markSeen", "delete", {"flag": KEYWORD} or {"moveTo": FOLDER, "create"?: true}',
  );
}

function parseFolders(value: unknown, at: string): string[] {
  if (value === undefined) return ["INBOX"];
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    !value.every(
      (v) =>
        typeof v === "string" && v.length > 0 && !["\r", "\n", "\u0000"].some((c) => v.includes(c)),
    )
  ) {
    throw new ConfigError(at, "must be a non-empty array of folder names");
  }
  if (new Set(value).size !== value.length) throw new ConfigError(at, "must not repeat a folder");
  return value as string[];
}

/**
 * The protocol fields: `folders` and `afterIngest` are IMAP only, and an IMAP mailbox says what
 * happens after ingest with either `afterIngest` or `delete`, never both (they would disagree).
 */
function parseProtocol(
  f: Fields,
  at: string,
): Pick<MailboxConfig, "protocol" | "folders" | "afterIngest" | "delete"> {
  const protocol = f.oneOf("protocol", ["pop3", "imap"] as const, "pop3");
  const rawFolders = f.raw("folders");
  const rawAfter = f.raw("afterIngest");
  const rawDelete = f.raw("delete");
  if (protocol === "pop3") {
    if (rawFolders !== undefined) throw new ConfigError(`${at}.folders`, "is for IMAP only");
    if (rawAfter !== undefined) {
      throw new ConfigError(`${at}.afterIngest`, 'is for IMAP only (POP3 uses "delete")');
    }
    return {
      protocol,
      folders: [],
      afterIngest: "none",
      delete: parseDelete(rawDelete, `${at}.delete`),
    };
  }
  const folders = parseFolders(rawFolders, `${at}.folders`);
  if (rawAfter !== undefined && rawDelete !== undefined) {
    throw new ConfigError(`${at}.afterIngest`, 'cannot be set together with "delete"');
  }
  if (rawDelete !== undefined) {
    const policy = parseDelete(rawDelete, `${at}.delete`);
    return {
      protocol,
      folders,
      afterIngest: policy === "never" ? "none" : "delete",
      delete: policy,
    };
  }
  const afterIngest = parseAfterIngest(rawAfter, `${at}.afterIngest`);
  return {
    protocol,
    folders,
    afterIngest,
    delete: afterIngest === "none" ? "never" : "after-ingest",
  };
}

/** Validates one mailbox. `ca` is returned as given (inline PEM or a file path, not yet read). */
function parseMailbox(value: unknown, at: string, baseDir: string): MailboxConfig {
  if (!isRecord(value)) throw new ConfigError(at, "must be an object");
  const f = new Fields(value, at);
  const tls = f.oneOf("tls", TLS_MODES, "implicit");
  const protocol = parseProtocol(f, at);
  const imap = protocol.protocol === "imap";
  const id = f.string("id", { pattern: MAILBOX_ID_PATTERN });
  if (!isValidMailboxId(id)) throw new ConfigError(`${at}.id`, 'must not be "." or ".."');
  const implicitPort = imap ? 993 : 995;
  const plainPort = imap ? 143 : 110;
  const mailbox: MailboxConfig = {
    id,
    ...protocol,
    host: f.string("host"),
    tls,
    port: f.integer("port", {
      min: 1,
      max: 65_535,
      fallback: tls === "implicit" ? implicitPort : plainPort,
    }),
    ca: f.string("ca", { optional: true }),
    servername: f.string("servername", { optional: true }),
    username: f.string("username"),
    password: parseSecretSource(f.raw("password"), `${at}.password`, baseDir),
    auth: f.oneOf("auth", AUTH_METHODS, "auto"),
    allowInsecureAuth: f.boolean("allowInsecureAuth", false),
    timeoutMs: f.integer("timeoutMs", {
      min: 100,
      max: 15 * 60_000,
      fallback: DEFAULT_TIMEOUT_MS,
    }),
    maxMessagesPerRun: f.integer("maxMessagesPerRun", { min: 1, max: 10_000_000 }),
    maxBytesPerRun: f.integer("maxBytesPerRun", { min: 1, max: Number.MAX_SAFE_INTEGER }),
    maxMessageBytes: f.integer("maxMessageBytes", {
      min: 1,
      max: Number.MAX_SAFE_INTEGER,
      fallback: DEFAULT_MAX_MESSAGE_BYTES,
    }),
  };
  f.done();
  if (imap && !IMAP_AUTH_METHODS.includes(mailbox.auth)) {
    throw new ConfigError(`${at}.auth`, `must be one of ${IMAP_AUTH_METHODS.join(", ")} for IMAP`);
  }
  return mailbox;
}

/**
 * Validates a `mailboxes` array (unique ids) and fills in defaults, synchronously: `ca` stays as
 * given, an inline PEM or a file path that {@link parseConfig} then reads. The CDK construct
 * validates its mailboxes with this, so a mailbox that deploys is one the handlers accept.
 */
export function parseMailboxes(value: unknown, baseDir = process.cwd()): MailboxConfig[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new ConfigError("mailboxes", "must be a non-empty array");
  }
  const mailboxes: MailboxConfig[] = [];
  const ids = new Set<string>();
  for (const [i, raw] of value.entries()) {
    const mailbox = parseMailbox(raw, `mailboxes[${i}]`, baseDir);
    if (ids.has(mailbox.id))
      throw new ConfigError(`mailboxes[${i}].id`, `duplicate id "${mailbox.id}"`);
    ids.add(mailbox.id);
    mailboxes.push(mailbox);
  }
  return mailboxes;
}

/**
 * Validates a parsed JSON config and fills in defaults. Relative paths (fs dirs, CA and password
 * files) resolve against `baseDir`, normally the config file's directory.
 */
export async function parseConfig(json: unknown, baseDir = process.cwd()): Promise<AppConfig> {
  if (!isRecord(json)) throw new ConfigError("(root)", "must be a JSON object");
  const f = new Fields(json, "");
  const dataDir = path.resolve(baseDir, DEFAULT_DATA_DIR);
  const storage = parseStorage(f.raw("storage"), dataDir);
  const queue = parseQueue(f.raw("queue"), dataDir);
  const concurrency = f.integer("concurrency", { min: 1, max: 64, fallback: DEFAULT_CONCURRENCY });
  const rawMailboxes = f.raw("mailboxes");
  f.done();
  const mailboxes: MailboxConfig[] = [];
  for (const [i, mailbox] of parseMailboxes(rawMailboxes, baseDir).entries()) {
    mailboxes.push({ ...mailbox, ca: await parseCa(mailbox.ca, baseDir, `mailboxes[${i}].ca`) });
  }
  return {
    storage:
      storage.type === "fs" ? { ...storage, dir: path.resolve(baseDir, storage.dir) } : storage,
    queue: queue.type === "fs" ? { ...queue, dir: path.resolve(baseDir, queue.dir) } : queue,
    mailboxes,
    concurrency,
  };
}
