/**
 * One mailbox session, in commit order:
 *
 *   connect → login → UIDL + LIST → plan
 *   for each new message: RETR ─┬─ raw store (create-only)
 *                               └─ MIME parse → parts store
 *                             → meta → queue (batched) → state checkpoint → DELE
 *   → DELE messages due under the delete policy → QUIT (commits DELEs, RFC 1939 §6)
 *
 * Crash safety comes from the order alone: keys are deterministic, so a crash anywhere before the
 * state checkpoint only means the message is fetched again and rewritten to the same keys (the
 * raw object is created once); the queue may then carry the same `id` twice, which consumers
 * dedupe. DELE is only ever sent for a message whose state checkpoint is durable. Once QUIT has
 * committed the DELEs, their UIDLs are forgotten, so state only holds messages expected to still be
 * on the server (which is what UIDL-reset detection compares the listing against).
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { PassThrough, type Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { MailboxConfig } from "../config.ts";
import { describeError, ErrorCode, isMailIngestError, MailIngestError } from "../errors.ts";
import { parseMessage } from "../mime/parse.ts";
import { buildQueueMessage, queueBodies } from "../mime/schema.ts";
import type { Pop3Client } from "../pop3/index.ts";
import type { HeldLock, LockHolder, QueueEntry, StateEntry } from "../ports.ts";
import { openMailbox } from "./connect.ts";
import { messageId, metaKey, partsPrefix, rawKey } from "./keys.ts";
import { joinListing, type ListedMessage, planSession, type SessionPlan } from "./plan.ts";
import type {
  MailboxReport,
  SessionDeps,
  SessionLogger,
  SessionOptions,
  SessionProgress,
} from "./types.ts";

/** SQS SendMessageBatch takes at most 10 entries; the fs queue gains nothing from more. */
const QUEUE_BATCH = 10;
/** RETRs sent ahead of the message being read: at most this many, and this many bytes (LIST). */
const PREFETCH_MESSAGES = 8;
const PREFETCH_BYTES = 4 * 1024 * 1024;
/** Bytes a body may exceed maxMessageBytes by (line-ending differences) before it is cut off. */
const RUNAWAY_SLACK_BYTES = 64 * 1024;
/** Messages whose storage commit may still be running while the next one streams. */
const COMMIT_WINDOW = 16;
/** Byte-progress callbacks are throttled to one per this many bytes. */
const PROGRESS_EVERY_BYTES = 1 << 20;
/**
 * Time after the deadline that QUIT, and the DELE answers queued before it, may take, ms. Past it
 * the connection is dropped: no DELE of this session takes effect, and the next run sends them
 * again (their messages are checkpointed), so nothing is lost, only deleted later.
 */
const QUIT_GRACE_MS = 10_000;
/** Bytes received before the measured throughput is trusted to predict a download's time. */
const MIN_ESTIMATE_BYTES = 256 * 1024;
/** Warnings kept in a report; the rest are counted, so a report's size never grows with a mailbox. */
const MAX_WARNINGS = 50;
/** Ids of deadline-stalled messages kept in a report (they ride along in continuation jobs). */
const MAX_STALLED = 20;

const silentLogger: SessionLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** A message whose objects are stored and whose queue entry is waiting for the next flush. */
interface Pending {
  readonly message: ListedMessage;
  readonly entry: QueueEntry;
  readonly state: StateEntry;
}

/**
 * Runs one session against one mailbox. Never throws: failures are reported in the returned
 * report (`error`, `errorCode`) so one bad mailbox never stops the others.
 */
export async function runMailbox(
  mailbox: MailboxConfig,
  deps: SessionDeps,
  options: SessionOptions,
): Promise<MailboxReport> {
  return new MailboxSession(mailbox, deps, options).run();
}

/** A report with every count at zero, for a session that has not done anything yet. */
export function emptyReport(id: string): MailboxReport {
  return {
    id,
    listed: 0,
    new: 0,
    ingested: 0,
    skipped: 0,
    failed: 0,
    deleted: 0,
    bytes: 0,
    durationMs: 0,
    remaining: 0,
    warnings: [],
  };
}

class MailboxSession {
  private readonly log: SessionLogger;
  private readonly now: () => Date;
  private readonly started: number;
  private readonly report: MailboxReport;
  private client: Pop3Client | undefined;
  /** Stored and awaiting the queue flush; never DELE'd before it lands in state. */
  private pending: Pending[] = [];
  /** sha256 → entry, only during a suspected UIDL reset: identity is the hash of the bytes. */
  private knownSha: Map<string, StateEntry> | undefined;
  /** DELEs sent and not yet answered; QUIT waits for them. Settled ones leave the set. */
  private readonly deletes = new Set<Promise<void>>();
  /** State keys whose DELE got +OK; forgotten once QUIT commits them. */
  private readonly deletedKeys: string[] = [];
  /** The tail of the flush chain. */
  private flushing: Promise<void> = Promise.resolve();
  /** Bodies being read right now; destroyed if the deadline passes mid-download. */
  private readonly streaming = new Set<Readable>();
  /** Fires at the deadline; cleared when the session ends. */
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Totals of the messages this run means to fetch, for progress. */
  private messagesTotal = 0;
  private bytesTotal = 0;
  private bytesDone = 0;
  private lastProgressBytes = 0;
  /** When the first RETR was sent (epoch ms), for the throughput estimate. */
  private ingestStarted = 0;
  /** Warnings not kept in the report once MAX_WARNINGS was reached. */
  private warningsDropped = 0;
  /** Downloads started but abandoned at the deadline; still on the server, left for later. */
  private abandoned = 0;

  constructor(
    private readonly mailbox: MailboxConfig,
    private readonly deps: SessionDeps,
    /** Not readonly: run() adds the lock's `lost` signal to `signal`. */
    private options: SessionOptions,
  ) {
    this.log = deps.log ?? silentLogger;
    this.now = deps.now ?? (() => new Date());
    this.started = Date.now();
    this.report = emptyReport(mailbox.id);
  }

  async run(): Promise<MailboxReport> {
    let lock: HeldLock | undefined;
    try {
      const acquired = await this.deps.lock?.acquire(this.mailbox.id, {
        expiresAt: this.options.lockExpiresAt,
      });
      if (acquired?.held === false) {
        this.skipLocked(acquired.holder);
      } else {
        lock = acquired;
        if (lock) this.stopWhenLost(lock);
        await this.session();
      }
    } catch (err) {
      this.report.error = `mailbox ${this.mailbox.id}: ${describeError(err)}`;
      this.report.errorCode = isMailIngestError(err) ? err.code : undefined;
      this.log.error("mailbox session failed", {
        mailbox: this.mailbox.id,
        code: this.report.errorCode,
        error: describeError(err),
      });
      await this.endAfterFailure(err);
    } finally {
      clearTimeout(this.deadlineTimer);
      // After QUIT or close: the next holder must never overlap our POP3 session.
      await lock?.release().catch((err: unknown) => {
        this.warn(`could not release the mailbox lock: ${describeError(err)}`);
      });
    }
    if (this.warningsDropped > 0) {
      this.report.warnings.push(
        `mailbox ${this.mailbox.id}: ${this.warningsDropped} more warning(s) not shown (see the log)`,
      );
    }
    this.report.durationMs = Date.now() - this.started;
    this.progress("done");
    return this.report;
  }

  /** Another run holds the mailbox: a warning, not an error, so the skip alone fails nothing. */
  private skipLocked(holder: LockHolder): void {
    const where = holder.host === hostname() ? "" : ` on ${holder.host}`;
    const text = `mailbox ${this.mailbox.id} is being polled by another process (pid ${holder.pid}${where})`;
    this.report.lockedBy = holder;
    this.report.warnings.push(text);
    this.log.warn(text, { holderPid: holder.pid, holderHost: holder.host });
  }

  /** A lost lock (an S3 lease that lapsed) stops new RETRs like a shutdown: QUIT, then return. */
  private stopWhenLost(lock: HeldLock): void {
    const { signal } = this.options;
    this.options = {
      ...this.options,
      signal: signal ? AbortSignal.any([signal, lock.lost]) : lock.lost,
    };
    lock.lost.addEventListener("abort", () => {
      if (!lock.lost.reason) return;
      this.warn(`${describeError(lock.lost.reason)}; stopping before the next message`);
    });
  }

  private async session(): Promise<void> {
    const { mailbox, deps } = this;
    this.progress("connecting");
    const client = await openMailbox(mailbox, this.options.credentials, deps.connect);
    this.client = client;

    this.progress("listing");
    // Both commands are queued at once; the client pipelines them when the server allows.
    const [uidls, sizes, state] = await Promise.all([
      client.uidl(),
      client.list(),
      deps.state.load(mailbox.id, { onWarning: (m) => this.warn(m) }),
    ]);
    const listed = joinListing(uidls, sizes);
    const plan = planSession(listed, state, mailbox.delete, mailbox, this.now());
    this.report.listed = listed.length;
    this.report.new = plan.newCount;
    this.report.listingComplete = true;
    this.reportPlanWarnings(plan);

    if (plan.uidlReset) this.knownSha = new Map([...state.values()].map((e) => [e.sha256, e]));
    const fetch = plan.fetch;
    this.messagesTotal = fetch.length;
    this.bytesTotal = fetch.reduce((sum, m) => sum + m.size, 0);

    this.progress("ingesting");
    const started = await this.ingestAll(fetch);
    this.report.remaining = plan.deferred + (fetch.length - started) + this.abandoned;

    // Forget UIDLs only after a complete listing: a vanished UIDL is gone from the server.
    if (plan.vanished.length > 0) await deps.state.forget(mailbox.id, plan.vanished);

    if (plan.deleteKnown.length > 0) {
      this.progress("deleting");
      for (const m of plan.deleteKnown) this.dele(m);
    }
    await this.quit();
  }

  private reportPlanWarnings(plan: SessionPlan): void {
    for (const m of plan.tooLarge) {
      this.warn(
        `message ${m.msg} (${m.size} bytes) exceeds maxMessageBytes ${this.mailbox.maxMessageBytes}: skipped, not deleted`,
      );
      this.report.skipped++;
    }
    if (plan.duplicateUidls.length > 0) {
      this.warn(
        `server listed ${plan.duplicateUidls.length} UIDL(s) for more than one message: each copy is ingested once and none is deleted`,
      );
    }
    if (plan.uidlReset) {
      this.warn(
        `UIDL reset suspected: ${plan.newCount} of ${plan.listed.length} listed messages are unknown; each is fetched, and one whose sha256 matches an earlier ingest is recorded, not queued again`,
      );
    }
  }

  /**
   * Fetches messages one after another on the connection, with two overlaps:
   * - RETRs are pipelined a few messages ahead (RFC 2449 §6.6), so a server's round trip is not
   *   paid per message; the look-ahead is capped in bytes because, once sent, a RETR's body must
   *   be read off the wire even if the run stops;
   * - each message's storage commit (fsync, rename, metadata) finishes in the background while
   *   the next one streams, up to COMMIT_WINDOW messages at once.
   * These two windows are all the per-message memory held: nothing here grows with the mailbox.
   * With a deadline, a RETR is not sent when the measured throughput says it cannot finish in
   * time, and a body still streaming at the deadline is abandoned (see armDeadline).
   * Returns how many messages were started.
   */
  private async ingestAll(fetch: readonly ListedMessage[]): Promise<number> {
    const client = this.client as Pop3Client;
    const inFlight = new Set<Promise<void>>();
    /** RETRs sent whose bodies this loop has not started on yet, oldest first. */
    const ahead: { readonly message: ListedMessage; readonly body: Promise<Readable> }[] = [];
    let aheadBytes = 0;
    /** Index into `fetch` of the next message to consider for a RETR. */
    let cursor = 0;
    /** LIST bytes of every RETR sent, to estimate what is still on the wire. */
    let bytesRequested = 0;
    let failure: { err: unknown } | undefined;
    let started = 0;
    this.ingestStarted = Date.now();
    this.armDeadline();
    const requestAhead = () => {
      while (cursor < fetch.length) {
        const next = fetch[cursor] as ListedMessage;
        if (
          ahead.length > 0 &&
          (ahead.length >= PREFETCH_MESSAGES || aheadBytes + next.size > PREFETCH_BYTES)
        ) {
          break;
        }
        cursor++;
        if (this.cannotFinish(next, bytesRequested)) {
          // Smaller messages behind it may still fit, so the loop goes on to them.
          this.stalled(next, "not started: at the measured throughput it cannot finish in time");
          continue;
        }
        const body = client.retr(next.msg);
        // Consumed (or destroyed) below; never an unhandled rejection while it waits its turn.
        body.catch(() => {});
        ahead.push({ message: next, body });
        aheadBytes += next.size;
        bytesRequested += next.size;
      }
    };
    for (;;) {
      const stop = failure ? "an earlier message failed" : this.shouldStop();
      if (stop) {
        this.log.info(`stopping before next message: ${stop}`, { mailbox: this.mailbox.id });
        break;
      }
      requestAhead();
      const next = ahead.shift();
      if (!next) break;
      aheadBytes -= next.message.size;
      started++;
      let streamed!: () => void;
      const retrieved = new Promise<void>((resolve) => {
        streamed = resolve;
      });
      const task = this.ingestOne(next.message, next.body, streamed)
        .then(() => (this.pending.length >= QUEUE_BATCH ? this.flush() : undefined))
        .catch((err: unknown) => {
          failure ??= { err };
        })
        .finally(() => {
          inFlight.delete(task);
          streamed();
        });
      inFlight.add(task);
      // The next body flows once this one's bytes are all read off the connection.
      await retrieved;
      while (inFlight.size >= COMMIT_WINDOW) await Promise.race(inFlight);
    }
    // RETRs already sent for messages this run will not ingest: destroy each body as it arrives
    // (the client then discards its bytes) so QUIT and DELE stay in step. Not awaited: QUIT is
    // answered only after them, and quit() bounds that wait when there is a deadline.
    for (const { body } of ahead) {
      body.then(
        (stream) => stream.destroy(),
        () => {},
      );
    }
    await Promise.all(inFlight);
    // Messages committed before a failure are still queued, checkpointed and (by policy) deleted.
    await this.flush();
    if (failure) throw failure.err;
    return started;
  }

  private shouldStop(): string | undefined {
    if (this.options.signal?.aborted) return "shutdown requested";
    if (this.options.deadline !== undefined && Date.now() >= this.options.deadline) {
      return "deadline reached";
    }
    return undefined;
  }

  /**
   * At the deadline, abandons every body still streaming: a download not finished by then would
   * run into the Lambda timeout and be lost work anyway. The client discards the rest of an
   * abandoned body, so the connection stays usable for QUIT.
   */
  private armDeadline(): void {
    const { deadline } = this.options;
    if (deadline === undefined) return;
    this.deadlineTimer = setTimeout(
      () => {
        for (const body of this.streaming) {
          body.destroy(
            new MailIngestError(ErrorCode.DEADLINE, "download abandoned at the session deadline"),
          );
        }
      },
      Math.max(0, deadline - Date.now()),
    );
    this.deadlineTimer.unref();
  }

  /**
   * Whether `message`, requested now behind the `bytesRequested - bytesDone` bytes still on the
   * wire, would finish after the deadline at the throughput measured so far in this session.
   * Without a deadline, or before enough bytes were measured, a message is always worth trying.
   */
  private cannotFinish(message: ListedMessage, bytesRequested: number): boolean {
    const { deadline } = this.options;
    if (deadline === undefined || this.bytesDone < MIN_ESTIMATE_BYTES) return false;
    const now = Date.now();
    const bytesPerMs = this.bytesDone / Math.max(1, now - this.ingestStarted);
    const queued = Math.max(0, bytesRequested - this.bytesDone);
    return now + (queued + message.size) / bytesPerMs > deadline;
  }

  /** Records a message that the deadline kept from being downloaded this run. */
  private stalled(message: ListedMessage, why: string): void {
    const id = messageId(this.mailbox.id, message.key);
    this.report.stalled ??= [];
    if (this.report.stalled.length < MAX_STALLED) this.report.stalled.push(id);
    this.log.info(`message ${message.msg} (${message.size} bytes) ${why}`, {
      mailbox: this.mailbox.id,
      uidl: message.uidl,
      id,
    });
  }

  /**
   * Fetches and stores one message, calling `streamed` once its bytes are all off the
   * connection. Throws when the connection or the storage can no longer be used.
   */
  private async ingestOne(
    message: ListedMessage,
    retr: Promise<Readable>,
    streamed: () => void,
  ): Promise<"ok" | "failed" | "abandoned"> {
    const { mailbox, deps } = this;
    const id = messageId(mailbox.id, message.key);
    const fields = { mailbox: mailbox.id, uidl: message.uidl, id };
    let body: Readable;
    try {
      // LIST sizes are only advisory here: servers append a CRLF to a message that lacks one, or
      // count line endings differently, and refusing such mail would lose it. Truncation is
      // caught by the terminator check; a runaway body by the byte limit below.
      body = await retr;
    } catch (err) {
      // A -ERR for one message (deleted by another client, server-side error) skips only it.
      if (isMailIngestError(err, ErrorCode.COMMAND_FAILED)) {
        this.report.failed++;
        this.warn(`RETR ${message.msg} refused: ${describeError(err)}`);
        return "failed";
      }
      throw err;
    }
    if (this.options.deadline !== undefined && Date.now() >= this.options.deadline) {
      body.destroy();
      this.abandoned++;
      this.stalled(message, "abandoned before its first byte: the deadline passed");
      return "abandoned";
    }
    this.streaming.add(body);
    body.once("close", () => this.streaming.delete(body));

    const hash = createHash("sha256");
    let size = 0;
    const byteLimit = mailbox.maxMessageBytes + RUNAWAY_SLACK_BYTES;
    // One source feeding two consumers. The tee takes the next chunk only once both sides have
    // room again, so the slower of raw upload and parse sets the pace and memory stays bounded.
    const toRaw = new PassThrough();
    const toParser = new PassThrough();
    // Their failures surface through the put/parse promises and `retrieved`; a consumer that has
    // already settled must not turn a late stream error into an uncaught exception.
    for (const side of [toRaw, toParser]) side.on("error", () => {});
    const tee = new Writable({
      write: (chunk: Buffer, _enc: string, done: (err?: Error | null) => void) => {
        size += chunk.length;
        if (size > byteLimit) {
          done(
            new MailIngestError(
              ErrorCode.MESSAGE_TOO_LARGE,
              `RETR ${message.msg} sent more than maxMessageBytes (${mailbox.maxMessageBytes}) although LIST said ${message.size}`,
            ),
          );
          return;
        }
        hash.update(chunk);
        this.bytesDone += chunk.length;
        if (this.bytesDone - this.lastProgressBytes >= PROGRESS_EVERY_BYTES) {
          this.lastProgressBytes = this.bytesDone;
          this.progress("ingesting");
        }
        const room = writeToOpen([toRaw, toParser], chunk);
        if (room) room.then(() => done(), done);
        else done();
      },
      final: (done: (err?: Error | null) => void) => {
        for (const side of [toRaw, toParser]) if (!side.destroyed) side.end();
        done();
      },
    });
    const rawObjectKey = rawKey(mailbox.id, id);
    const prefix = partsPrefix(mailbox.id, id);
    const retrieved = pipeline(body, tee);
    retrieved.then(streamed, streamed);
    retrieved.catch((err) => {
      // Forward the cause so both consumers fail instead of waiting on a stream that never ends.
      toRaw.destroy(err);
      toParser.destroy(err);
    });
    // If a consumer fails, keep draining its side (or, once destroyed, the tee skips it) so the
    // RETR still reaches its terminator and the connection stays usable for QUIT, which commits
    // earlier DELEs.
    const drainOnFailure = (side: PassThrough) => (err: unknown) => {
      side.resume();
      throw err;
    };
    const results = await Promise.allSettled([
      retrieved,
      deps.store
        .put(rawObjectKey, toRaw, { contentType: "message/rfc822", ifAbsent: true })
        .catch(drainOnFailure(toRaw)),
      (deps.parse ?? parseMessage)(toParser, deps.store, prefix).catch(drainOnFailure(toParser)),
    ]);
    const [fetched, stored, parsed] = results;
    if (fetched.status === "rejected") {
      if (isMailIngestError(fetched.reason, ErrorCode.DEADLINE)) {
        // Nothing of it was committed (the raw put is atomic), so the next run starts it afresh.
        this.abandoned++;
        this.stalled(message, `abandoned after ${size} bytes: the deadline passed`);
        return "abandoned";
      }
      this.report.failed++;
      this.warn(`RETR ${message.msg} failed: ${describeError(fetched.reason)}`);
      // The client discards the rest of an abandoned body, so the connection stays in step; any
      // other broken RETR leaves it mid-response and nothing more can be sent on it.
      if (isMailIngestError(fetched.reason, ErrorCode.MESSAGE_TOO_LARGE)) return "failed";
      throw fetched.reason;
    }
    if (size !== message.size) {
      this.log.info("RETR size differs from LIST", {
        ...fields,
        listed: message.size,
        received: size,
      });
    }
    if (stored.status === "rejected") {
      throw storageError(ErrorCode.STORE_FAILED, "storing the raw message", stored.reason);
    }
    if (parsed.status === "rejected") {
      throw storageError(ErrorCode.STORE_FAILED, "storing message parts", parsed.reason);
    }

    const sha256 = hash.digest("hex");
    const duplicateOf = this.knownSha?.get(sha256);
    if (duplicateOf && duplicateOf.id !== id) {
      try {
        await this.discard(id);
        await deps.state.record(mailbox.id, [{ ...duplicateOf, uidl: message.key }]);
      } catch (err) {
        throw storageError(ErrorCode.STORE_FAILED, "recording a duplicate", err);
      }
      this.report.skipped++;
      return "ok";
    }

    const ingestedAt = this.now().toISOString();
    const queueMessage = buildQueueMessage({
      id,
      mailbox: mailbox.id,
      uidl: message.uidl,
      ingestedAt,
      size,
      sha256,
      raw: { key: rawObjectKey, uri: deps.store.uri(rawObjectKey), bucket: deps.store.bucket },
      parsed: parsed.value,
    });
    const meta = metaKey(mailbox.id, id);
    const metaRef = { key: meta, uri: deps.store.uri(meta) };
    const {
      full,
      body: entryBody,
      pointer,
    } = queueBodies(queueMessage, deps.queue.maxBodyBytes, metaRef);
    await deps.store
      .put(meta, Buffer.from(full), { contentType: "application/json" })
      .catch((err: unknown) =>
        Promise.reject(storageError(ErrorCode.STORE_FAILED, "storing metadata", err)),
      );
    this.pending.push({
      message,
      entry: { id, body: entryBody, pointer },
      state: {
        uidl: message.key,
        id,
        ingestedAt,
        size,
        sha256,
        messageId: queueMessage.headers.messageId ?? undefined,
      },
    });
    this.report.bytes += size;
    if (parsed.value.parseError) {
      this.log.warn("message stored raw with a parse error", {
        ...fields,
        error: parsed.value.parseError,
      });
    }
    return "ok";
  }

  /** Queue, then checkpoint, then DELE: the order that makes a crash lose nothing. */
  private flush(): Promise<void> {
    // Flushes run one at a time, in the order requested, so DELEs follow their own checkpoint.
    const next = this.flushing.then(() => this.flushPending());
    this.flushing = next.catch(() => {});
    return next;
  }

  private async flushPending(): Promise<void> {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    await this.deps.queue
      .send(batch.map((p) => p.entry))
      .catch((err: unknown) =>
        Promise.reject(storageError(ErrorCode.QUEUE_FAILED, "queueing", err)),
      );
    await this.deps.state
      .record(
        this.mailbox.id,
        batch.map((p) => p.state),
      )
      .catch((err: unknown) =>
        Promise.reject(storageError(ErrorCode.STORE_FAILED, "recording state", err)),
      );
    this.report.ingested += batch.length;
    this.progress("ingesting");
    if (this.mailbox.delete === "after-ingest") {
      for (const p of batch) if (!p.message.duplicateUidl) this.dele(p.message);
    }
  }

  /**
   * Queues a DELE without waiting for its answer: the answer arrives behind any RETR bodies
   * already requested, which only the main loop reads, so waiting here could deadlock it.
   * QUIT waits for every DELE first.
   */
  private dele(message: ListedMessage): void {
    const sent = (this.client as Pop3Client).dele(message.msg).then(
      () => {
        this.report.deleted++;
        this.deletedKeys.push(message.key);
      },
      (err: unknown) => {
        // A lost connection is the session's error, reported once; only a real -ERR is news.
        if (isMailIngestError(err, ErrorCode.COMMAND_FAILED)) {
          this.warn(`DELE ${message.msg} refused: ${describeError(err)}`);
        }
      },
    );
    this.deletes.add(sent);
    void sent.then(() => this.deletes.delete(sent));
  }

  /**
   * After a failure, QUIT when the connection is still in step (a storage or queue error), so
   * DELEs of messages committed earlier take effect; otherwise drop it, which deletes nothing.
   */
  private async endAfterFailure(err: unknown): Promise<void> {
    const client = this.client;
    if (!client) return;
    if (
      isMailIngestError(
        err,
        ErrorCode.STORE_FAILED,
        ErrorCode.QUEUE_FAILED,
        ErrorCode.STATE_CORRUPT,
      )
    ) {
      await this.quit();
      return;
    }
    client.close();
    // Settle the DELEs the close just failed, so nothing touches the report after it returns.
    await Promise.all(this.deletes);
    this.report.deleted = 0;
  }

  /**
   * QUIT commits DELEs (RFC 1939 §6). Without its +OK, nothing counted as deleted was. With a
   * deadline, QUIT (queued behind any abandoned body the server is still sending) gets until
   * QUIT_GRACE_MS past it; then the connection is dropped rather than run into the Lambda timeout.
   */
  private async quit(): Promise<void> {
    const client = this.client as Pop3Client;
    const { deadline } = this.options;
    const committed = (async () => {
      await Promise.all(this.deletes);
      await client.quit();
    })();
    let timer: NodeJS.Timeout | undefined;
    const outOfTime = new Promise<never>((_, reject) => {
      if (deadline === undefined) return;
      timer = setTimeout(
        () =>
          reject(
            new MailIngestError(ErrorCode.DEADLINE, "QUIT was not answered before the deadline"),
          ),
        Math.max(0, deadline + QUIT_GRACE_MS - Date.now()),
      );
    });
    try {
      await Promise.race([committed, outOfTime]);
    } catch (err) {
      client.close();
      await committed.catch(() => {});
      if (this.report.deleted > 0) {
        this.warn(
          `QUIT failed, so ${this.report.deleted} DELE(s) were not committed; the next run sends them again: ${describeError(err)}`,
        );
        this.report.deleted = 0;
      }
      return;
    } finally {
      clearTimeout(timer);
    }
    await this.forgetDeleted();
  }

  /**
   * Committed DELEs leave state: those messages are no longer expected on the server, so they
   * must not make the next listing look like a UIDL reset. A crash before this append leaves
   * them to be pruned as vanished by the next session, which is equally safe.
   */
  private async forgetDeleted(): Promise<void> {
    if (this.deletedKeys.length === 0) return;
    try {
      await this.deps.state.forget(this.mailbox.id, this.deletedKeys);
    } catch (err) {
      this.warn(
        `could not forget ${this.deletedKeys.length} deleted UIDL(s): ${describeError(err)}`,
      );
    }
  }

  /** Removes what a duplicate (found after a UIDL reset) wrote under its new id. */
  private async discard(id: string): Promise<void> {
    const { store } = this.deps;
    await store.delete(rawKey(this.mailbox.id, id));
    for await (const key of store.list(partsPrefix(this.mailbox.id, id))) await store.delete(key);
  }

  private warn(message: string): void {
    this.log.warn(message, { mailbox: this.mailbox.id });
    if (this.report.warnings.length >= MAX_WARNINGS) {
      this.warningsDropped++;
      return;
    }
    this.report.warnings.push(`mailbox ${this.mailbox.id}: ${message}`);
  }

  private progress(phase: SessionProgress["phase"]): void {
    this.options.onProgress?.({
      mailbox: this.mailbox.id,
      phase,
      messagesDone: this.report.ingested + this.pending.length,
      messagesTotal: this.messagesTotal,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
    });
  }
}

/**
 * Writes `chunk` to every side not destroyed; returns a promise when one of them is full, which
 * settles once each full side drains or closes. A side whose consumer failed and destroyed it is
 * skipped: with pipe() it would never emit 'drain', and the RETR would stall mid-body.
 */
function writeToOpen(sides: readonly PassThrough[], chunk: Buffer): Promise<void> | undefined {
  const waits: Promise<void>[] = [];
  for (const side of sides) {
    if (side.destroyed || side.write(chunk)) continue;
    waits.push(
      new Promise<void>((resolve) => {
        const settle = () => {
          side.off("drain", settle);
          side.off("close", settle);
          resolve();
        };
        side.on("drain", settle);
        side.on("close", settle);
      }),
    );
  }
  return waits.length === 0 ? undefined : Promise.all(waits).then(() => undefined);
}

/**
 * Any failure of a port becomes a typed storage error, whatever the adapter threw: the code is
 * what tells endAfterFailure that the POP3 connection is still in step, so QUIT can commit the
 * DELEs of messages committed earlier.
 */
function storageError(code: ErrorCode, doing: string, cause: unknown): MailIngestError {
  if (cause instanceof MailIngestError) return cause;
  return new MailIngestError(code, `${doing} failed: ${describeError(cause)}`, { cause });
}
