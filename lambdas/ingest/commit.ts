/**
 * The commit sequence: the whole "nothing lost, nothing duplicated" guarantee in one unit.
 *
 *   stored message → queue (batched) → state checkpoint → mark done → close → forget
 *
 * - A message is queued only once its raw bytes, parts and metadata are stored (the caller's job).
 * - It is checkpointed in state only once the queue accepted it: a crash before the checkpoint
 *   only means it is fetched again and written to the same deterministic keys, and the queue may
 *   carry its `id` twice, which consumers dedupe.
 * - It is marked done (POP3 DELE) only once its checkpoint is durable, and marks take effect only
 *   when close() is confirmed (POP3 QUIT, RFC 1939 §6).
 * - Once close() is confirmed, the marked keys are forgotten, so state holds only messages still
 *   expected at the source (which is what UIDL-reset detection compares a listing against). A
 *   crash before that forget leaves them to be pruned as vanished by the next session.
 * No network here beyond the ports, so every step's order is testable with fakes.
 */
import { describeError, ErrorCode, isMailIngestError, MailIngestError } from "../errors.ts";
import type {
  MailSource,
  MessageQueue,
  QueueEntry,
  SourceMessage,
  StateEntry,
  StateStore,
} from "../ports.ts";

/**
 * Messages per flush (queue send + state checkpoint): two SQS SendMessageBatch calls of 10 (the
 * adapter splits them). Each checkpoint is one S3 PUT of a state delta, or one fdatasync of the
 * fs log, so checkpointing every 20 rather than every 10 halves that cost per message (issue 14:
 * S3 PUTs per message); a crash still loses at most the unflushed messages' checkpoints, which
 * only means they are fetched again.
 */
export const CHECKPOINT_BATCH = 20;
/**
 * Time after the deadline that close(), and the mark answers queued before it, may take, ms. Past
 * it the connection is dropped: no mark of this session takes effect, and the next run marks them
 * again (their messages are checkpointed), so nothing is lost, only deleted later.
 */
export const CLOSE_GRACE_MS = 10_000;

/** A message whose objects are stored, ready to be queued and checkpointed. */
export interface Committable {
  readonly message: SourceMessage;
  readonly entry: QueueEntry;
  readonly state: StateEntry;
}

export interface CommitDeps {
  readonly mailbox: string;
  readonly queue: MessageQueue;
  readonly state: StateStore;
  readonly source: MailSource;
  /** Mark each message done as soon as it is checkpointed (delete "after-ingest"). */
  readonly markAfterCommit: boolean;
  readonly warn: (message: string) => void;
  /** Called after each checkpoint with the number of messages it committed. */
  readonly onCommitted?: (count: number) => void;
}

export class CommitSequence {
  /** Stored and awaiting the next flush; never marked done before it lands in state. */
  private pending: Committable[] = [];
  /** The tail of the flush chain: flushes run one at a time, in the order requested. */
  private flushing: Promise<void> = Promise.resolve();
  /** Marks sent and not yet answered; close() waits for them. Settled ones leave the set. */
  private readonly marks = new Set<Promise<void>>();
  /** Keys whose mark the source confirmed; forgotten once close() commits them. */
  private markedKeys: string[] = [];

  constructor(private readonly deps: CommitDeps) {}

  /** Messages stored but not yet queued. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** Marks confirmed by the source; after close(), the marks it committed (0 if it failed). */
  get markedCount(): number {
    return this.markedKeys.length;
  }

  /** Adds a stored message; returns the flush it triggered once a checkpoint batch is full. */
  add(item: Committable): Promise<void> | undefined {
    this.pending.push(item);
    return this.pending.length >= CHECKPOINT_BATCH ? this.flush() : undefined;
  }

  /** Queue, then checkpoint, then mark: the order that makes a crash lose nothing. */
  flush(): Promise<void> {
    const next = this.flushing.then(() => this.flushPending());
    this.flushing = next.catch(() => {});
    return next;
  }

  private async flushPending(): Promise<void> {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const { deps } = this;
    try {
      await deps.queue.send(batch.map((p) => p.entry));
    } catch (err) {
      throw storageError(ErrorCode.QUEUE_FAILED, "queueing", err);
    }
    try {
      await deps.state.record(
        deps.mailbox,
        batch.map((p) => p.state),
      );
    } catch (err) {
      throw storageError(ErrorCode.STORE_FAILED, "recording state", err);
    }
    deps.onCommitted?.(batch.length);
    if (deps.markAfterCommit) for (const p of batch) this.markDone(p.message);
  }

  /**
   * Marks a checkpointed message done without waiting for the answer: it arrives behind any
   * bodies already requested, which only the fetch loop reads, so waiting here could deadlock it.
   * Messages whose identity is ambiguous are never marked: a wrong DELE loses mail, while a kept
   * message costs only space.
   */
  markDone(message: SourceMessage): void {
    if (message.ambiguous) return;
    const sent = this.deps.source.markDone(message).then(
      () => {
        this.markedKeys.push(message.key);
      },
      (err: unknown) => {
        // A lost connection is the session's error, reported once; only a refusal is news.
        if (isMailIngestError(err, ErrorCode.COMMAND_FAILED)) {
          this.deps.warn(`DELE ${message.ref} refused: ${describeError(err)}`);
        }
      },
    );
    this.marks.add(sent);
    void sent.then(() => this.marks.delete(sent));
  }

  /**
   * Commits the marks: waits for their answers, then closes the source, bounded by `deadline`
   * plus CLOSE_GRACE_MS when given (the answer may queue behind a body the source is still
   * sending). Without a confirmed close, nothing counts as done and the connection is dropped.
   */
  async close(deadline?: number): Promise<void> {
    const { source } = this.deps;
    const committed = (async () => {
      await Promise.all(this.marks);
      await source.close();
    })();
    let timer: NodeJS.Timeout | undefined;
    const outOfTime = new Promise<never>((_, reject) => {
      if (deadline === undefined) return;
      timer = setTimeout(
        () =>
          reject(
            new MailIngestError(ErrorCode.DEADLINE, "QUIT was not answered before the deadline"),
          ),
        Math.max(0, deadline + CLOSE_GRACE_MS - Date.now()),
      );
    });
    try {
      await Promise.race([committed, outOfTime]);
    } catch (err) {
      source.abort();
      await committed.catch(() => {});
      if (this.markedKeys.length > 0) {
        this.deps.warn(
          `QUIT failed, so ${this.markedKeys.length} DELE(s) were not committed; the next run sends them again: ${describeError(err)}`,
        );
      }
      this.markedKeys = [];
      return;
    } finally {
      clearTimeout(timer);
    }
    await this.forgetMarked();
  }

  /** Drops the source without committing any mark (a broken connection). */
  async abort(): Promise<void> {
    this.deps.source.abort();
    // Settle the marks the abort just failed, so nothing changes the counts after this returns.
    await Promise.all(this.marks);
    this.markedKeys = [];
  }

  private async forgetMarked(): Promise<void> {
    // A flagged IMAP message is still in its folder: state must keep knowing it.
    if (this.markedKeys.length === 0 || this.deps.source.keepsMarked) return;
    try {
      await this.deps.state.forget(this.deps.mailbox, this.markedKeys);
    } catch (err) {
      // Harmless: the next session prunes them as vanished.
      this.deps.warn(
        `could not forget ${this.markedKeys.length} deleted UIDL(s): ${describeError(err)}`,
      );
    }
  }
}

/**
 * Any failure of a port becomes a typed storage error, whatever the adapter threw: the code is
 * what tells the session that the source connection is still in step, so close() can commit the
 * marks of messages committed earlier.
 */
export function storageError(code: ErrorCode, doing: string, cause: unknown): MailIngestError {
  if (cause instanceof MailIngestError) return cause;
  return new MailIngestError(code, `${doing} failed: ${describeError(cause)}`, { cause });
}
