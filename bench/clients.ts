/**
 * The clients the bench races, each a whole process: the raw floor, mpop, and mail-ingest with
 * the fs and the S3/SQS backends. A client owns its workspace (data dir, maildir, UIDL file);
 * `reset()` empties it between full runs, and keeping it gives the incremental case its state.
 */
import { accessSync, constants } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChildServer } from "./child-rpc.ts";
import type { BenchUser, Maildrop } from "./maildrop.ts";
import type { RunSpec } from "./measure.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MPOP = "/usr/bin/mpop";
/** Environment variable that carries the POP3 password to every child, never argv. */
const PASSWORD_ENV = "BENCH_POP3_PASSWORD";
/** The big message is ~340 MB; the default 150 MB cap would skip it. */
const MAX_MESSAGE_BYTES = 1_000_000_000;

export type ClientName =
  | "floor"
  | "node floor"
  | `node floor (${NodeFloorVariant})`
  | "mpop"
  | "mail-ingest fs"
  | "mail-ingest s3"
  | "mail-ingest imap";

/** What a client reports it fetched, parsed from its output or its workspace. */
export interface Fetched {
  readonly messages: number;
  readonly error?: string;
}

export interface Client {
  readonly name: ClientName;
  /** Root of this client's files, for inspection (e.g. the stored raw of the big message). */
  readonly dir: string;
  /** Empties the workspace: the next run starts from nothing, as on a first poll. */
  reset(): Promise<void>;
  spec(extraNodeArgs?: readonly string[]): Promise<RunSpec>;
  /** Reads how many messages the run fetched, from its stdout or its files. */
  fetched(stdout: string): Promise<Fetched>;
  dispose(): Promise<void>;
}

export function mpopAvailable(): boolean {
  try {
    accessSync(MPOP, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function childEnv(drop: Maildrop): NodeJS.ProcessEnv {
  return { ...process.env, [PASSWORD_ENV]: drop.password, FLOOR_PASSWORD: drop.password };
}

export async function floorClient(drop: Maildrop, user: BenchUser): Promise<Client> {
  return {
    name: "floor",
    dir: "",
    async reset() {},
    async spec() {
      return {
        command: process.execPath,
        args: [
          join(ROOT, "bench/floor-client.mjs"),
          drop.host,
          String(drop.port),
          drop.tls,
          drop.caFile ?? "-",
          user,
        ],
        env: childEnv(drop),
      };
    },
    async fetched(stdout) {
      const report = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { messages?: number };
      return { messages: report.messages ?? 0 };
    },
    async dispose() {},
  };
}

/** `--floor-variants`: the node floor with one part of its work taken out or moved. */
export const NODE_FLOOR_VARIANTS = {
  "no parse": { NODE_FLOOR_PARSE: "0" },
  "no fsync": { NODE_FLOOR_SYNC: "0" },
  "parse in a worker": { NODE_FLOOR_WORKERS: "1" },
} as const;
export type NodeFloorVariant = keyof typeof NODE_FLOOR_VARIANTS;

/**
 * The "node floor" (bench/node-floor-client.mjs): the floor's transport plus only the work the
 * contract makes mandatory (hash, create-only durable raw, a streaming MailParser parse, durable
 * attachments and metadata, a checkpoint every 20), with none of mail-ingest's structure. What
 * mail-ingest could reach in Node on this machine, at best.
 */
export async function nodeFloorClient(
  drop: Maildrop,
  user: BenchUser,
  variant?: NodeFloorVariant,
): Promise<Client> {
  const dir = await mkdtemp(join(tmpdir(), "mail-ingest-bench-node-floor-"));
  const dataDir = join(dir, "data");
  return {
    name: variant === undefined ? "node floor" : `node floor (${variant})`,
    dir: dataDir,
    async reset() {
      await rm(dataDir, { recursive: true, force: true });
    },
    async spec() {
      return {
        command: process.execPath,
        args: [
          join(ROOT, "bench/node-floor-client.mjs"),
          drop.host,
          String(drop.port),
          drop.tls,
          drop.caFile ?? "-",
          user,
          dataDir,
        ],
        env: { ...childEnv(drop), ...(variant === undefined ? {} : NODE_FLOOR_VARIANTS[variant]) },
      };
    },
    async fetched(stdout) {
      const report = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { messages?: number };
      return { messages: report.messages ?? 0 };
    },
    async dispose() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function mpopClient(drop: Maildrop, user: BenchUser): Promise<Client> {
  const dir = await mkdtemp(join(tmpdir(), "mail-ingest-bench-mpop-"));
  const maildir = join(dir, "Maildir");
  const uidls = join(dir, "uidls");
  const makeMaildir = async () => {
    for (const sub of ["tmp", "new", "cur"]) await mkdir(join(maildir, sub), { recursive: true });
  };
  await makeMaildir();
  /** Messages already in new/ before the latest run; keep mode leaves earlier ones there. */
  let delivered = 0;
  return {
    name: "mpop",
    dir,
    async reset() {
      await rm(maildir, { recursive: true, force: true });
      await rm(uidls, { force: true });
      await makeMaildir();
      delivered = 0;
    },
    async spec() {
      const tlsArgs =
        drop.tls === "implicit"
          ? ["--tls=on", "--tls-starttls=off", `--tls-trust-file=${drop.caFile}`]
          : ["--tls=off"];
      return {
        command: MPOP,
        args: [
          // --host means "command-line settings only": no ~/.mpoprc is read.
          `--host=${drop.host}`,
          `--port=${drop.port}`,
          ...tlsArgs,
          "--auth=user",
          `--user=${user}`,
          `--passwordeval=printf %s "$${PASSWORD_ENV}"`,
          "--keep=on",
          "--only-new=on",
          "--received-header=off",
          `--uidls-file=${uidls}`,
          `--delivery=maildir,${maildir}`,
          "--quiet",
        ],
        env: childEnv(drop),
      };
    },
    async fetched() {
      // mpop --quiet prints nothing; count what it delivered.
      const total = (await readdir(join(maildir, "new"))).length;
      const fresh = total - delivered;
      delivered = total;
      return { messages: fresh };
    },
    async dispose() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

interface FauxqsInfo {
  readonly endpoint: string;
  readonly region: string;
}

/** mail-ingest's `poll --json` output for one mailbox. */
interface PollJson {
  readonly mailboxes?: ReadonlyArray<{
    readonly ingested?: number;
    readonly error?: string;
  }>;
}

export async function mailIngestClient(
  drop: Maildrop,
  user: BenchUser,
  backend: { type: "fs" } | { type: "s3"; fauxqs: ChildServer<FauxqsInfo> },
  /** "imap": the same maildrop read over IMAP (drop.imapPort), fs backend only. */
  protocol: "pop3" | "imap" = "pop3",
): Promise<Client> {
  if (protocol === "imap" && (drop.imapPort === undefined || backend.type !== "fs")) {
    throw new Error("the IMAP client needs a maildrop served over IMAP and the fs backend");
  }
  const dir = await mkdtemp(join(tmpdir(), `mail-ingest-bench-${backend.type}-`));
  const configFile = join(dir, "config.json");
  const dataDir = join(dir, "data");
  const writeConfig = async () => {
    const mailbox = {
      id: user,
      host: drop.host,
      port: protocol === "imap" ? drop.imapPort : drop.port,
      tls: drop.tls,
      ...(drop.caFile ? { ca: drop.caFile } : {}),
      username: user,
      password: { env: PASSWORD_ENV },
      ...(drop.tls === "none" ? { allowInsecureAuth: true } : {}),
      // IMAP: afterIngest defaults to "none" (BODY.PEEK[], nothing changed), like delete never.
      ...(protocol === "imap" ? { protocol: "imap" } : { delete: "never" }),
      maxMessageBytes: MAX_MESSAGE_BYTES,
    };
    let storage: unknown = { type: "fs", dir: dataDir };
    let queue: unknown = { type: "fs", dir: join(dataDir, "queue") };
    if (backend.type === "s3") {
      const { endpoint, region } = backend.fauxqs.info;
      const { bucket, queueUrl } = await backend.fauxqs.call<{ bucket: string; queueUrl: string }>(
        "create",
      );
      storage = { type: "s3", bucket, endpoint, region, forcePathStyle: true };
      queue = { type: "sqs", queueUrl, endpoint, region };
    }
    await writeFile(configFile, JSON.stringify({ storage, queue, mailboxes: [mailbox] }, null, 2));
  };
  await writeConfig();
  return {
    name:
      protocol === "imap"
        ? "mail-ingest imap"
        : backend.type === "fs"
          ? "mail-ingest fs"
          : "mail-ingest s3",
    dir: dataDir,
    async reset() {
      await rm(dataDir, { recursive: true, force: true });
      // A fresh bucket and queue: the S3 state store lives in the bucket.
      await writeConfig();
    },
    async spec(extraNodeArgs = []) {
      const env = childEnv(drop);
      if (backend.type === "s3") {
        // fauxqs does not authenticate, but the SDK must sign with something.
        env.AWS_ACCESS_KEY_ID = "test";
        env.AWS_SECRET_ACCESS_KEY = "test";
        env.AWS_REGION = backend.fauxqs.info.region;
      }
      return {
        command: process.execPath,
        args: [
          ...extraNodeArgs,
          join(ROOT, "bin/mail-ingest.js"),
          "poll",
          "--config",
          configFile,
          "--json",
        ],
        env,
        cwd: ROOT,
      };
    },
    async fetched(stdout) {
      const lastLine = stdout.trim().split("\n").at(-1) ?? "";
      let report: PollJson;
      try {
        report = JSON.parse(lastLine) as PollJson;
      } catch {
        return { messages: 0, error: `unparseable output: ${lastLine.slice(0, 200)}` };
      }
      const box = report.mailboxes?.[0];
      return { messages: box?.ingested ?? 0, ...(box?.error ? { error: box.error } : {}) };
    },
    async dispose() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
