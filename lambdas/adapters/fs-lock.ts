/**
 * {@link MailboxLock} as a lock file beside the fs state log: `<dir>/<mailbox>.lock`, holding
 * `{pid, host, startedAt, token, bootId}` as JSON. Like fetchmail's and mpop's lock files, it keeps
 * two overlapping runs (a cron job slower than its interval) off one maildrop, which the POP3
 * server need not do (Dovecot's `pop3_lock_session` defaults to no).
 *
 * Creation is exclusive and atomic: the record is written to a private temp file, then `link()`ed
 * to the lock name, which fails with EEXIST if a lock exists (the same guarantee as `O_EXCL`, but
 * a reader never sees a half-written lock, even over NFS).
 *
 * A lock is stale when its holder is on this host and is gone: its pid is not alive, the machine
 * rebooted since (boot id), or the pid is ours but this process does not hold it (a failed
 * release in a `--every` daemon). A lock from another host is never judged stale: its pid means
 * nothing here; the operator removes it (the warning names the host).
 *
 * Taking over a stale lock must not let two takers both win. Unlinking it and creating a new one
 * is racy on its own: taker A unlinks the stale lock and creates its own, then taker B, which read
 * the stale lock earlier, unlinks A's. So a taker first claims the right to remove that particular
 * lock: it creates `<lock>.<identity>.break` exclusively (identity = the stale lock's random token),
 * by this same function. Only the claim's holder unlinks the lock, and only after re-reading it
 * and finding the same identity; nobody else can change it meanwhile (its holder is dead, and any
 * other taker needs the claim). Then the claim is dropped and the taker competes in an ordinary
 * exclusive create. A late taker that gets the claim afterwards re-reads a different identity and
 * removes nothing. A taker that dies while holding a claim leaves a claim with a dead pid, which
 * is itself stale and broken the same way, one level deeper.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { link, mkdir, open, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import type { HeldLock, LockHolder, LockResult, MailboxLock } from "../ports.ts";
import { assertMailboxId } from "./state-codec.ts";

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** Nested takeovers (a taker that died mid-takeover, and so on) before reporting the lock held. */
const MAX_BREAK_DEPTH = 4;
/** Create attempts when the lock keeps changing under us (races with releases and takeovers). */
const CREATE_ATTEMPTS = 3;

interface LockRecord {
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
  /** Random per acquisition: tells this lock from a later one by the same pid. */
  readonly token: string;
  /** Linux boot id: a lock from before a reboot is stale whatever its pid. */
  readonly bootId?: string;
}

/** A lock file as read: its record (null when unreadable as one) and an identity for re-checks. */
interface Observed {
  readonly record: LockRecord | null;
  readonly identity: string;
}

/**
 * Lock files this process holds, path → token. Process-wide, not per instance: two
 * FsMailboxLock objects over one directory must exclude each other like two processes.
 */
const heldHere = new Map<string, string>();

export interface FsMailboxLockOptions {
  /** The fs state directory (`<storage dir>/state`). */
  readonly dir: string;
  /** @default os.hostname() */
  readonly host?: string;
}

export class FsMailboxLock implements MailboxLock {
  private readonly dir: string;
  private readonly host: string;
  private readonly bootId = readBootId();

  constructor(options: FsMailboxLockOptions) {
    this.dir = resolve(options.dir);
    this.host = options.host ?? hostname();
  }

  /** The lock file of a mailbox (for tests and diagnostics). */
  pathOf(mailbox: string): string {
    assertMailboxId(mailbox);
    return join(this.dir, `${mailbox}.lock`);
  }

  async acquire(mailbox: string): Promise<LockResult> {
    const path = this.pathOf(mailbox);
    await mkdir(this.dir, { recursive: true, mode: DIR_MODE });
    const taken = await this.take(path, 0);
    if (typeof taken !== "string") return { held: false, holder: taken };
    const token = taken;
    let released: Promise<void> | undefined;
    const lock: HeldLock = {
      held: true,
      // A live local holder's lock is never judged stale, so it cannot be lost while we run.
      lost: new AbortController().signal,
      release: () => {
        released ??= this.drop(path, token);
        return released;
      },
    };
    return lock;
  }

  /** Creates `path` as ours, taking over a stale lock; our token, or the live holder. */
  private async take(path: string, depth: number): Promise<string | LockHolder> {
    let seen: LockHolder = { pid: 0, host: this.host, startedAt: new Date(0).toISOString() };
    for (let attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
      const mine = this.record();
      if (await createExclusive(path, mine)) {
        heldHere.set(path, mine.token);
        return mine.token;
      }
      const current = await observe(path);
      if (current === null) continue;
      if (current.record) seen = holderOf(current.record);
      if (!this.isStale(path, current.record)) return seen;
      if (depth >= MAX_BREAK_DEPTH) return seen;
      const claimPath = `${path}.${current.identity}.break`;
      const claim = await this.take(claimPath, depth + 1);
      // Another taker is removing this stale lock right now; it will hold the lock next.
      if (typeof claim !== "string") return claim;
      try {
        const again = await observe(path);
        if (again?.identity === current.identity) await unlinkIfPresent(path);
      } finally {
        await this.drop(claimPath, claim);
      }
    }
    return seen;
  }

  private isStale(path: string, record: LockRecord | null): boolean {
    // Our own link() never leaves a partial file; an unreadable lock is debris (power loss).
    if (record === null) return true;
    if (record.host !== this.host) return false;
    if (record.bootId !== undefined && this.bootId !== undefined && record.bootId !== this.bootId) {
      return true;
    }
    if (record.pid === process.pid) return heldHere.get(path) !== record.token;
    return !isAlive(record.pid);
  }

  /** Unlinks `path` only if it still holds `token`: never another holder's lock. */
  private async drop(path: string, token: string): Promise<void> {
    if (heldHere.get(path) === token) heldHere.delete(path);
    const current = await observe(path);
    // Between this read and the unlink nobody else can replace our lock: a live local holder's
    // lock is never stale, so no taker removes it.
    if (current?.record?.token === token) await unlinkIfPresent(path);
  }

  private record(): LockRecord {
    return {
      pid: process.pid,
      host: this.host,
      startedAt: new Date().toISOString(),
      token: randomBytes(16).toString("hex"),
      ...(this.bootId === undefined ? {} : { bootId: this.bootId }),
    };
  }
}

/** Writes `record` to a private temp file, then links it into place; false if `path` exists. */
async function createExclusive(path: string, record: LockRecord): Promise<boolean> {
  const temp = `${path}.${record.token}.tmp`;
  await writeFile(temp, `${JSON.stringify(record)}\n`, { flag: "wx", mode: FILE_MODE });
  try {
    await link(temp, path);
    return true;
  } catch (err) {
    if (errnoCode(err) === "EEXIST") return false;
    throw err;
  } finally {
    await unlinkIfPresent(temp);
  }
}

/** Reads a lock file; null when it does not exist. */
async function observe(path: string): Promise<Observed | null> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return null;
    throw err;
  }
  try {
    const [bytes, stats] = await Promise.all([handle.readFile(), handle.stat()]);
    const record = parseRecord(bytes);
    // Tokens are random per lock; debris gets an identity from its bytes and inode instead.
    const identity = record
      ? `t-${record.token}`
      : `x-${createHash("sha256").update(bytes).update(String(stats.ino)).digest("hex").slice(0, 32)}`;
    return { record, identity };
  } finally {
    await handle.close();
  }
}

function parseRecord(bytes: Buffer): LockRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { pid, host, startedAt, token, bootId } = value as Record<string, unknown>;
  if (
    typeof pid !== "number" ||
    !Number.isInteger(pid) ||
    pid <= 0 ||
    typeof host !== "string" ||
    typeof startedAt !== "string" ||
    typeof token !== "string" ||
    !/^[0-9a-f]{32}$/.test(token)
  ) {
    return null;
  }
  return { pid, host, startedAt, token, ...(typeof bootId === "string" ? { bootId } : {}) };
}

function holderOf(record: LockRecord): LockHolder {
  return { pid: record.pid, host: record.host, startedAt: record.startedAt };
}

/** Signal 0 checks existence only; EPERM means the pid lives under another user. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) !== "ESRCH";
  }
}

function readBootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (errnoCode(err) !== "ENOENT") throw err;
  }
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
