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
 * dedupe. DELE is only ever sent for a message whose state checkpoint is durable.
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { PassThrough, type Readable, Transform, type TransformCallback } from "node:stream";
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
import { readMessageIdHeader } from "./top.ts";
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
  /** sha256 → entry, only during a suspected UIDL reset. */
  private knownSha: Map<string, StateEntry> | undefined;
  /** DELEs sent and not yet answered; QUIT waits for them. */
  private readonly deletes: Promise<void>[] = [];
  /** The tail of the flush chain. */
  private flushing: Promise<void> = Promise.resolve();
  /** Totals of the messages this run means to fetch, for progress. */
  private messagesTotal = 0;
  private bytesTotal = 0;
  private bytesDone = 0;
  private lastProgressBytes = 0;

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
      // After QUIT or close: the next holder must never overlap our POP3 session.
      await lock?.release().catch((err: unknown) => {
        this.warn(`could not release the mailbox lock: ${describeError(err)}`);
      });
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
      deps.state.load(mailbox.id),
    ]);
    const listed = joinListing(uidls, sizes);
    const plan = planSession(listed, state, mailbox.delete, mailbox, this.now());
    this.report.listed = listed.length;
    this.report.new = plan.newCount;
    this.reportPlanWarnings(plan);

    const fetch = plan.uidlReset ? await this.dedupeAfterReset(plan, state) : plan.fetch;
    this.messagesTotal = fetch.length;
    this.bytesTotal = fetch.reduce((sum, m) => sum + m.size, 0);

    this.progress("ingesting");
    const started = await this.ingestAll(fetch);
    this.report.remaining = plan.deferred + (fetch.length - started);

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
        `UIDL reset suspected: ${plan.newCount} of ${plan.listed.length} listed messages are unknown; deduplicating by Message-ID and sha256`,
      );
    }
  }

  /**
   * After a UIDL reset (server migration) the old messages come back under new UIDLs. Rather
   * than re-queue the whole mailbox, match them to what is already ingested: by Message-ID and
   * size via TOP when the server offers it; the rest are compared by sha256 after RETR.
   */
  private async dedupeAfterReset(
    plan: SessionPlan,
    state: ReadonlyMap<string, StateEntry>,
  ): Promise<ListedMessage[]> {
    const byMessageId = new Map<string, StateEntry>();
    for (const entry of state.values()) {
      if (entry.messageId) byMessageId.set(`${entry.messageId}\n${entry.size}`, entry);
    }
    this.knownSha = new Map([...state.values()].map((e) => [e.sha256, e]));
    const client = this.client;
    if (!client?.capabilities.top || byMessageId.size === 0) return [...plan.fetch];
    const remaining: ListedMessage[] = [];
    const remap: StateEntry[] = [];
    // All TOPs are queued at once so the client pipelines them; read back in order.
    const tops = plan.fetch.map((m) => {
      const top = client.top(m.msg, 0);
      top.catch(() => {});
      return top;
    });
    for (const [i, m] of plan.fetch.entries()) {
      // A TOP the server refuses leaves that message to the sha256 check after RETR.
      const header = await (tops[i] as Promise<Readable>).then(
        readMessageIdHeader,
        (err: unknown) => {
          if (isMailIngestError(err, ErrorCode.COMMAND_FAILED)) return undefined;
          throw err;
        },
      );
      const match = header ? byMessageId.get(`${header}\n${m.size}`) : undefined;
      if (match) remap.push({ ...match, uidl: m.key });
      else remaining.push(m);
    }
    if (remap.length > 0) {
      await this.deps.state.record(this.mailbox.id, remap);
      this.report.skipped += remap.length;
      this.log.info("matched messages to earlier ingests after UIDL reset", {
        mailbox: this.mailbox.id,
        count: remap.length,
      });
    }
    return remaining;
  }

  /**
   * Fetches messages one after another on the connection, with two overlaps:
   * - RETRs are pipelined a few messages ahead (RFC 2449 §6.6), so a server's round trip is not
   *   paid per message; the look-ahead is capped in bytes because, once sent, a RETR's body must
   *   be read off the wire even if the run stops;
   * - each message's storage commit (fsync, rename, metadata) finishes in the background while
   *   the next one streams, up to COMMIT_WINDOW messages at once.
   * Returns how many messages were started.
   */
  private async ingestAll(fetch: readonly ListedMessage[]): Promise<number> {
    const client = this.client as Pop3Client;
    const inFlight = new Set<Promise<void>>();
    const requested: Promise<Readable>[] = [];
    let failure: { err: unknown } | undefined;
    let started = 0;
    const requestAhead = () => {
      let bytesAhead = 0;
      for (let i = started; i < requested.length; i++) bytesAhead += fetch[i]?.size ?? 0;
      while (requested.length < fetch.length) {
        const next = fetch[requested.length] as ListedMessage;
        const ahead = requested.length - started;
        if (ahead > 0 && (ahead >= PREFETCH_MESSAGES || bytesAhead + next.size > PREFETCH_BYTES))
          break;
        const body = client.retr(next.msg);
        // Consumed (or drained) below; never an unhandled rejection while it waits its turn.
        body.catch(() => {});
        requested.push(body);
        bytesAhead += next.size;
      }
    };
    for (const message of fetch) {
      const stop = failure ? "an earlier message failed" : this.shouldStop();
      if (stop) {
        this.log.info(`stopping before next message: ${stop}`, { mailbox: this.mailbox.id });
        break;
      }
      requestAhead();
      const body = requested[started] as Promise<Readable>;
      started++;
      let streamed!: () => void;
      const retrieved = new Promise<void>((resolve) => {
        streamed = resolve;
      });
      const task = this.ingestOne(message, body, streamed)
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
    // RETRs already sent for messages this run will not ingest: read their bodies off the wire
    // (the client discards a destroyed body) so QUIT and DELE stay in step.
    for (const body of requested.slice(started)) {
      await body.then(
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
   * Fetches and stores one message, calling `streamed` once its bytes are all off the
   * connection. Throws when the connection or the storage can no longer be used.
   */
  private async ingestOne(
    message: ListedMessage,
    retr: Promise<Readable>,
    streamed: () => void,
  ): Promise<"ok" | "failed"> {
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

    const hash = createHash("sha256");
    let size = 0;
    const byteLimit = mailbox.maxMessageBytes + RUNAWAY_SLACK_BYTES;
    const meter = new Transform({
      transform: (chunk: Buffer, _enc: string, done: TransformCallback) => {
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
        done(null, chunk);
      },
    });
    // One source feeding two consumers: pipe() pauses the source until both have drained, so
    // the slower of raw upload and parse sets the pace and memory stays bounded.
    const toRaw = new PassThrough();
    const toParser = new PassThrough();
    // Their failures surface through the put/parse promises and `retrieved`; a consumer that has
    // already settled must not turn a late stream error into an uncaught exception.
    for (const side of [toRaw, toParser]) side.on("error", () => {});
    meter.pipe(toRaw);
    meter.pipe(toParser);
    const rawObjectKey = rawKey(mailbox.id, id);
    const prefix = partsPrefix(mailbox.id, id);
    const retrieved = pipeline(body, meter);
    retrieved.then(streamed, streamed);
    retrieved.catch((err) => {
      // Forward the cause so both consumers fail instead of waiting on a stream that never ends.
      toRaw.destroy(err);
      toParser.destroy(err);
    });
    // If a consumer fails, keep draining its side so the RETR still reaches its terminator and
    // the connection stays usable for QUIT (which commits earlier DELEs).
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
    if (stored.status === "rejected") throw storeError(mailbox.id, stored.reason);
    if (parsed.status === "rejected") throw storeError(mailbox.id, parsed.reason);

    const sha256 = hash.digest("hex");
    const duplicateOf = this.knownSha?.get(sha256);
    if (duplicateOf && duplicateOf.id !== id) {
      await this.discard(id);
      await deps.state.record(mailbox.id, [{ ...duplicateOf, uidl: message.key }]);
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
    await deps.store.put(meta, Buffer.from(full), { contentType: "application/json" });
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
    await this.deps.queue.send(batch.map((p) => p.entry));
    await this.deps.state.record(
      this.mailbox.id,
      batch.map((p) => p.state),
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
      },
      (err: unknown) => {
        // A lost connection is the session's error, reported once; only a real -ERR is news.
        if (isMailIngestError(err, ErrorCode.COMMAND_FAILED)) {
          this.warn(`DELE ${message.msg} refused: ${describeError(err)}`);
        }
      },
    );
    this.deletes.push(sent);
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

  /** QUIT commits DELEs (RFC 1939 §6). Without its +OK, nothing counted as deleted was. */
  private async quit(): Promise<void> {
    const client = this.client as Pop3Client;
    await Promise.all(this.deletes);
    try {
      await client.quit();
    } catch (err) {
      if (this.report.deleted > 0) {
        this.warn(
          `QUIT failed, so ${this.report.deleted} DELE(s) were not committed: ${describeError(err)}`,
        );
        this.report.deleted = 0;
      }
      client.close();
    }
  }

  /** Removes what a duplicate (found after a UIDL reset) wrote under its new id. */
  private async discard(id: string): Promise<void> {
    const { store } = this.deps;
    await store.delete(rawKey(this.mailbox.id, id));
    for await (const key of store.list(partsPrefix(this.mailbox.id, id))) await store.delete(key);
  }

  private warn(message: string): void {
    const text = `mailbox ${this.mailbox.id}: ${message}`;
    this.report.warnings.push(text);
    this.log.warn(message, { mailbox: this.mailbox.id });
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

function storeError(mailbox: string, cause: unknown): MailIngestError {
  if (cause instanceof MailIngestError) return cause;
  return new MailIngestError(
    ErrorCode.STORE_FAILED,
    `mailbox ${mailbox}: storing failed: ${describeError(cause)}`,
    { cause },
  );
}
