/** The public shape of one mailbox session: what callers (CLI, Lambda poller) pass and get back. */
import type { MailboxConfig } from "../config/index.ts";
import type { ErrorCode } from "../errors.ts";
import type {
  LockHolder,
  LockOptions,
  MailboxLock,
  MailSource,
  MessageQueue,
  ObjectStore,
  StateStore,
} from "../ports.ts";
import type { FetchGate } from "./fetch-gate.ts";

/** Opens an authenticated source for a mailbox: the session's only way to reach a server. */
export type OpenSource = (
  mailbox: MailboxConfig,
  credentials: SessionCredentials,
) => Promise<MailSource>;

/** Structured log sink; the CLI prints, the Lambda forwards to Powertools Logger. */
export interface SessionLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface SessionDeps {
  readonly store: ObjectStore;
  readonly queue: MessageQueue;
  readonly state: StateStore;
  /**
   * Taken before connecting and released after QUIT, so overlapping runs never share a mailbox
   * (the POP3 server need not lock the maildrop). Without it, nothing is locked.
   */
  readonly lock?: MailboxLock;
  /**
   * Opens the mailbox's source: POP3 by default ({@link pop3Source}); tests wrap its connect to
   * trace the protocol or reach a hostile server.
   */
  readonly openSource?: OpenSource;
  readonly now?: () => Date;
  readonly log?: SessionLogger;
}

/** Credentials resolved from the mailbox's secret: a password, or an OAuth2 access token. */
export interface SessionCredentials {
  readonly password?: string;
  readonly accessToken?: string;
}

export interface SessionProgress {
  readonly mailbox: string;
  readonly phase: "connecting" | "listing" | "ingesting" | "deleting" | "done";
  readonly messagesDone: number;
  readonly messagesTotal: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export interface SessionOptions {
  readonly credentials: SessionCredentials;
  /** Epoch ms. No RETR starts after it; the session then QUITs cleanly so DELEs commit. */
  readonly deadline?: number;
  /** Aborting finishes the message in flight, then QUITs (SIGINT/SIGTERM in daemon mode). */
  readonly signal?: AbortSignal;
  /**
   * Epoch ms at which the mailbox lock lapses if never released: the Lambda's timeout plus a
   * margin. Without it the lock (an S3 lease) has a TTL that is renewed while the session runs.
   */
  readonly lockExpiresAt?: number;
  /** Shares the lock with holders that are exclusive among themselves ({@link LockOptions.shared}). */
  readonly lockShared?: LockOptions["shared"];
  readonly onProgress?: (progress: SessionProgress) => void;
  /**
   * The memory bound shared with the other sessions of this process (fetch-gate.ts); without it
   * the session's own windows are its only bound.
   */
  readonly fetchGate?: FetchGate;
}

export interface MailboxReport {
  readonly id: string;
  /**
   * True once the server's listing and the mailbox's state were both read. Until then `listed`,
   * `new` and `remaining` are unknown, not zero: a session that failed before it (login, a
   * missing bucket) must not read as an empty mailbox.
   */
  listingComplete?: boolean;
  /** Messages on the server (LIST). */
  listed: number;
  /** Messages not yet ingested according to the UIDL state. */
  new: number;
  ingested: number;
  /**
   * Skipped this run: too large (LIST), a copy found after a UIDL reset, or refused by the source
   * in several polls in a row (ingest/refusals.ts). None of them counts as backlog.
   */
  skipped: number;
  failed: number;
  deleted: number;
  /** Raw bytes ingested this run. */
  bytes: number;
  durationMs: number;
  /** New messages left on the server because a cap or the deadline stopped the run. */
  remaining: number;
  warnings: string[];
  /**
   * Ids of messages the deadline kept from being downloaded this run: abandoned mid-download,
   * or not started because the measured throughput said they could not finish in time.
   */
  stalled?: string[];
  /**
   * Set when another process holds the mailbox's lock: this run skipped the mailbox (a warning,
   * not an error; the next run polls it).
   */
  lockedBy?: LockHolder;
  /** Set when the session as a whole failed; names the cause, never a secret. */
  error?: string;
  errorCode?: ErrorCode;
}
