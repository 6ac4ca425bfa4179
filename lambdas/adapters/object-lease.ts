/**
 * {@link MailboxLock} as an S3 lease beside the S3 state: `<prefix><mailbox>/lease.json` (under
 * `state/`, so a policy that limits the poller's DeleteObject to `state/*` still covers it),
 * holding `{owner, pid, host, startedAt, expiresAt}`. `owner` is random per acquisition.
 *
 * - **Acquire** is a PutObject with `If-None-Match: *`: S3 creates the object for exactly one of
 *   any number of racing writers and answers 412 to the rest.
 * - **Takeover** of an expired lease is a PutObject with `If-Match: <the ETag we read>`: of two
 *   takers that read the same expired lease, only the first write matches; the second gets 412,
 *   re-reads, and finds a live lease. S3 has honoured both conditions on PutObject since 2024.
 * - **Expiry** is a TTL renewed by the holder (every third of it) while the session runs, so a
 *   long CLI session keeps its lease, and a crashed one blocks the mailbox for at most one TTL.
 *   A Lambda passes a fixed expiry instead: its timeout plus a margin, never renewed, so a timed
 *   out invocation leaves the mailbox locked only a few seconds past the timeout. Expiry is judged
 *   by the reader's clock, so hosts need synchronised clocks (the margins absorb small skew).
 * - **Renewal** also uses `If-Match`, so a holder that lost its lease (it could not renew in time
 *   and another run took it over) learns so, aborts `lost`, and never overwrites the new holder.
 * - **Release** reads the lease and deletes it only if it is still ours (same owner and ETag) and
 *   not about to expire: only an expired lease can be taken over, so between that read and the
 *   delete nobody else can own it. A lease too close to expiry is left to lapse instead.
 * - **Shared** (`LockOptions.shared`): holders already exclusive among themselves (the Lambda
 *   pollers of one FIFO jobs queue) share one owner id. Acquire reads first: a live lease of that
 *   owner that outlasts this holder's `expiresAt` is reused as is (one GET, no PUT); one that
 *   would lapse sooner is renewed (`If-Match`) to `keepMs` from now; release keeps it. An idle
 *   poll then costs one GET instead of PUT + GET (+ a free DELETE), and a PUT only every `keepMs`.
 *   Anyone else (a CLI) sees a live lease and waits, as for any holder, until `keepMs` after the
 *   fleet's last renewal.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { HeldLock, LockHolder, LockOptions, LockResult, MailboxLock } from "../ports.ts";
import { errorName, httpStatus } from "../util/aws-errors.ts";
import { assertMailboxId } from "./state-codec.ts";

/** Default lease TTL, ms: how long a crashed CLI run can keep a mailbox locked. */
export const DEFAULT_LEASE_TTL_MS = 15 * 60 * 1000;
/** A lease this close to its expiry is left to lapse rather than deleted, ms (see release). */
const RELEASE_MARGIN_MS = 5_000;
/** Rounds of create / read / take over when the lease keeps changing under us. */
const ACQUIRE_ATTEMPTS = 4;

interface LeaseRecord {
  readonly owner: string;
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
  readonly expiresAt: string;
}

export interface S3MailboxLeaseOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix of the state objects, e.g. `mail/state/`; the lease is `<prefix><mailbox>/lease.json`. */
  readonly prefix: string;
  /** @default {@link DEFAULT_LEASE_TTL_MS} */
  readonly ttlMs?: number;
  /** @default os.hostname() */
  readonly host?: string;
  /** Epoch ms. @default Date.now */
  readonly now?: () => number;
}

export class S3MailboxLease implements MailboxLock {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly host: string;
  private readonly now: () => number;

  constructor(options: S3MailboxLeaseOptions) {
    this.client = options.client;
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    this.host = options.host ?? hostname();
    this.now = options.now ?? Date.now;
  }

  /** The lease's S3 key for a mailbox. */
  keyOf(mailbox: string): string {
    assertMailboxId(mailbox);
    return `${this.prefix}${mailbox}/lease.json`;
  }

  async acquire(mailbox: string, options: LockOptions = {}): Promise<LockResult> {
    const key = this.keyOf(mailbox);
    const ttlMs = options.ttlMs ?? this.ttlMs;
    const fixed = options.expiresAt;
    if (options.shared !== undefined) {
      return this.acquireShared(key, options.shared, fixed ?? this.now() + ttlMs);
    }
    const lease: Omit<LeaseRecord, "expiresAt"> = {
      owner: randomBytes(16).toString("hex"),
      pid: process.pid,
      host: this.host,
      startedAt: new Date(this.now()).toISOString(),
    };
    const body = (expiresAt: number): LeaseRecord => ({
      ...lease,
      expiresAt: new Date(expiresAt).toISOString(),
    });
    let seen: LockHolder | undefined;
    for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
      const expiresAt = fixed ?? this.now() + ttlMs;
      const created = await this.put(key, body(expiresAt), { IfNoneMatch: "*" });
      if (created !== null) return this.held(key, lease, created, expiresAt, ttlMs, fixed);
      const current = await this.read(key);
      if (current === null) continue;
      if (current.record !== null) {
        const { pid, host, startedAt, expiresAt: until } = current.record;
        seen = { pid, host, startedAt, expiresAt: until };
        if (Date.parse(until) > this.now()) return { held: false, holder: seen };
      }
      // Expired, or not a lease at all: replace exactly the version we read.
      const takeover = fixed ?? this.now() + ttlMs;
      const taken = await this.put(key, body(takeover), { IfMatch: current.etag });
      if (taken !== null) return this.held(key, lease, taken, takeover, ttlMs, fixed);
    }
    if (seen !== undefined) return { held: false, holder: seen };
    throw new MailIngestError(
      ErrorCode.STORE_FAILED,
      `S3 lease ${key} kept changing while it was being acquired`,
    );
  }

  /** See "Shared" in the module comment; `needed` is when this holder's run must be over. */
  private async acquireShared(
    key: string,
    shared: NonNullable<LockOptions["shared"]>,
    needed: number,
  ): Promise<LockResult> {
    const lease: Omit<LeaseRecord, "expiresAt"> = {
      owner: shared.owner,
      pid: process.pid,
      host: this.host,
      startedAt: new Date(this.now()).toISOString(),
    };
    const write = async (condition: { IfNoneMatch: "*" } | { IfMatch: string }) => {
      const until = Math.max(needed, this.now() + shared.keepMs);
      const record = { ...lease, expiresAt: new Date(until).toISOString() };
      const etag = await this.put(key, record, condition);
      return etag === null ? null : this.held(key, lease, etag, until, 0, until, true);
    };
    let seen: LockHolder | undefined;
    for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
      const current = await this.read(key);
      let taken: HeldLock | null;
      if (current === null) {
        taken = await write({ IfNoneMatch: "*" });
      } else if (current.record?.owner === shared.owner) {
        const until = Date.parse(current.record.expiresAt);
        // Ours, and it outlasts this run: nothing to write.
        if (until >= needed) return this.held(key, lease, current.etag, until, 0, until, true);
        taken = await write({ IfMatch: current.etag });
      } else {
        if (current.record !== null) {
          const { pid, host, startedAt, expiresAt: until } = current.record;
          seen = { pid, host, startedAt, expiresAt: until };
          if (Date.parse(until) > this.now()) return { held: false, holder: seen };
        }
        taken = await write({ IfMatch: current.etag });
      }
      if (taken !== null) return taken;
    }
    if (seen !== undefined) return { held: false, holder: seen };
    throw new MailIngestError(
      ErrorCode.STORE_FAILED,
      `S3 lease ${key} kept changing while it was being acquired`,
    );
  }

  /** `keep`: a shared lease, left in place on release for the owner's next holder. */
  private held(
    key: string,
    lease: Omit<LeaseRecord, "expiresAt">,
    etag: string,
    expiresAt: number,
    ttlMs: number,
    fixed: number | undefined,
    keep = false,
  ): HeldLock {
    const lost = new AbortController();
    let current = { etag, expiresAt };
    let renewing: Promise<void> = Promise.resolve();
    const loseLease = (why: string) => {
      if (!lost.signal.aborted) {
        lost.abort(new MailIngestError(ErrorCode.STORE_FAILED, `S3 lease ${key} lost: ${why}`));
      }
      clearTimeout(timer);
    };
    const renew = async () => {
      const until = this.now() + ttlMs;
      try {
        const etag = await this.put(
          key,
          { ...lease, expiresAt: new Date(until).toISOString() },
          { IfMatch: current.etag },
        );
        if (etag === null) loseLease("another run took it over");
        else current = { etag, expiresAt: until };
      } catch {
        // A failed renewal is retried on the next beat; the lease is ours until it expires.
        if (this.now() >= current.expiresAt) loseLease("it expired before it could be renewed");
      }
    };
    let timer: NodeJS.Timeout | undefined;
    const schedule = () => {
      // A fixed expiry is never renewed: past it, the lease may already belong to someone else.
      const delay = fixed === undefined ? Math.max(1, Math.floor(ttlMs / 3)) : fixed - this.now();
      timer = setTimeout(
        () => {
          if (fixed !== undefined) {
            loseLease("its fixed expiry passed");
            return;
          }
          renewing = renew().then(() => {
            if (!lost.signal.aborted && timer !== undefined) schedule();
          });
        },
        Math.max(0, delay),
      );
      // A lease never keeps the process alive on its own.
      timer.unref();
    };
    schedule();
    let released: Promise<void> | undefined;
    return {
      held: true,
      lost: lost.signal,
      release: () => {
        released ??= (async () => {
          clearTimeout(timer);
          timer = undefined;
          await renewing;
          if (lost.signal.aborted || keep) return;
          const now = await this.read(key);
          if (
            now?.etag === current.etag &&
            now.record?.owner === lease.owner &&
            this.now() < current.expiresAt - RELEASE_MARGIN_MS
          ) {
            await this.delete(key);
          }
        })();
        return released;
      },
    };
  }

  /** A conditional PutObject: the new ETag, or null when the condition failed. */
  private async put(
    key: string,
    record: LeaseRecord,
    condition: { IfNoneMatch: "*" } | { IfMatch: string },
  ): Promise<string | null> {
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: JSON.stringify(record),
          ContentType: "application/json",
          ...condition,
        }),
      );
      if (out.ETag === undefined) {
        throw new MailIngestError(ErrorCode.STORE_FAILED, `PutObject ${key} returned no ETag`);
      }
      return out.ETag;
    } catch (err) {
      // 412: the condition failed. 409 ConditionalRequestConflict: a racing conditional write
      // to the same key is in progress. 404 (If-Match on a key deleted meanwhile). All mean
      // "the lease changed": read it again.
      const status = httpStatus(err);
      if (errorName(err) === "NoSuchBucket") throw wrap(err, `put ${key}`);
      if (status === 412 || status === 409 || status === 404) return null;
      throw wrap(err, `put ${key}`);
    }
  }

  /** The lease and its ETag; record null when the object is not a lease; null when absent. */
  private async read(key: string): Promise<{ record: LeaseRecord | null; etag: string } | null> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const text = (await out.Body?.transformToString("utf8")) ?? "";
      if (out.ETag === undefined) {
        throw new MailIngestError(ErrorCode.STORE_FAILED, `GetObject ${key} returned no ETag`);
      }
      return { record: parseLease(text), etag: out.ETag };
    } catch (err) {
      if (
        errorName(err) !== "NoSuchBucket" &&
        (httpStatus(err) === 404 || errorName(err) === "NoSuchKey")
      ) {
        return null;
      }
      throw wrap(err, `get ${key}`);
    }
  }

  private async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      throw wrap(err, `delete ${key}`);
    }
  }
}

function parseLease(text: string): LeaseRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { owner, pid, host, startedAt, expiresAt } = value as Record<string, unknown>;
  if (
    typeof owner !== "string" ||
    typeof pid !== "number" ||
    typeof host !== "string" ||
    typeof startedAt !== "string" ||
    typeof expiresAt !== "string" ||
    Number.isNaN(Date.parse(expiresAt))
  ) {
    return null;
  }
  return { owner, pid, host, startedAt, expiresAt };
}

function wrap(err: unknown, what: string): MailIngestError {
  if (err instanceof MailIngestError) return err;
  return new MailIngestError(ErrorCode.STORE_FAILED, `S3 lease failed to ${what}`, { cause: err });
}
