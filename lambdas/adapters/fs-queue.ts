/**
 * {@link MessageQueue} on a local directory: one file per entry, `<dir>/<id>.json`, holding the
 * entry's JSON body verbatim. Each file is written atomically (temp + fsync + rename), and sending
 * the same id again replaces the file with identical content, which is the dedupe consumers of
 * SQS FIFO get. The body limit matches SQS so a message that fits here fits there too.
 */
import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { MessageQueue, QueueEntry } from "../ports.ts";
import { DirCache, isMissing, TEMP_DIR_NAME, writeFilesAtomic } from "./fs-atomic.ts";

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
    const files = entries.map((entry) => ({ name: `${entry.id}${SUFFIX}`, data: entry.body }));
    try {
      await writeFilesAtomic(this.dir, files, this.tmpDir, this.dirs);
    } catch (err) {
      throw new MailIngestError(
        ErrorCode.QUEUE_FAILED,
        `Failed to enqueue ${entries.map((e) => e.id).join(", ")}`,
        { cause: err },
      );
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
