/**
 * Crash-safe file primitives shared by the fs adapters. The recipe is the classic one: write a
 * uniquely named temp file in the same file system, fsync it, rename (or link) it into place, then
 * fsync the parent directory so the new directory entry itself survives a power loss.
 *
 * The hot path (several objects per message, thousands per run) calls write, close, rename, link
 * and unlink synchronously on raw descriptors: each is a page-cache operation of a few
 * microseconds, while sending it to libuv's thread pool cost a hand-off and two futex wake-ups
 * (issue 14). open(O_CREAT) and mkdir go to the thread pool, as fsync does: they allocate an inode
 * and so can wait for the ext4 journal while other files' fsyncs commit it; run synchronously
 * they took 13 % and 4 % of the main thread in a profile of a full drain.
 */
import { randomUUID } from "node:crypto";
import {
  closeSync,
  fsync as fsyncCb,
  linkSync,
  mkdir as mkdirCb,
  open as openCb,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { readdir, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Name of the per-tree directory that holds in-flight temp files; never a valid key or id. */
export const TEMP_DIR_NAME = ".tmp";

/** Owner-only: the files hold mail. The umask can only narrow these further. */
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/** Opens `path` for writing, failing if it exists (O_CREAT | O_EXCL); returns the descriptor. */
export function openNew(path: string): Promise<number> {
  return new Promise<number>((resolve, reject) =>
    openCb(path, "wx", FILE_MODE, (err, fd) => (err ? reject(err) : resolve(fd))),
  );
}

export function fdSync(fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    fsyncCb(fd, (err) => (err ? reject(err) : resolve())),
  );
}

export function fdClose(fd: number): void {
  closeSync(fd);
}

/** Writes all of `data` at the descriptor's position, continuing after a short write. */
export function fdWriteAll(fd: number, data: Uint8Array): void {
  let offset = 0;
  while (offset < data.byteLength) {
    offset += writeSync(fd, data, offset, data.byteLength - offset);
  }
}

export function renamePath(from: string, to: string): void {
  renameSync(from, to);
}

export function linkPath(from: string, to: string): void {
  linkSync(from, to);
}

export function unlinkPath(path: string): void {
  unlinkSync(path);
}

/** Removes a temp file on a failure path; one already gone (or any error) is not news. */
export function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // The original failure is the one to report.
  }
}

/** A fresh, unique temp path inside `tmpDir`. */
export function tempPath(tmpDir: string): string {
  return join(tmpDir, `${randomUUID()}.tmp`);
}

/** True for errno codes meaning "that path is not there" (or a parent is not a directory). */
export function isMissing(err: unknown): boolean {
  const code = errnoCode(err);
  return code === "ENOENT" || code === "ENOTDIR";
}

export function errnoCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err && typeof err.code === "string") {
    return err.code;
  }
  return undefined;
}

/**
 * Makes a directory entry change (create, rename, link) durable. POSIX leaves a renamed file's
 * entry in the page cache until the directory itself is fsynced.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await new Promise<number>((resolve, reject) =>
    openCb(dir, "r", (err, fd) => (err ? reject(err) : resolve(fd))),
  );
  try {
    await fdSync(fd);
  } finally {
    fdClose(fd);
  }
}

interface SyncSlot {
  /** The fsync of the directory in progress. */
  running?: Promise<void>;
  /** The next fsync, to start once `running` ends; every caller since `running` began joins it. */
  queued?: Promise<void>;
}

/**
 * Group commit for directory fsyncs. Many entries land in one directory at once (every message's
 * raw file goes to `raw/{mailbox}/`, with 16 messages committing concurrently), and one fsync of
 * the directory makes durable every entry made before that fsync started. So a caller joins the
 * queued fsync, if there is one, instead of paying its own: per directory at most one runs and
 * one waits. The fsync already running may have started before the caller's entry existed, so it
 * never counts for that caller.
 */
export class DirSyncer {
  private readonly slots = new Map<string, SyncSlot>();

  /** @param fsync how one directory is fsynced (tests count the calls). */
  constructor(private readonly fsync: (dir: string) => Promise<void> = fsyncDir) {}

  /** Resolves once an fsync of `dir` that started after this call has succeeded. */
  sync(dir: string): Promise<void> {
    let slot = this.slots.get(dir);
    if (!slot) {
      slot = {};
      this.slots.set(dir, slot);
    }
    if (slot.queued) return slot.queued;
    const { running } = slot;
    if (!running) return this.start(dir, slot);
    const current = slot;
    const queued = running
      .catch(() => undefined)
      .then(() => {
        current.queued = undefined;
        return this.start(dir, current);
      });
    current.queued = queued;
    return queued;
  }

  private start(dir: string, slot: SyncSlot): Promise<void> {
    const running: Promise<void> = this.fsync(dir).finally(() => {
      if (slot.running !== running) return;
      slot.running = undefined;
      if (!slot.queued) this.slots.delete(dir);
    });
    slot.running = running;
    return running;
  }
}

/**
 * Remembers directories this process has already created, so the hot path (one put per part,
 * thousands per run) does not pay a mkdir per write. Concurrent writers into one new directory
 * (a message's attachments) share one mkdir. A directory removed behind our back is recreated on
 * ENOENT by {@link DirCache.retry}.
 *
 * A directory is ready only once its own entry is durable: after mkdir(2) its parent is fsynced
 * (shared through `syncer` with other entries landing there), because a file fsynced inside a
 * directory whose entry is still only in the page cache is lost with it on a power loss. The
 * parent is fsynced also when the directory already existed: it may be the leftover of a process
 * killed between its mkdir and that fsync. That costs one fsync per directory per process.
 */
export class DirCache {
  private readonly known = new Map<string, Promise<void>>();

  /**
   * @param limit directories remembered before the cache starts over. Every message with
   *   attachments has its own parts directory, so an unbounded cache would grow with the mailbox;
   *   forgetting costs only one extra mkdir and parent fsync per directory.
   * @param syncer fsyncs a parent directory after a mkdir in it.
   */
  constructor(
    private readonly limit = 4096,
    private readonly syncer: DirSyncer = new DirSyncer(),
  ) {}

  /** Resolves once `dir` exists and its entry (and its new ancestors' entries) are durable. */
  ensure(dir: string): Promise<void> {
    const known = this.known.get(dir);
    if (known) return known;
    if (this.known.size >= this.limit) this.known.clear();
    const made = this.make(dir);
    this.known.set(dir, made);
    made.catch(() => {
      if (this.known.get(dir) === made) this.known.delete(dir);
    });
    return made;
  }

  /** Runs `op`; if it fails because `dir` vanished, recreates it and runs `op` once more. */
  async retry<T>(dir: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (errnoCode(err) !== "ENOENT") throw err;
      this.known.delete(dir);
      await this.ensure(dir);
      return op();
    }
  }

  /**
   * One mkdir(2) when the parent exists (the usual case: a message's parts directory under a
   * known one), where `mkdir -p` would also stat a directory that already exists.
   */
  private async make(dir: string): Promise<void> {
    const parent = dirname(dir);
    try {
      await mkdirOne(dir);
    } catch (err) {
      if (errnoCode(err) !== "ENOENT" || parent === dir) throw err;
      await this.ensure(parent);
      await mkdirOne(dir);
    }
    if (parent !== dir) await this.syncer.sync(parent);
  }
}

/** mkdir(2) of one directory; one that exists is fine (a file in its place fails the open). */
function mkdirOne(dir: string): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    mkdirCb(dir, DIR_MODE, (err) => (err && err.code !== "EEXIST" ? reject(err) : resolve())),
  );
}

/** Creates `path` (which must not exist), writes `data`, fsyncs and closes it. */
export async function writeNewFile(path: string, data: Uint8Array): Promise<void> {
  const fd = await openNew(path);
  try {
    fdWriteAll(fd, data);
    await fdSync(fd);
  } finally {
    fdClose(fd);
  }
}

/** Writes `data` to a new temp file in `tmpDir` and fsyncs it; returns the temp path. */
async function writeTempDurably(data: Uint8Array | string, tmpDir: string): Promise<string> {
  const tmp = tempPath(tmpDir);
  try {
    await writeNewFile(tmp, typeof data === "string" ? Buffer.from(data) : data);
    return tmp;
  } catch (err) {
    unlinkQuietly(tmp);
    throw err;
  }
}

/**
 * Writes several files into one directory atomically and durably: every temp file is written and
 * fsynced concurrently (the file system can fold concurrent fsyncs into one journal commit),
 * then each is renamed into place, then the directory is fsynced once for all the new entries
 * (through `syncer` when given, shared with other writers into that directory).
 */
export async function writeFilesAtomic(
  dir: string,
  files: readonly { readonly name: string; readonly data: Uint8Array | string }[],
  tmpDir: string,
  dirs: DirCache = new DirCache(),
  syncer?: DirSyncer,
): Promise<void> {
  await dirs.ensure(tmpDir);
  await dirs.ensure(dir);
  const written = await Promise.allSettled(files.map((f) => writeTempDurably(f.data, tmpDir)));
  const temps = written.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  try {
    const failed = written.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    for (const [i, tmp] of temps.entries()) {
      await dirs.retry(dir, async () =>
        renamePath(tmp, join(dir, (files[i] as { name: string }).name)),
      );
    }
  } catch (err) {
    for (const tmp of temps) unlinkQuietly(tmp);
    throw err;
  }
  await (syncer ? syncer.sync(dir) : fsyncDir(dir));
}

/** Writes `data` to `finalPath` atomically and durably (temp + fsync + rename + dir fsync). */
export async function writeFileAtomic(
  finalPath: string,
  data: Uint8Array | string,
  tmpDir: string,
  dirs?: DirCache,
): Promise<void> {
  await writeFilesAtomic(dirname(finalPath), [{ name: basename(finalPath), data }], tmpDir, dirs);
}

/**
 * Removes temp files older than `olderThanMs` left behind by a crash. Younger files may belong to
 * a writer in another process that is still streaming, so they are left alone.
 */
export async function sweepTempDir(tmpDir: string, olderThanMs: number): Promise<number> {
  let names: string[];
  try {
    names = await readdir(tmpDir);
  } catch (err) {
    if (isMissing(err)) return 0;
    throw err;
  }
  const cutoff = Date.now() - olderThanMs;
  let removed = 0;
  for (const name of names) {
    const path = join(tmpDir, name);
    try {
      const info = await stat(path);
      if (info.isFile() && info.mtimeMs <= cutoff) {
        await unlink(path);
        removed += 1;
      }
    } catch (err) {
      // Another sweeper or the writer itself got there first.
      if (!isMissing(err)) throw err;
    }
  }
  return removed;
}
