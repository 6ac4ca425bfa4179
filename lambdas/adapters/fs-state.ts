/**
 * {@link StateStore} on a local directory: one append-only JSON-lines log per mailbox,
 * `<dir>/<mailbox>.jsonl`. Each record()/forget() appends one line and fdatasyncs it, so a
 * per-message checkpoint costs O(entries), never a rewrite of the whole state. load() replays the
 * log. A crash mid-append can leave a torn last line (no trailing newline); that write never
 * resolved, so it is dropped (with a warning) and truncated away before anything else is
 * appended. Any other unreadable line is skipped with a warning naming `file:line`, copied to
 * `<dir>/.corrupt/`, and the log rewritten without it (see state-codec.ts). When the log has
 * grown to more than twice as many lines as live entries (forgotten UIDLs pile up), load()
 * rewrites it atomically (temp + fsync + rename) with one line per live entry.
 */
import { open, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { describeError, ErrorCode, MailIngestError } from "../errors.ts";
import type { StateEntry, StateLoadOptions, StateStore } from "../ports.ts";
import {
  DirCache,
  FILE_MODE,
  fsyncDir,
  isMissing,
  TEMP_DIR_NAME,
  writeFileAtomic,
} from "./fs-atomic.ts";
import { KeyedSerializer } from "./mailbox-lock.ts";
import {
  applyOp,
  assertMailboxId,
  describeDamage,
  encodeOp,
  type StateOp,
  salvageOp,
} from "./state-codec.ts";

const NEWLINE = 0x0a;
/**
 * Where unreadable log lines are copied before the log is rewritten without them. A directory
 * never collides with a `<mailbox>.jsonl` log, even that of a mailbox named ".corrupt".
 */
const CORRUPT_DIR_NAME = ".corrupt";

export interface FsStateStoreOptions {
  /** Directory holding `<mailbox>.jsonl` logs. Created on first write. */
  readonly dir: string;
  /**
   * Logs shorter than this are never compacted, so small mailboxes never pay for a rewrite.
   * @default 1000
   */
  readonly compactMinLines?: number;
}

export class FsStateStore implements StateStore {
  /** Absolute state directory. */
  readonly dir: string;
  private readonly tmpDir: string;
  private readonly compactMinLines: number;
  private readonly serial = new KeyedSerializer();
  /** The state directory, created (and its entry made durable) once per process. */
  private readonly dirs = new DirCache();
  /** Mailboxes whose log tail this instance has checked (and repaired if torn). */
  private readonly tailChecked = new Set<string>();
  /** Mailboxes whose log's directory entry this instance has made durable. */
  private readonly entrySynced = new Set<string>();

  constructor(options: FsStateStoreOptions) {
    this.dir = resolve(options.dir);
    this.tmpDir = join(this.dir, TEMP_DIR_NAME);
    this.compactMinLines = options.compactMinLines ?? 1000;
  }

  /** The log file for a mailbox (for tests and operators). */
  logPath(mailbox: string): string {
    assertMailboxId(mailbox);
    return join(this.dir, `${mailbox}.jsonl`);
  }

  async load(mailbox: string, options: StateLoadOptions = {}): Promise<Map<string, StateEntry>> {
    const path = this.logPath(mailbox);
    const warn = options.onWarning ?? (() => undefined);
    return await this.serial.run(mailbox, async () => {
      const log = await this.readLog(path);
      const end = await this.repairTail(path, log);
      this.tailChecked.add(mailbox);
      if (end < log.length) {
        warn(
          `state ${path}: dropped a torn last line (a write cut short by a crash, never confirmed); any message it was recording will be fetched again under the same id, which consumers dedupe`,
        );
      }
      const state = new Map<string, StateEntry>();
      const damaged: Buffer[] = [];
      let lines = 0;
      let start = 0;
      while (start < end) {
        const stop = log.indexOf(NEWLINE, start);
        const bytes = log.subarray(start, stop);
        lines += 1;
        start = stop + 1;
        const text = bytes.toString("utf8");
        if (text.trim() === "") continue;
        const { op, damage } = salvageOp(text);
        if (op !== null) applyOp(state, op);
        if (damage !== null) {
          warn(describeDamage(`${path}:${lines}`, damage));
          damaged.push(bytes);
        }
      }
      if (damaged.length > 0) {
        await this.setAsideAndCompact(mailbox, path, state, damaged, warn);
      } else if (lines >= this.compactMinLines && lines > 2 * state.size) {
        await this.compact(path, state);
      }
      return state;
    });
  }

  /**
   * Keeps a copy of the unreadable lines (nothing we cannot read is destroyed), then rewrites the
   * log with the live entries only, so the next load is clean and the warnings are not repeated.
   * That drops nothing readable: the rewrite holds exactly the state this load returns. Called
   * only after the warnings went out. A failure here is reported but not fatal: the state is
   * loaded, appends still work, and the next load simply finds (and skips) the same lines.
   */
  private async setAsideAndCompact(
    mailbox: string,
    path: string,
    state: ReadonlyMap<string, StateEntry>,
    damaged: readonly Buffer[],
    warn: (message: string) => void,
  ): Promise<void> {
    const aside = join(this.dir, CORRUPT_DIR_NAME, `${mailbox}.${Date.now()}.jsonl`);
    const copy = Buffer.concat(damaged.flatMap((line) => [line, Buffer.from("\n")]));
    try {
      await writeFileAtomic(aside, copy, this.tmpDir);
      await this.compact(path, state);
    } catch (err) {
      warn(
        `state ${path}: could not set its ${damaged.length} unreadable line(s) aside and rewrite it (${describeError(err)}); they will be skipped again next time`,
      );
      return;
    }
    warn(
      `state ${path}: rewrote the log without its ${damaged.length} unreadable line(s); a copy of them is in ${aside}`,
    );
  }

  record(mailbox: string, entries: readonly StateEntry[]): Promise<void> {
    return this.append(mailbox, { op: "record", entries });
  }

  forget(mailbox: string, uidls: readonly string[]): Promise<void> {
    return this.append(mailbox, { op: "forget", uidls });
  }

  private async append(mailbox: string, op: StateOp): Promise<void> {
    const path = this.logPath(mailbox);
    const empty = op.op === "record" ? op.entries.length === 0 : op.uidls.length === 0;
    if (empty) return;
    const line = Buffer.from(`${encodeOp(op)}\n`, "utf8");
    await this.serial.run(mailbox, async () => {
      try {
        // Once per process, and the new directories' entries fsynced in their parents.
        await this.dirs.ensure(this.dir);
        if (!this.tailChecked.has(mailbox)) {
          await this.repairTail(path, await this.readIfTorn(path));
          this.tailChecked.add(mailbox);
        }
        const handle = await this.dirs.retry(this.dir, () => open(path, "a", FILE_MODE));
        try {
          // One write(2) per line: with O_APPEND the line lands whole at the end of the file.
          await handle.write(line);
          await handle.datasync();
        } finally {
          await handle.close();
        }
        if (!this.entrySynced.has(mailbox)) {
          await fsyncDir(this.dir);
          this.entrySynced.add(mailbox);
        }
      } catch (err) {
        if (err instanceof MailIngestError) throw err;
        throw new MailIngestError(ErrorCode.STORE_FAILED, `Failed to append to ${path}`, {
          cause: err,
        });
      }
    });
  }

  private async readLog(path: string): Promise<Buffer> {
    try {
      return await readFile(path);
    } catch (err) {
      if (isMissing(err)) return Buffer.alloc(0);
      throw new MailIngestError(ErrorCode.STORE_FAILED, `Failed to read ${path}`, { cause: err });
    }
  }

  /**
   * The whole log when its last byte is not a newline (so repairTail can find the cut), else an
   * empty buffer standing for "nothing to repair". Cheap on the happy path: one 1-byte read.
   */
  private async readIfTorn(path: string): Promise<Buffer> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, "r");
    } catch (err) {
      if (isMissing(err)) return Buffer.alloc(0);
      throw err;
    }
    try {
      const { size } = await handle.stat();
      if (size === 0) return Buffer.alloc(0);
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      if (last[0] === NEWLINE) return Buffer.alloc(0);
    } finally {
      await handle.close();
    }
    return readFile(path);
  }

  /**
   * Truncates a torn last line (bytes after the final newline) and returns the length of the
   * intact prefix of `log`.
   */
  private async repairTail(path: string, log: Buffer): Promise<number> {
    const end = log.lastIndexOf(NEWLINE) + 1;
    if (end === log.length) return end;
    const handle = await open(path, "r+");
    try {
      await handle.truncate(end);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return end;
  }

  private async compact(path: string, state: ReadonlyMap<string, StateEntry>): Promise<void> {
    const lines: string[] = [];
    for (const entry of state.values())
      lines.push(`${encodeOp({ op: "record", entries: [entry] })}\n`);
    try {
      await writeFileAtomic(path, lines.join(""), this.tmpDir);
    } catch (err) {
      throw new MailIngestError(ErrorCode.STORE_FAILED, `Failed to compact ${path}`, {
        cause: err,
      });
    }
  }
}
