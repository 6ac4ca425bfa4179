/**
 * The library entry point, `import … from "mail-ingest"`. Everything exported here is the public
 * API and follows semver; deep imports into `dist/` are internal and may change in any release.
 *
 * The pieces compose the same way the CLI and the poller compose them: parse a config, build
 * adapters for it, and run one session per mailbox.
 */

export { EventBridgeFanout, type EventBridgeFanoutOptions } from "./adapters/eventbridge-fanout.ts";
export { FsMailboxLock } from "./adapters/fs-lock.ts";
export { FsQueue, type FsQueueOptions } from "./adapters/fs-queue.ts";
export { FsStateStore, type FsStateStoreOptions } from "./adapters/fs-state.ts";
export { FsObjectStore, type FsObjectStoreOptions } from "./adapters/fs-store.ts";
export { type Adapters, createAdapters } from "./adapters/index.ts";
export { S3MailboxLease } from "./adapters/object-lease.ts";
export { ObjectStateStore, type ObjectStateStoreOptions } from "./adapters/object-state.ts";
export { joinListing, openMailbox, pop3Source } from "./adapters/pop3-source.ts";
export { S3ObjectStore, type S3ObjectStoreOptions } from "./adapters/s3-store.ts";
export { SqsQueue, type SqsQueueOptions } from "./adapters/sqs-queue.ts";
export {
  type AppConfig,
  ConfigError,
  type DeletePolicy,
  type FsQueueConfig,
  type FsStorageConfig,
  isValidMailboxId,
  loadConfigFile,
  MAILBOX_ID_PATTERN,
  type MailboxConfig,
  type MailboxInput,
  parseConfig,
  type QueueConfig,
  type S3StorageConfig,
  type SecretSource,
  type SqsQueueConfig,
  type StorageConfig,
} from "./config/index.ts";
export { describeError, ErrorCode, isMailIngestError, MailIngestError } from "./errors.ts";
export { messageId } from "./ingest/keys.ts";
export {
  classifyOutcome,
  type PollMailboxOptions,
  type PollOutcome,
  type PollResult,
  pollMailbox,
} from "./ingest/poll-mailbox.ts";
export { emptyReport, runMailbox } from "./ingest/session.ts";
export type {
  MailboxReport,
  OpenSource,
  SessionCredentials,
  SessionDeps,
  SessionLogger,
  SessionOptions,
  SessionProgress,
} from "./ingest/types.ts";
export type {
  Address,
  AttachmentMeta,
  AuthResults,
  AuthResultValue,
  BodyPart,
  HeaderField,
  MessageHeaders,
  MessageOrigin,
  ObjectRef,
  QueueBodyV2,
  QueueIdentity,
  QueueMessageV2,
  QueuePointerV2,
  RawRef,
  Security,
  SpamVerdict,
} from "./message/schema.ts";
export { INLINE_BODY_BYTES, SCHEMA_VERSION } from "./message/schema.ts";
export {
  type AuthMethod,
  type Capabilities,
  isTransient,
  type ListEntry,
  limits,
  Pop3Client,
  type Pop3Credentials,
  type Pop3Options,
  Pop3ServerError,
  type TlsMode,
  type TraceEvent,
  type UidlEntry,
} from "./pop3/index.ts";
export type {
  HeldLock,
  LockHolder,
  LockOptions,
  LockResult,
  MailboxLock,
  MailSource,
  MessageQueue,
  ObjectStore,
  PutOptions,
  PutResult,
  QueueEntry,
  SourceMessage,
  StateEntry,
  StateLoadOptions,
  StateStore,
} from "./ports.ts";
