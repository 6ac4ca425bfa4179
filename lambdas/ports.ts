/**
 * The pipeline's ports. The ingest session speaks only to these interfaces; each adapter in
 * `adapters/` implements one of them and passes the shared contract suite in `test/contract/`.
 */
import type { Readable } from "node:stream";

export interface PutOptions {
  /** MIME type recorded with the object (S3 Content-Type). */
  readonly contentType?: string;
  /**
   * Create only: if an object already exists at the key, leave it untouched and report
   * `created: false` (S3 `If-None-Match: *`, fs link-without-replace). Correctness never depends
   * on it: keys are deterministic, so an overwrite writes the same bytes.
   */
  readonly ifAbsent?: boolean;
}

export interface PutResult {
  /** Bytes written (0 when `created` is false). */
  readonly size: number;
  /** False when `ifAbsent` was set and the object already existed. */
  readonly created: boolean;
}

export interface ObjectStore {
  /**
   * Streams `body` to `key`. Atomic: readers see either no object or the complete one, never a
   * partial write, even if the process dies mid-stream. Honours backpressure from the backend.
   */
  put(key: string, body: Readable | Uint8Array, options?: PutOptions): Promise<PutResult>;
  /** The object's bytes, or null when absent. */
  get(key: string): Promise<Readable | null>;
  /** The object's size, or null when absent. */
  head(key: string): Promise<{ readonly size: number } | null>;
  /** Removes the object; absent is not an error. */
  delete(key: string): Promise<void>;
  /** Keys under a prefix, in no particular order. */
  list(prefix: string): AsyncIterable<string>;
  /** A stable URI for the key: `file://…` or `s3://bucket/…`. */
  uri(key: string): string;
  /** The S3 bucket, for metadata; undefined for the fs store. */
  readonly bucket?: string;
}

export interface QueueEntry {
  /** Deterministic message id, so consumers can dedupe redeliveries. */
  readonly id: string;
  /** JSON body. */
  readonly body: string;
  /**
   * The same message in schema v2 pointer form (a reference to its `meta/` object), for
   * transports whose size limit the full body exceeds (EventBridge: 256 KiB).
   */
  readonly pointer?: string;
  /**
   * URI of a durably stored object whose bytes are exactly `body` (the metadata object, when the
   * full message fits the queue). A queue on the same file system may hard-link it instead of
   * writing and fsyncing a second copy; others ignore it.
   */
  readonly sameAs?: string;
}

export interface MessageQueue {
  /**
   * Sends entries durably; resolves only once every entry is accepted. Adapters batch as the
   * backend allows (SQS: 10 per SendMessageBatch) and retry partial batch failures.
   */
  send(entries: readonly QueueEntry[]): Promise<void>;
  /** Largest body, in bytes, the backend accepts (SQS: 1 MiB). */
  readonly maxBodyBytes: number;
}

/** What the state store remembers about one ingested message. */
export interface StateEntry {
  readonly uidl: string;
  /** Deterministic message id (see ingest/keys.ts). */
  readonly id: string;
  /** ISO-8601 instant the message was committed (stored + queued). */
  readonly ingestedAt: string;
  readonly size: number;
  /** sha256 of the raw bytes, hex. */
  readonly sha256: string;
  /** Message-ID header, for dedupe after a UIDL reset. */
  readonly messageId?: string;
}

export interface StateLoadOptions {
  /**
   * Told about damage the load repaired rather than failed on: a torn last write, or an
   * unreadable line or object that was skipped (with how many messages that may re-fetch).
   */
  readonly onWarning?: (message: string) => void;
  /**
   * A reader that does not hold the mailbox lock (`check`), while a session may be writing:
   * ObjectStateStore then neither compacts nor deletes (its clean marker must only be removed by
   * the lock holder). @default false
   */
  readonly readOnly?: boolean;
}

export interface StateStore {
  /**
   * Everything recorded for a mailbox, keyed by UIDL. Damaged state is skipped, reported through
   * `onWarning` and repaired, never fatal: losing an entry only re-fetches a message under its
   * deterministic id, while failing would stop the mailbox.
   */
  load(mailbox: string, options?: StateLoadOptions): Promise<Map<string, StateEntry>>;
  /** Durably records entries (per message checkpoint). Cheap: O(entries), not O(state). */
  record(mailbox: string, entries: readonly StateEntry[]): Promise<void>;
  /** Forgets UIDLs (vanished from the server, or deleted). */
  forget(mailbox: string, uidls: readonly string[]): Promise<void>;
}

/** Who holds a mailbox lock, as recorded in the lock itself. */
export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  /** ISO-8601 instant the holder took the lock. */
  readonly startedAt: string;
  /** ISO-8601 instant a lease lapses unless renewed; absent for fs lock files (pid liveness). */
  readonly expiresAt?: string;
}

export interface LockOptions {
  /**
   * How long a lease outlives a holder that stops renewing it (crash, timeout), ms. The holder
   * renews it while it runs. Ignored by the fs lock, which checks whether the holder's pid lives.
   */
  readonly ttlMs?: number;
  /**
   * A fixed expiry instead of a renewed TTL (epoch ms), for a holder whose end is known (a
   * Lambda invocation's timeout plus a margin): its lease then lapses right after the timeout.
   */
  readonly expiresAt?: number;
  /**
   * An owner shared by holders that are already exclusive among themselves: the Lambda pollers
   * of one FIFO jobs queue, which runs one job per mailbox (message group) at a time. A live
   * lease of this owner is reused without a write, renewed to `keepMs` from now only when it
   * would lapse before `expiresAt`, and kept on release; so an idle poll costs one read, not a
   * PUT. A holder with any other owner (a CLI) still waits for it to lapse. Ignored by the fs lock.
   */
  readonly shared?: { readonly owner: string; readonly keepMs: number };
}

/** A lock this process holds. */
export interface HeldLock {
  readonly held: true;
  /**
   * Aborted if the lock is lost while held: a lease could not be renewed before it expired, or
   * another holder took it over. The session then stops fetching and QUITs.
   */
  readonly lost: AbortSignal;
  /** Releases the lock if it is still ours; never removes another holder's lock. */
  release(): Promise<void>;
}

export type LockResult = HeldLock | { readonly held: false; readonly holder: LockHolder };

/**
 * One session per mailbox across processes and hosts that share the state location. POP3 servers
 * need not lock the maildrop (Dovecot's `pop3_lock_session` defaults to no), so two overlapping
 * runs would otherwise both fetch everything.
 */
export interface MailboxLock {
  /** Takes the mailbox's lock, taking over a stale one; `held: false` names the live holder. */
  acquire(mailbox: string, options?: LockOptions): Promise<LockResult>;
}

/**
 * Where a message came from, as the queue message's `source` reports it (schema v2). POP3 knows
 * only the UIDL; IMAP identifies a message by folder, UIDVALIDITY and UID (RFC 3501 §2.3.1.1).
 */
export type MessageOrigin =
  | { readonly protocol: "pop3"; readonly uidl: string }
  | {
      readonly protocol: "imap";
      readonly folder: string;
      readonly uidValidity: number;
      readonly uid: number;
    };

/** One message as a mail source lists it for this session. */
export interface SourceMessage {
  /**
   * The identity state is keyed by: opaque and stable across sessions. POP3: the UIDL, with a
   * suffix on the second and later messages sharing one UIDL; IMAP: folder, UIDVALIDITY and UID.
   */
  readonly key: string;
  /** The source's own name for the message, for logs and state (POP3: the UIDL). */
  readonly uidl: string;
  /** Where the message came from, for the queue message's `source`. */
  readonly origin: MessageOrigin;
  /** Octets as the source lists them; advisory (servers count line endings differently). */
  readonly size: number;
  /** The source's handle, valid for this session only (POP3: the message number, RFC 1939 §5). */
  readonly ref: number;
  /** Several messages share the identity (a server bug): such a message is never marked done. */
  readonly ambiguous: boolean;
}

/** What a source lists for one session. */
export interface SourceListing {
  /**
   * The messages to consider, in the source's order. POP3: every message. An incremental source
   * (IMAP) lists only what state cannot rule out: messages above the highest key it knows, plus
   * a bounded re-check of keys left pending (not ingested, or ingested but not yet marked done).
   */
  readonly messages: SourceMessage[];
  /**
   * Known keys the source saw gone. Absent for a complete listing, where every known key not
   * listed is gone; an incremental listing says which, since most known keys are not listed.
   */
  readonly vanished?: readonly string[];
  /**
   * The source knows its keys were renumbered (IMAP UIDVALIDITY changed, RFC 3501 §2.3.1.1):
   * identity falls back to the sha256 of the bytes, as after a suspected POP3 UIDL reset.
   */
  readonly reset?: boolean;
}

/**
 * Where mail comes from: one authenticated session with one mailbox. Requests may be pipelined:
 * they are answered in the order made, and a fetched body must be read to its end, or destroyed,
 * before later answers can arrive.
 */
export interface MailSource {
  /**
   * The messages at the source now. `known` is what state remembers (by key), so that a source
   * able to list incrementally need not list what was ingested already; POP3 ignores it.
   */
  list(known: ReadonlyMap<string, StateEntry>): Promise<SourceListing>;
  /**
   * Marked messages stay at the source (IMAP flags): their keys stay in state after close(),
   * since they are still there to be listed. Absent or false: a mark removes the message.
   */
  readonly keepsMarked?: boolean;
  /** The message's raw bytes, byte-exact, with backpressure. */
  fetch(message: SourceMessage): Promise<Readable>;
  /**
   * Marks a fully committed message done (POP3 DELE). It takes effect only when close()
   * succeeds; a source that applies marks at once must say so here, since callers rely on it.
   */
  markDone(message: SourceMessage): Promise<void>;
  /** Ends the session and commits its marks (POP3 QUIT, RFC 1939 §6); rejects if unconfirmed. */
  close(): Promise<void>;
  /** Drops the connection: no mark of this session takes effect. */
  abort(): void;
}
