/** Shared setup for pipeline tests: a temp data dir, fs adapters and a mailbox config. */
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createAdapters } from "../../lambdas/adapters/index.ts";
import { type AppConfig, type MailboxConfig, parseConfig } from "../../lambdas/config/index.ts";
import { runMailbox } from "../../lambdas/ingest/session.ts";
import type { MailboxReport, SessionDeps, SessionOptions } from "../../lambdas/ingest/types.ts";
import type { ObjectStore } from "../../lambdas/ports.ts";

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
