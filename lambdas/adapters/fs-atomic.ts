/**
 * Crash-safe file primitives shared by the fs adapters. The recipe is the classic one: write a
 * uniquely named temp file in the same file system, fsync it, rename (or link) it into place, then
 * fsync the parent directory so the new directory entry itself survives a power loss.
 */
import { randomUUID } from "node:crypto";
import { mkdir, open, readdir, rename, stat, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";

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

/** Writes `data` to `finalPath` atomically and durably (temp + fsync + rename + dir fsync). */
export async function writeFileAtomic(
  finalPath: string,
  data: Uint8Array | string,
  tmpDir: string,
): Promise<void> {
  await mkdir(tmpDir, { recursive: true, mode: DIR_MODE });
  const tmp = tempPath(tmpDir);
  try {
    const handle = await open(tmp, "wx", FILE_MODE);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await mkdir(dirname(finalPath), { recursive: true, mode: DIR_MODE });
    await rename(tmp, finalPath);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(finalPath));
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
