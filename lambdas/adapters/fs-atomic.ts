/**
 * Crash-safe file primitives shared by the fs adapters. The recipe is the classic one: write a
 * uniquely named temp file in the same file system, fsync it, rename (or link) it into place, then
 * fsync the parent directory so the new directory entry itself survives a power loss.
 */
import { randomUUID } from "node:crypto";
import { mkdir, open, readdir, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Name of the per-tree directory that holds in-flight temp files; never a valid key or id. */
export const TEMP_DIR_NAME = ".tmp";

/** Owner-only: the files hold mail. The umask can only narrow these further. */
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

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
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Remembers directories this process has already created, so the hot path (one put per part,
 * thousands per run) does not pay a mkdir per write. A directory removed behind our back is
 * recreated on ENOENT by {@link DirCache.retry}.
 */
export class DirCache {
  private readonly known = new Set<string>();

  /**
   * @param limit directories remembered before the cache starts over. Every message has its own
   *   parts directory, so an unbounded cache would grow with the mailbox; forgetting costs only
   *   one extra mkdir per directory.
   */
  constructor(private readonly limit = 4096) {}

  async ensure(dir: string): Promise<void> {
    if (this.known.has(dir)) return;
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
    if (this.known.size >= this.limit) this.known.clear();
    this.known.add(dir);
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
}

/** Writes `data` to a new temp file in `tmpDir` and fsyncs it; returns the temp path. */
async function writeTempDurably(data: Uint8Array | string, tmpDir: string): Promise<string> {
  const tmp = tempPath(tmpDir);
  try {
    const handle = await open(tmp, "wx", FILE_MODE);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return tmp;
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Writes several files into one directory atomically and durably: every temp file is written and
 * fsynced concurrently (the file system can fold concurrent fsyncs into one journal commit),
 * then each is renamed into place, then the directory is fsynced once for all the new entries.
 */
export async function writeFilesAtomic(
  dir: string,
  files: readonly { readonly name: string; readonly data: Uint8Array | string }[],
  tmpDir: string,
  dirs: DirCache = new DirCache(),
): Promise<void> {
  await dirs.ensure(tmpDir);
  await dirs.ensure(dir);
  const written = await Promise.allSettled(files.map((f) => writeTempDurably(f.data, tmpDir)));
  const temps = written.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  try {
    const failed = written.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    for (const [i, tmp] of temps.entries()) {
      await dirs.retry(dir, () => rename(tmp, join(dir, (files[i] as { name: string }).name)));
    }
  } catch (err) {
    await Promise.all(temps.map((tmp) => unlink(tmp).catch(() => undefined)));
    throw err;
  }
  await fsyncDir(dir);
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
