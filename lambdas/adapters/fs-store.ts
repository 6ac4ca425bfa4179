/**
 * {@link ObjectStore} on a local directory. Writes are atomic and durable: bytes stream into a
 * temp file under `<dir>/.tmp/`, which is fsynced and then renamed (or, for `ifAbsent`,
 * hard-linked) into place before the parent directory is fsynced. A crash mid-write leaves only a
 * temp file, which get/head/list never see and {@link FsObjectStore.sweepTemp} removes.
 */
import { constants } from "node:fs";
import { open, opendir, stat, unlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { pathToFileURL } from "node:url";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { ObjectStore, PutOptions, PutResult } from "../ports.ts";
import {
  DirCache,
  DirSyncer,
  errnoCode,
  fdClose,
  fdSync,
  fdWriteAll,
  isMissing,
  linkPath,
  openNew,
  renamePath,
  sweepTempDir,
  TEMP_DIR_NAME,
  tempPath,
  unlinkPath,
  unlinkQuietly,
} from "./fs-atomic.ts";
import { keySegments } from "./object-key.ts";

export interface FsObjectStoreOptions {
  /** Root directory; keys are paths relative to it. Created on first write. */
  readonly dir: string;
  /**
   * Temp files older than this are crash leftovers and are swept on the first put. Younger ones
   * may belong to a live writer in another process.
   * @default 3_600_000 (1 hour)
   */
  readonly tempMaxAgeMs?: number;
}

export class FsObjectStore implements ObjectStore {
  /** Absolute root directory. */
  readonly dir: string;
  readonly bucket: undefined = undefined;
  /** Where in-flight writes live: same file system as the objects, so rename/link is atomic. */
  private readonly tmpDir: string;
  /** Directory fsyncs, shared by the puts (and new directories) that land in one at once. */
  private readonly syncer = new DirSyncer();
  /** Directories already created (and their entries made durable) by this instance. */
  private readonly dirs = new DirCache(4096, this.syncer);
  private readonly tempMaxAgeMs: number;
  /** The one-time crash-leftover sweep, started by the first put. */
  private sweep: Promise<unknown> | undefined;

  constructor(options: FsObjectStoreOptions) {
    this.dir = resolve(options.dir);
    this.tmpDir = join(this.dir, TEMP_DIR_NAME);
    this.tempMaxAgeMs = options.tempMaxAgeMs ?? 3_600_000;
  }

  /** Removes crash-leftover temp files; returns how many. Runs automatically on the first put. */
  sweepTemp(olderThanMs: number = this.tempMaxAgeMs): Promise<number> {
    return sweepTempDir(this.tmpDir, olderThanMs);
  }

  /**
   * Streams `body` to disk. The body is pulled one chunk at a time and each chunk is written
   * before the next is requested, so a slow disk holds back the source (backpressure) and memory
   * stays at one chunk plus the source's own buffer. On failure the temp file is removed and a
   * Readable body is destroyed.
   */
  async put(key: string, body: Readable | Uint8Array, options?: PutOptions): Promise<PutResult> {
    let finalPath: string;
    try {
      finalPath = this.pathOf(key);
      this.sweep ??= this.sweepTemp().catch(() => undefined);
      await this.sweep;
      await this.dirs.ensure(this.tmpDir);
    } catch (err) {
      if (!(body instanceof Uint8Array)) body.destroy();
      throw wrap(err, `prepare write of ${key}`);
    }
    const tmp = tempPath(this.tmpDir);
    try {
      // Safe to retry: ENOENT can only come from the open(), before any byte of body is read.
      const size = await this.dirs.retry(this.tmpDir, () => writeDurably(tmp, body));
      const parent = dirname(finalPath);
      await this.dirs.ensure(parent);
      let created = true;
      if (options?.ifAbsent) {
        // link(2) never replaces an existing name, so of two racing writers exactly one wins.
        try {
          await this.dirs.retry(parent, async () => linkPath(tmp, finalPath));
        } catch (err) {
          if (errnoCode(err) !== "EEXIST") throw err;
          created = false;
        }
        unlinkPath(tmp);
      } else {
        await this.dirs.retry(parent, async () => renamePath(tmp, finalPath));
      }
      if (created) await this.syncer.sync(parent);
      return { size: created ? size : 0, created };
    } catch (err) {
      unlinkQuietly(tmp);
      if (!(body instanceof Uint8Array)) body.destroy();
      throw wrap(err, `write ${key}`);
    }
  }

  async get(key: string): Promise<Readable | null> {
    const path = this.pathOf(key);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, constants.O_RDONLY);
    } catch (err) {
      if (isMissing(err)) return null;
      throw wrap(err, `open ${key}`);
    }
    try {
      // A directory is a key prefix, not an object.
      if (!(await handle.stat()).isFile()) {
        await handle.close();
        return null;
      }
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw wrap(err, `stat ${key}`);
    }
    return handle.createReadStream();
  }

  async head(key: string): Promise<{ readonly size: number } | null> {
    const path = this.pathOf(key);
    try {
      const info = await stat(path);
      return info.isFile() ? { size: info.size } : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw wrap(err, `stat ${key}`);
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (isMissing(err)) return;
      throw wrap(err, `delete ${key}`);
    }
  }

  /**
   * Walks only the deepest directory the prefix fully names (`raw/2024/0` walks `raw/2024/`), and
   * never the temp directory.
   */
  async *list(prefix: string): AsyncIterable<string> {
    const slash = prefix.lastIndexOf("/");
    const base = slash < 0 ? "" : prefix.slice(0, slash);
    if (base !== "") keySegments(base);
    yield* this.walk(base, prefix);
  }

  uri(key: string): string {
    return pathToFileURL(this.pathOf(key)).href;
  }

  private async *walk(relDir: string, prefix: string): AsyncIterable<string> {
    let dir: Awaited<ReturnType<typeof opendir>>;
    try {
      dir = await opendir(relDir === "" ? this.dir : join(this.dir, relDir));
    } catch (err) {
      if (isMissing(err)) return;
      throw wrap(err, `list ${prefix}`);
    }
    for await (const entry of dir) {
      if (relDir === "" && entry.name === TEMP_DIR_NAME) continue;
      const rel = relDir === "" ? entry.name : `${relDir}/${entry.name}`;
      if (entry.isDirectory()) {
        // Only descend where a key under this directory could still match the prefix.
        if (`${rel}/`.startsWith(prefix) || prefix.startsWith(`${rel}/`)) {
          yield* this.walk(rel, prefix);
        }
      } else if (entry.isFile() && rel.startsWith(prefix)) {
        yield rel;
      }
    }
  }

  private pathOf(key: string): string {
    return join(this.dir, ...keySegments(key));
  }
}

/**
 * Bytes of a streamed body gathered before one write(2). A TLS socket delivers ~16 KiB chunks;
 * writing each on its own cost a syscall and a thread-pool round trip apiece.
 */
const WRITE_BATCH_BYTES = 64 * 1024;

/** Writes the whole body to a new file at `path`, fsyncs it, and returns the byte count. */
async function writeDurably(path: string, body: Readable | Uint8Array): Promise<number> {
  const fd = await openNew(path);
  try {
    let size = 0;
    if (body instanceof Uint8Array) {
      fdWriteAll(fd, body);
      size = body.byteLength;
    } else {
      let batch: Uint8Array[] = [];
      let batchBytes = 0;
      const flush = () => {
        const data = batch.length === 1 ? (batch[0] as Uint8Array) : Buffer.concat(batch);
        batch = [];
        batchBytes = 0;
        fdWriteAll(fd, data);
      };
      for await (const chunk of body) {
        if (!(chunk instanceof Uint8Array)) {
          throw new MailIngestError(
            ErrorCode.STORE_FAILED,
            "Object bodies must be byte streams (a string chunk means someone decoded the bytes)",
          );
        }
        batch.push(chunk);
        batchBytes += chunk.byteLength;
        size += chunk.byteLength;
        if (batchBytes >= WRITE_BATCH_BYTES) flush();
      }
      if (batchBytes > 0) flush();
    }
    await fdSync(fd);
    return size;
  } finally {
    fdClose(fd);
  }
}

/** Keeps codes already assigned upstream (e.g. a POP3 SIZE_MISMATCH from the body stream). */
function wrap(err: unknown, what: string): MailIngestError {
  if (err instanceof MailIngestError) return err;
  return new MailIngestError(ErrorCode.STORE_FAILED, `Failed to ${what}`, { cause: err });
}
