/** Shared setup for pipeline tests: a temp data dir, fs adapters and a mailbox config. */
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createAdapters } from "../../lambdas/adapters/index.ts";
import { ObjectStateStore } from "../../lambdas/adapters/object-state.ts";
import { S3ObjectStore } from "../../lambdas/adapters/s3-store.ts";
import { SqsQueue } from "../../lambdas/adapters/sqs-queue.ts";
import { type AppConfig, type MailboxConfig, parseConfig } from "../../lambdas/config/index.ts";
import { runMailbox } from "../../lambdas/ingest/session.ts";
import type { MailboxReport, SessionDeps, SessionOptions } from "../../lambdas/ingest/types.ts";
import type { MailSource, ObjectStore } from "../../lambdas/ports.ts";
import type { Fauxqs } from "./fauxqs.ts";

export interface FsWorld {
  readonly dir: string;
  readonly config: AppConfig;
  readonly mailbox: MailboxConfig;
  readonly deps: SessionDeps;
  poll(
    options?: Partial<SessionOptions> & {
      deps?: Partial<SessionDeps>;
      mailbox?: Partial<MailboxConfig>;
    },
  ): Promise<MailboxReport>;
  /** sha256 of every stored raw message, keyed by file name. */
  raw(): Promise<Map<string, string>>;
  queue(): Promise<Array<Record<string, unknown>>>;
  cleanup(): Promise<void>;
}

/**
 * A session against a plain-text POP3 test server (user `u`, password `p`) storing to a fresh
 * fauxqs bucket under `mail/`, with its state there too, and queueing to a fresh SQS queue.
 */
export async function s3World(fauxqs: Fauxqs, server: { host: string; port: number }) {
  const bucket = await fauxqs.createBucket();
  const queueUrl = await fauxqs.createQueue();
  const store = new S3ObjectStore({ client: fauxqs.s3, bucket, prefix: "mail/" });
  const deps: SessionDeps = {
    store,
    queue: new SqsQueue({ client: fauxqs.sqs, queueUrl }),
    state: new ObjectStateStore({ store, prefix: "state/" }),
  };
  const config = await parseConfig({
    mailboxes: [
      {
        id: "cloud",
        host: server.host,
        port: server.port,
        tls: "none",
        allowInsecureAuth: true,
        username: "u",
        password: "p",
      },
    ],
  });
  const mailbox = config.mailboxes[0] as MailboxConfig;
  return {
    bucket,
    queueUrl,
    poll: () => runMailbox(mailbox, deps, { credentials: { password: "p" } }),
  };
}

/**
 * `inner` with some of its methods replaced (each override may call `inner` itself): how a test
 * watches or holds back the writes of a real store.
 */
export function wrapStore(
  inner: ObjectStore,
  overrides: Partial<Pick<ObjectStore, "put" | "get" | "head" | "delete" | "list">>,
): ObjectStore {
  return {
    put: (key, body, options) => inner.put(key, body, options),
    get: (key) => inner.get(key),
    head: (key) => inner.head(key),
    delete: (key) => inner.delete(key),
    list: (prefix) => inner.list(prefix),
    uri: (key) => inner.uri(key),
    bucket: inner.bucket,
    ...overrides,
  };
}

/**
 * `inner` with some of its methods replaced (each override may call `inner` itself): how a test
 * watches or holds back the fetches of a real source.
 */
export function wrapSource(
  inner: MailSource,
  overrides: Partial<Pick<MailSource, "list" | "fetch" | "markDone">>,
): MailSource {
  return {
    list: (known) => inner.list(known),
    fetch: (message) => inner.fetch(message),
    markDone: (message) => inner.markDone(message),
    close: () => inner.close(),
    abort: () => inner.abort(),
    ...(inner.keepsMarked === undefined ? {} : { keepsMarked: inner.keepsMarked }),
    ...overrides,
  };
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** Temp files anywhere under a data dir (the fs adapters keep them in `.tmp/` folders). */
export async function tempFiles(dir: string): Promise<string[]> {
  return (await listFiles(dir)).filter((f) => f.split(path.sep).includes(".tmp"));
}

export async function fsWorld(
  mailbox: Record<string, unknown>,
  password: string,
  /** Where the data dir goes (e.g. a small tmpfs); a fresh temp dir by default. */
  baseDir?: string,
): Promise<FsWorld> {
  const dir = baseDir ?? (await mkdtemp(path.join(tmpdir(), "mi-pipeline-")));
  const config = await parseConfig({ mailboxes: [{ id: "box", password, ...mailbox }] }, dir);
  const deps = await createAdapters(config.storage, config.queue);
  const base = config.mailboxes[0] as MailboxConfig;
  return {
    dir,
    config,
    mailbox: base,
    deps,
    poll: (options = {}) =>
      runMailbox(
        { ...base, ...options.mailbox },
        { ...deps, ...options.deps },
        { credentials: { password }, ...options },
      ),
    async raw() {
      const files = await listFiles(path.join(dir, "mail-ingest-data", "raw"));
      const out = new Map<string, string>();
      for (const file of files) out.set(path.basename(file), sha256(await readFile(file)));
      return out;
    },
    async queue() {
      // What a consumer reads: the `<id>.json` files; in-flight temp files live in a subfolder.
      const queueDir = path.join(dir, "mail-ingest-data", "queue");
      const names = (await readdir(queueDir).catch(() => [])).filter((n) => n.endsWith(".json"));
      return Promise.all(
        names.map(async (n) => JSON.parse(await readFile(path.join(queueDir, n), "utf8"))),
      );
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
