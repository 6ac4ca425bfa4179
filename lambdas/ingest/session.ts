/**
 * One mailbox session. It speaks to a {@link MailSource} (POP3 today), never to a protocol:
 *
 *   lock → open source → list + load state → plan
 *   fetch window: for each new message, fetch ─┬─ raw store (create-only)       (message.ts)
 *                                              └─ MIME parse → parts store
 *                 → metadata → commit sequence: queue → state → mark done       (commit.ts)
 *   → mark messages due under the delete policy → close (commits the marks) → forget → unlock
 *
 * Crash safety comes from the order alone, which commit.ts keeps: keys are deterministic, so a
 * crash anywhere before the state checkpoint only means the message is fetched again and rewritten
 * to the same keys (the raw object is created once); the queue may then carry the same `id` twice,
 * which consumers dedupe. A message is marked done only once its checkpoint is durable.
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import type { Readable } from "node:stream";
import { pop3Source } from "../adapters/pop3-source.ts";
import type { MailboxConfig } from "../config/index.ts";
import {
  describeError,
  ErrorCode,
  isMailIngestError,
  MailIngestError,
  mailboxMessage,
} from "../errors.ts";
import type { HeldLock, LockHolder, MailSource, SourceMessage, StateEntry } from "../ports.ts";
import { CommitSequence, storageError } from "./commit.ts";
import type { GateRelease } from "./fetch-gate.ts";
import { messageId } from "./keys.ts";
import {
  describeStored,
  type FetchOutcome,
  fetchAndStore,
  prepareToStore,
  RUNAWAY_SLACK_BYTES,
} from "./message.ts";
import { planSession, type SessionPlan } from "./plan.ts";
import { countRefusals } from "./refusals.ts";
import type {
  MailboxReport,
  OpenSource,
  SessionDeps,
  SessionLogger,
  SessionOptions,
  SessionProgress,
} from "./types.ts";

/** Fetches sent ahead of the message being read: at most this many, and this many bytes (LIST). */
const PREFETCH_MESSAGES = 12;
/**
 * The look-ahead is topped up only once it is down to this many, so fetches go out four at a time
 * and the POP3 client sends them in one write (issue 14). At least this many stay in flight, as
 * many as the look-ahead of 8 it replaced kept, so a distant server's round trip is hidden as well.
 */
const PREFETCH_REFILL_AT = 8;
const PREFETCH_BYTES = 4 * 1024 * 1024;
/** Messages whose storage commit may still be running while the next one streams. */
const COMMIT_WINDOW = 16;
/** Byte-progress callbacks are throttled to one per this many bytes. */
const PROGRESS_EVERY_BYTES = 1 << 20;
/** Bytes received before the measured throughput is trusted to predict a download's time. */
const MIN_ESTIMATE_BYTES = 256 * 1024;
/** Warnings kept in a report; the rest are counted, so a report's size never grows with a mailbox. */
const MAX_WARNINGS = 50;
/** Ids of deadline-stalled messages kept in a report (they ride along in continuation jobs). */
const MAX_STALLED = 20;
/** Vanished state entries that, with new mail listed, continue an unfinished UIDL reset. */
const RESET_CONTINUE_VANISHED = 10;
/** Copies found after a UIDL reset are recorded in state this many at a time. */
const RESET_RECORD_BATCH = 100;

const silentLogger: SessionLogger = { debug() {}, info() {}, warn() {}, error() {} };

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
  private commit: CommitSequence | undefined;
  /** Bodies being read right now; destroyed if the deadline passes mid-download. */
  private readonly streaming = new Set<Readable>();
  /** Fires at the deadline; cleared when the session ends. */
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Totals of the messages this run means to fetch, for progress. */
  private messagesTotal = 0;
  private bytesTotal = 0;
  private bytesDone = 0;
  private lastProgressBytes = 0;
  /** When the first fetch was sent (epoch ms), for the throughput estimate. */
  private ingestStarted = 0;
  /** Warnings not kept in the report once MAX_WARNINGS was reached. */
  private warningsDropped = 0;
  /** Downloads started but abandoned at the deadline; still at the source, left for later. */
  private abandoned = 0;
  /** Messages refused this run (RETR -ERR, or past maxMessageBytes); counted as failed so far. */
  private readonly refused: SourceMessage[] = [];

  constructor(
    private readonly mailbox: MailboxConfig,
    private readonly deps: SessionDeps,
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
        shared: this.options.lockShared,
      });
      if (acquired?.held === false) {
        this.skipLocked(acquired.holder);
      } else {
        lock = acquired;
        if (lock) this.stopWhenLost(lock);
        await this.session();
      }
    } catch (err) {
      this.report.error = mailboxMessage(this.mailbox.id, describeError(err));
      this.report.errorCode = isMailIngestError(err) ? err.code : undefined;
      this.log.error("mailbox session failed", {
        mailbox: this.mailbox.id,
        code: this.report.errorCode,
        error: describeError(err),
      });
      await this.endAfterFailure(err);
    } finally {
      clearTimeout(this.deadlineTimer);
      // After close: the next holder must never overlap our session with the source.
      await lock?.release().catch((err: unknown) => {
        this.warn(`could not release the mailbox lock: ${describeError(err)}`);
      });
    }
    if (this.warningsDropped > 0) {
      this.report.warnings.push(
        mailboxMessage(
          this.mailbox.id,
          `${this.warningsDropped} more warning(s) not shown (see the log)`,
        ),
      );
    }
    this.report.durationMs = Date.now() - this.started;
    this.progress("done");
    return this.report;
  }

  private async session(): Promise<void> {
    const { mailbox, deps } = this;
    this.progress("connecting");
    // State first: an incremental source (IMAP) lists only what it cannot rule out from it. It
    // loads while the connection and login wait on the server (the mailbox lock is held), which
    // takes its parsing off an incremental poll's critical path (issue 14). A connection that
    // fails wins: its error is the one reported, as when the state was loaded after it, once
    // the load has settled (it may be rewriting the log, which must end before the lock does).
    const loadingState = deps.state.load(mailbox.id, { onWarning: (m) => this.warn(m) });
    loadingState.catch(() => {});
    const open = deps.openSource ?? (mailbox.protocol === "imap" ? openImap : pop3Source());
    let source: MailSource;
    try {
      source = await open(mailbox, this.options.credentials);
    } catch (err) {
      await loadingState.catch(() => {});
      throw err;
    }
    const commit = new CommitSequence({
      mailbox: mailbox.id,
      queue: deps.queue,
      state: deps.state,
      source,
      markAfterCommit: mailbox.delete === "after-ingest",
      warn: (message) => this.warn(message),
      onCommitted: (count) => {
        this.report.ingested += count;
        this.progress("ingesting");
      },
    });
    this.commit = commit;

    this.progress("listing");
    const state = await loadingState;
    const listing = await source.list(state);
    const listed = listing.messages;
    const plan = planSession(listed, state, mailbox.delete, mailbox, this.now(), listing);
    this.report.listed = listed.length;
    this.report.new = plan.newCount;
    this.report.listingComplete = true;
    this.reportPlanWarnings(plan, listing.reset === true);

    this.armDeadline();
    let fetch = plan.fetch;
    let unchecked = 0;
    // A reset whose checking an earlier run could not finish (cap, deadline) left its vanished
    // entries in state (see below), and by then enough copies may be known that the listing no
    // longer looks like a reset: many vanished entries plus new mail continue it. The same
    // shape after another client deleted many messages costs only a second download of the new
    // mail, once.
    const hashFirst =
      plan.uidlReset || (plan.vanished.length >= RESET_CONTINUE_VANISHED && fetch.length > 0);
    if (hashFirst) {
      const known = new Map([...state.values()].map((e) => [e.sha256, e]));
      ({ fresh: fetch, unchecked } = await this.dropKnownByHash(source, fetch, known));
    }
    this.messagesTotal = fetch.length;
    this.bytesTotal = fetch.reduce((sum, m) => sum + m.size, 0);

    this.progress("ingesting");
    const started = await this.ingestAll(source, fetch);
    if (this.refused.length > 0) await this.settleRefusals(listed);
    this.report.remaining = plan.deferred + unchecked + (fetch.length - started) + this.abandoned;

    // Forget keys only after a complete listing: a vanished key is gone from the source. While
    // copies of them may still be unchecked on the server, their hashes are kept to find them.
    const checkingLeft = hashFirst && (unchecked > 0 || plan.deferred > 0);
    if (plan.vanished.length > 0 && !checkingLeft) {
      await deps.state.forget(mailbox.id, plan.vanished).catch((err: unknown) => {
        throw storageError(ErrorCode.STORE_FAILED, "forgetting vanished UIDLs", err);
      });
    }
    if (plan.deleteKnown.length > 0) {
      this.progress("deleting");
      for (const m of plan.deleteKnown) commit.markDone(m);
    }
    await commit.close(this.options.deadline);
    this.report.deleted = commit.markedCount;
  }

  private reportPlanWarnings(plan: SessionPlan, renumbered: boolean): void {
    for (const m of plan.tooLarge) {
      this.warn(
        `message ${m.ref} (${m.size} bytes) exceeds maxMessageBytes ${this.mailbox.maxMessageBytes}: skipped, not deleted`,
      );
      this.report.skipped++;
    }
    if (plan.duplicateUidls.length > 0) {
      this.warn(
        `server listed ${plan.duplicateUidls.length} UIDL(s) for more than one message: each copy is ingested once and none is deleted`,
      );
    }
    if (renumbered) {
      this.warn(
        `UIDVALIDITY changed: ${plan.newCount} listed message(s) are unknown under the new one; each is fetched, and one whose sha256 matches an earlier ingest is recorded, not queued again`,
      );
    } else if (plan.uidlReset) {
      this.warn(
        `UIDL reset suspected: ${plan.newCount} of ${plan.listed.length} listed messages are unknown; each is fetched, and one whose sha256 matches an earlier ingest is recorded, not queued again`,
      );
    }
  }

  /**
   * Turns this run's refusals that have been refused often enough into skips (see refusals.ts),
   * so a message the server never hands over leaves the backlog. It is never deleted for it.
   */
  private async settleRefusals(listed: readonly SourceMessage[]): Promise<void> {
    const verdict = await countRefusals(
      this.deps.store,
      this.mailbox.id,
      this.refused.map((m) => m.key),
      new Set(listed.map((m) => m.key)),
      (message) => this.warn(message),
    );
    for (const message of this.refused) {
      if (!verdict.permanent.has(message.key)) continue;
      this.report.failed--;
      this.report.skipped++;
      this.warn(
        `message ${message.ref} (UIDL ${message.uidl}) was refused in ${verdict.counts.get(message.key)} polls in a row: reported as skipped, not as backlog; it is tried again each run and never deleted`,
      );
    }
  }

  /**
   * During a suspected UIDL reset, tells copies from new mail before anything is stored: each
   * message is fetched once and only hashed, and one whose sha256 matches an earlier ingest
   * under another id is recorded under its new key and not fetched again. The rest (new mail)
   * are returned for the normal fetch, which downloads them a second time.
   *
   * Why not store first and remove a copy afterwards: storage is create-only outside `state/`
   * (the deployed poller may delete only there, and the bucket is versioned), so a copy's objects
   * could never be removed, and nothing would stay stored only once. In a reset most listed
   * messages are copies, so hashing first also saves their uploads and parses; only the few new
   * messages cost a second download.
   *
   * Sequential, not pipelined: a reset is rare, and each body is read to its end (or destroyed,
   * which the source discards) before the next request. Messages the deadline or a shutdown left
   * unchecked are counted in `unchecked` and wait for the next run.
   */
  private async dropKnownByHash(
    source: MailSource,
    fetch: readonly SourceMessage[],
    known: ReadonlyMap<string, StateEntry>,
  ): Promise<{ fresh: SourceMessage[]; unchecked: number }> {
    const { mailbox, deps } = this;
    const fresh: SourceMessage[] = [];
    let copies: StateEntry[] = [];
    const record = async () => {
      if (copies.length === 0) return;
      const batch = copies;
      copies = [];
      try {
        await deps.state.record(mailbox.id, batch);
      } catch (err) {
        throw storageError(
          ErrorCode.STORE_FAILED,
          "recording copies found after a UIDL reset",
          err,
        );
      }
      this.report.skipped += batch.length;
    };
    let checked = 0;
    for (const message of fetch) {
      if (this.shouldStop()) break;
      const sha256 = await this.hashOnly(source, message);
      if (sha256 === "deadline") break;
      checked++;
      const copyOf = sha256 === undefined ? undefined : known.get(sha256);
      if (copyOf && copyOf.id !== messageId(mailbox.id, message.key)) {
        // Identical bytes ingested before under another key: record the new key, queue nothing.
        copies.push({ ...copyOf, uidl: message.key });
        if (copies.length >= RESET_RECORD_BATCH) await record();
      } else {
        fresh.push(message);
      }
    }
    await record();
    return { fresh, unchecked: fetch.length - checked };
  }

  /**
   * sha256 of a message's bytes, read and discarded; undefined when the source refused it or it
   * ran past maxMessageBytes (the normal fetch then reports it), "deadline" when the deadline
   * abandoned it.
   */
  private async hashOnly(
    source: MailSource,
    message: SourceMessage,
  ): Promise<string | "deadline" | undefined> {
    let body: Readable;
    try {
      body = await source.fetch(message);
    } catch (err) {
      if (isMailIngestError(err, ErrorCode.COMMAND_FAILED)) return undefined;
      throw err;
    }
    this.streaming.add(body);
    const hash = createHash("sha256");
    let size = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > this.mailbox.maxMessageBytes + RUNAWAY_SLACK_BYTES) {
          body.destroy();
          return undefined;
        }
        hash.update(chunk);
      }
    } catch (err) {
      if (isMailIngestError(err, ErrorCode.DEADLINE)) {
        this.stalled(
          message,
          `abandoned after ${size} bytes while checking for a copy: the deadline passed`,
        );
        return "deadline";
      }
      throw err;
    } finally {
      this.streaming.delete(body);
    }
    return hash.digest("hex");
  }

  /**
   * The fetch window. Messages are fetched one after another on the connection, with two
   * overlaps:
   * - fetches are pipelined a few messages ahead (RFC 2449 §6.6), so a server's round trip is not
   *   paid per message; the look-ahead is capped in bytes because, once sent, a fetch's body must
   *   be read off the wire even if the run stops;
   * - each message's storage commit (fsync, rename, metadata) finishes in the background while
   *   the next one streams, up to COMMIT_WINDOW messages at once.
   * These two windows are all the per-message memory held: nothing here grows with the mailbox.
   * With a deadline, a fetch is not sent when the measured throughput says it cannot finish in
   * time, and a body still streaming at the deadline is abandoned (see armDeadline).
   * Returns how many messages were started.
   */
  private async ingestAll(source: MailSource, fetch: readonly SourceMessage[]): Promise<number> {
    const commit = this.commit as CommitSequence;
    const inFlight = new Set<Promise<void>>();
    /** Fetches sent whose bodies this loop has not started on yet, oldest first. */
    const ahead: {
      readonly message: SourceMessage;
      readonly body: Promise<Readable>;
      /** The message's weight in the fetch gate, held until its commit is handed on. */
      readonly release?: GateRelease;
    }[] = [];
    let aheadBytes = 0;
    /** Index into `fetch` of the next message to consider for a fetch. */
    let cursor = 0;
    /** Listed bytes of every fetch sent, to estimate what is still on the wire. */
    let bytesRequested = 0;
    let failure: { err: unknown } | undefined;
    let started = 0;
    this.ingestStarted = Date.now();
    const gate = this.options.fetchGate;
    const requestAhead = async () => {
      if (ahead.length > PREFETCH_REFILL_AT) return;
      while (cursor < fetch.length) {
        const next = fetch[cursor] as SourceMessage;
        if (
          ahead.length > 0 &&
          (ahead.length >= PREFETCH_MESSAGES || aheadBytes + next.size > PREFETCH_BYTES)
        ) {
          break;
        }
        if (this.cannotFinish(next, bytesRequested)) {
          cursor++;
          // Smaller messages behind it may still fit, so the loop goes on to them.
          this.stalled(next, "not started: at the measured throughput it cannot finish in time");
          continue;
        }
        // The process-wide memory bound (fetch-gate.ts). With fetches already sent, this session
        // has work to do and only stops reading ahead; with none, it waits its turn, holding
        // nothing that the others wait for.
        let release: GateRelease | undefined;
        if (gate) {
          release = gate.tryAcquire(next.size);
          if (!release && ahead.length > 0) break;
          if (!release) {
            release = await gate.acquire(next.size);
            if (this.shouldStop()) {
              release();
              return;
            }
          }
        }
        cursor++;
        const body = source.fetch(next);
        // Consumed (or destroyed) below; never an unhandled rejection while it waits its turn.
        body.catch(() => {});
        ahead.push({ message: next, body, release });
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
      await requestAhead();
      // The first fetches are on the wire: load the parser while their answers travel (a remote
      // server's round trip), not once the first body has arrived (issue 14).
      if (started === 0 && ahead.length > 0) prepareToStore();
      const next = ahead.shift();
      if (!next) break;
      aheadBytes -= next.message.size;
      started++;
      let streamed!: () => void;
      const retrieved = new Promise<void>((resolve) => {
        streamed = resolve;
      });
      const task = this.ingestOne(next.message, next.body, streamed)
        .catch((err: unknown) => {
          failure ??= { err };
        })
        .finally(() => {
          inFlight.delete(task);
          streamed();
          next.release?.();
        });
      inFlight.add(task);
      // The next body flows once this one's bytes are all read off the connection.
      await retrieved;
      while (inFlight.size >= COMMIT_WINDOW) await Promise.race(inFlight);
    }
    // Fetches already sent for messages this run will not ingest: destroy each body as it
    // arrives (the source then discards its bytes) so later answers stay in step. Not awaited:
    // close() is answered only after them, and it bounds that wait when there is a deadline.
    for (const { body, release } of ahead) {
      body.then(
        (stream) => stream.destroy(),
        () => {},
      );
      release?.();
    }
    await Promise.all(inFlight);
    // Messages stored before a failure are still queued, checkpointed and (by policy) marked.
    await commit.flush();
    if (failure) throw failure.err;
    return started;
  }

  /** Fetches and stores one message, then hands it to the commit sequence. */
  private async ingestOne(
    message: SourceMessage,
    body: Promise<Readable>,
    streamed: () => void,
  ): Promise<void> {
    const { mailbox, deps } = this;
    const outcome: FetchOutcome = await fetchAndStore(
      {
        mailbox,
        store: deps.store,
        onBytes: (bytes) => this.onBytes(bytes),
        onStreaming: (stream) => {
          this.streaming.add(stream);
          stream.once("close", () => this.streaming.delete(stream));
        },
      },
      message,
      body,
      streamed,
      this.options.deadline,
    );
    switch (outcome.kind) {
      case "refused":
        this.report.failed++;
        this.refused.push(message);
        this.warn(`RETR ${message.ref} refused: ${describeError(outcome.error)}`);
        return;
      case "runaway":
        this.report.failed++;
        this.refused.push(message);
        this.warn(`RETR ${message.ref} failed: ${describeError(outcome.error)}`);
        return;
      case "abandoned":
        // Nothing of it was committed (the raw put is atomic), so the next run starts it afresh.
        this.abandoned++;
        this.stalled(message, `abandoned after ${outcome.bytes} bytes: the deadline passed`);
        return;
      case "stored":
        break;
    }
    const fields = { mailbox: mailbox.id, uidl: message.uidl, id: outcome.id };
    if (outcome.size !== message.size) {
      this.log.info("RETR size differs from LIST", {
        ...fields,
        listed: message.size,
        received: outcome.size,
      });
    }
    const item = await describeStored(
      mailbox.id,
      deps.store,
      deps.queue.maxBodyBytes,
      message,
      outcome,
      this.now().toISOString(),
    );
    this.report.bytes += outcome.size;
    if (outcome.parsed.parseError) {
      this.log.warn("message stored raw with a parse error", {
        ...fields,
        error: outcome.parsed.parseError,
      });
    }
    await (this.commit as CommitSequence).add(item);
  }

  private onBytes(bytes: number): void {
    this.bytesDone += bytes;
    if (this.bytesDone - this.lastProgressBytes >= PROGRESS_EVERY_BYTES) {
      this.lastProgressBytes = this.bytesDone;
      this.progress("ingesting");
    }
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
   * run into the Lambda timeout and be lost work anyway. The source discards the rest of an
   * abandoned body, so the connection stays usable for close().
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
  private cannotFinish(message: SourceMessage, bytesRequested: number): boolean {
    const { deadline } = this.options;
    if (deadline === undefined || this.bytesDone < MIN_ESTIMATE_BYTES) return false;
    const now = Date.now();
    const bytesPerMs = this.bytesDone / Math.max(1, now - this.ingestStarted);
    const queued = Math.max(0, bytesRequested - this.bytesDone);
    return now + (queued + message.size) / bytesPerMs > deadline;
  }

  /** Records a message that the deadline kept from being downloaded this run. */
  private stalled(message: SourceMessage, why: string): void {
    const id = messageId(this.mailbox.id, message.key);
    this.report.stalled ??= [];
    if (this.report.stalled.length < MAX_STALLED) this.report.stalled.push(id);
    this.log.info(`message ${message.ref} (${message.size} bytes) ${why}`, {
      mailbox: this.mailbox.id,
      uidl: message.uidl,
      id,
    });
  }

  /**
   * After a failure, close the source when the connection is still in step (a storage or queue
   * error), so marks of messages committed earlier take effect; otherwise drop it, which commits
   * nothing.
   */
  private async endAfterFailure(err: unknown): Promise<void> {
    const commit = this.commit;
    if (!commit) return;
    if (
      isMailIngestError(
        err,
        ErrorCode.STORE_FAILED,
        ErrorCode.QUEUE_FAILED,
        ErrorCode.STATE_CORRUPT,
      )
    ) {
      await commit.close(this.options.deadline);
    } else {
      await commit.abort();
    }
    this.report.deleted = commit.markedCount;
  }

  private skipLocked(holder: LockHolder): void {
    const where = holder.host === hostname() ? "" : ` on ${holder.host}`;
    const text = `mailbox ${this.mailbox.id} is being polled by another process (pid ${holder.pid}${where})`;
    this.report.lockedBy = holder;
    this.report.warnings.push(text);
    this.log.warn(text, { holderPid: holder.pid, holderHost: holder.host });
  }

  /** A lost lock stops the session before its next message, as a shutdown would. */
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

  private warn(message: string): void {
    this.log.warn(message, { mailbox: this.mailbox.id });
    if (this.report.warnings.length >= MAX_WARNINGS) {
      this.warningsDropped++;
      return;
    }
    this.report.warnings.push(mailboxMessage(this.mailbox.id, message));
  }

  private progress(phase: SessionProgress["phase"]): void {
    this.options.onProgress?.({
      mailbox: this.mailbox.id,
      phase,
      messagesDone: this.report.ingested + (this.commit?.pendingCount ?? 0),
      messagesTotal: this.messagesTotal,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
    });
  }
}

/**
 * The IMAP source, loaded only for an IMAP mailbox: imapflow and its dependencies (pino,
 * iconv-lite…) would otherwise add to every POP3 poll's start-up, which the incremental-poll
 * budget cannot afford (issue 14).
 */
const openImap: OpenSource = async (mailbox, credentials) => {
  const { imapSource } = await import("../adapters/imap-source.ts");
  return imapSource()(mailbox, credentials);
};
