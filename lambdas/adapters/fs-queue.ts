/**
 * {@link MessageQueue} on a local directory: one file per entry, `<dir>/<id>.json`, holding the
 * entry's JSON body verbatim. Each file is written atomically (temp + fsync + rename), and sending
 * the same id again replaces the file, which is the dedupe consumers of SQS FIFO get. The body
 * limit matches SQS so a message that fits here fits there too.
 *
 * An entry whose body is already stored durably on this file system (`sameAs`: the metadata
 * object) becomes a hard link to that file instead of a second copy: one link(2) instead of
 * open, write, fsync, close and rename. The content is the same bytes; the directory fsync that
 * makes the new name durable is shared by the batch. A later rewrite of the metadata object
 * (a re-fetch after a crash) renames a new file over it, which never changes the linked inode. A
 * body that must differ from the metadata (the pointer form, for a message over the size limit)
 * is written as a file of its own.
 */
import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { MessageQueue, QueueEntry } from "../ports.ts";
import {
  DirCache,
  errnoCode,
  fsyncDir,
  isMissing,
  linkPath,
  renamePath,
  TEMP_DIR_NAME,
  tempPath,
  unlinkQuietly,
  writeFilesAtomic,
} from "./fs-atomic.ts";

/** SQS's message size limit (1 MiB), mirrored so both adapters accept the same messages. */
export const FS_QUEUE_MAX_BODY_BYTES = 1_048_576;

const ENTRY_ID = /^[A-Za-z0-9._-]+$/;
const SUFFIX = ".json";

export interface FsQueueOptions {
  /** Directory holding one `<id>.json` file per entry. Created on first send. */
  readonly dir: string;
}

export class FsQueue implements MessageQueue {
  readonly maxBodyBytes = FS_QUEUE_MAX_BODY_BYTES;
  /** Absolute queue directory. */
  readonly dir: string;
  private readonly tmpDir: string;
  private readonly dirs = new DirCache();

  constructor(options: FsQueueOptions) {
    this.dir = resolve(options.dir);
    this.tmpDir = join(this.dir, TEMP_DIR_NAME);
  }

  /** Validates every entry before writing any, so a bad batch writes nothing. */
  async send(entries: readonly QueueEntry[]): Promise<void> {
    for (const entry of entries) {
      if (!ENTRY_ID.test(entry.id)) {
        throw new MailIngestError(
          ErrorCode.QUEUE_FAILED,
          `Invalid queue entry id ${JSON.stringify(entry.id)}`,
        );
      }
      if (Buffer.byteLength(entry.body, "utf8") > this.maxBodyBytes) {
        throw new MailIngestError(
          ErrorCode.QUEUE_FAILED,
          `Queue entry ${entry.id} exceeds ${this.maxBodyBytes} bytes`,
        );
      }
    }
    try {
      await this.dirs.ensure(this.dir);
      const linked = await Promise.all(entries.map((entry) => this.linkEntry(entry)));
      const files = entries
        .filter((_, i) => !linked[i])
        .map((entry) => ({ name: `${entry.id}${SUFFIX}`, data: entry.body }));
      if (files.length > 0) await writeFilesAtomic(this.dir, files, this.tmpDir, this.dirs);
      else await fsyncDir(this.dir);
    } catch (err) {
      throw new MailIngestError(
        ErrorCode.QUEUE_FAILED,
        `Failed to enqueue ${entries.map((e) => e.id).join(", ")}`,
        { cause: err },
      );
    }
  }

  /**
   * Hard-links the entry's `sameAs` file into place; false when it must be written instead (no
   * local file, another file system, links not supported). Not durable until the directory is
   * fsynced.
   */
  private async linkEntry(entry: QueueEntry): Promise<boolean> {
    if (!entry.sameAs?.startsWith("file:")) return false;
    const source = fileURLToPath(entry.sameAs);
    const target = join(this.dir, `${entry.id}${SUFFIX}`);
    try {
      linkPath(source, target);
      return true;
    } catch (err) {
      if (errnoCode(err) !== "EEXIST") return false;
    }
    // Sent again (a re-fetch after a crash): replace the entry atomically, as a write would.
    await this.dirs.ensure(this.tmpDir);
    const tmp = tempPath(this.tmpDir);
    try {
      linkPath(source, tmp);
      renamePath(tmp, target);
      // rename(2) between two links to one inode does nothing and leaves the source name.
      unlinkQuietly(tmp);
      return true;
    } catch {
      unlinkQuietly(tmp);
      return false;
    }
  }

  /** Every entry currently in the queue directory, sorted by id (for tests and the CLI). */
  async *entries(): AsyncIterable<QueueEntry> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (isMissing(err)) return;
      throw new MailIngestError(ErrorCode.QUEUE_FAILED, "Failed to read queue directory", {
        cause: err,
      });
    }
    for (const name of names.sort()) {
      if (!name.endsWith(SUFFIX)) continue;
      const id = name.slice(0, -SUFFIX.length);
      if (!ENTRY_ID.test(id)) continue;
      try {
        yield { id, body: await readFile(join(this.dir, name), "utf8") };
      } catch (err) {
        // Removed by a consumer between readdir and read.
        if (!isMissing(err)) throw err;
      }
    }
  }
}
