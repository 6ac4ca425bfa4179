/**
 * Queue message schema v2: the TypeScript side of `schema/queue-message.v2.json`. The two describe
 * the same shape; the unit tests validate built messages against the JSON Schema so they cannot
 * drift apart silently. (`schema/queue-message.v1.json` stays published as history; nothing
 * produces v1 any more.)
 *
 * A queue body is one of two forms, told apart by `pointer`:
 * - the full form ({@link QueueMessageV2}): everything consumers need, inline;
 * - the pointer form ({@link QueuePointerV2}, `pointer: true`): sent when the full form would not
 *   fit the queue's body limit (e.g. thousands of attachments). It carries the identity fields and
 *   `meta`, the location of the full form written to `meta/{mailbox}/{id}.json`. *
 * This module describes the pipeline's output, not MIME. The content fields come from the MIME
 * parser's {@link ParsedMessage} (`lambdas/mime/parsed.ts`), so the dependency runs one way, from
 * here to `mime/`; they are re-exported so that consumers of the schema import from one place.
 */
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { ParsedMessage } from "../mime/parsed.ts";
import type { MessageOrigin } from "../ports.ts";

export type { AuthResults, AuthResultValue } from "../mime/auth-results.ts";
export type {
  Address,
  AttachmentMeta,
  BodyPart,
  HeaderField,
  MessageHeaders,
  ParsedMessage,
  Security,
  SpamVerdict,
} from "../mime/parsed.ts";
export { INLINE_BODY_BYTES } from "../mime/parsed.ts";
export type { MessageOrigin } from "../ports.ts";

export const SCHEMA_VERSION = 2;

/** Headroom kept below the queue's body limit for message attributes and envelope overhead. */
export const QUEUE_BODY_MARGIN_BYTES = 16 * 1024;

/** A stored object: its key relative to the store root and its stable URI. */
export interface ObjectRef {
  key: string;
  /** `s3://bucket/key` or `file:///abs/path`. */
  uri: string;
}

export interface RawRef extends ObjectRef {
  /** S3 bucket; absent for the fs store. */
  bucket?: string;
}

export interface QueueIdentity {
  schemaVersion: 2;
  /** Deterministic 32-hex message id: the dedupe key. */
  id: string;
  mailbox: string;
  /** Where the message came from (POP3 UIDL, or IMAP folder, UIDVALIDITY and UID). */
  source: MessageOrigin;
  /** ISO-8601 instant. */
  ingestedAt: string;
  /** Raw message size in bytes. */
  size: number;
  /** sha256 of the raw bytes, hex. */
  sha256: string;
  raw: RawRef;
}

/** The full form: the identity fields plus what the MIME parser extracted (see {@link ParsedMessage}). */
export interface QueueMessageV2 extends QueueIdentity, ParsedMessage {}

export interface QueuePointerV2 extends QueueIdentity {
  pointer: true;
  /** Where the full {@link QueueMessageV2} is stored. */
  meta: ObjectRef;
}

export type QueueBodyV2 = QueueMessageV2 | QueuePointerV2;

export interface QueueMessageInput {
  id: string;
  mailbox: string;
  source: MessageOrigin;
  ingestedAt: Date | string;
  size: number;
  sha256: string;
  raw: RawRef;
  parsed: ParsedMessage;
}

/** Builds the full v2 message. Optional fields are omitted, never set to undefined. */
export function buildQueueMessage(input: QueueMessageInput): QueueMessageV2 {
  const { parsed } = input;
  const raw: RawRef = { key: input.raw.key, uri: input.raw.uri };
  if (input.raw.bucket !== undefined) raw.bucket = input.raw.bucket;
  const message: QueueMessageV2 = {
    schemaVersion: SCHEMA_VERSION,
    id: input.id,
    mailbox: input.mailbox,
    source: copySource(input.source),
    ingestedAt:
      typeof input.ingestedAt === "string" ? input.ingestedAt : input.ingestedAt.toISOString(),
    size: input.size,
    sha256: input.sha256,
    raw,
    headers: parsed.headers,
    attachments: parsed.attachments,
    headerList: parsed.headerList,
  };
  if (parsed.text !== undefined) message.text = parsed.text;
  if (parsed.html !== undefined) message.html = parsed.html;
  if (parsed.textPreview !== undefined) message.textPreview = parsed.textPreview;
  if (parsed.textReply !== undefined) message.textReply = parsed.textReply;
  if (parsed.authResults !== undefined) message.authResults = parsed.authResults;
  if (parsed.security !== undefined) message.security = parsed.security;
  if (parsed.spam !== undefined) message.spam = parsed.spam;
  if (parsed.headerListTruncated === true) message.headerListTruncated = true;
  if (parsed.parseError !== undefined) message.parseError = parsed.parseError;
  if (parsed.truncated === true) message.truncated = true;
  return message;
}

/** A plain copy of `origin` holding exactly the schema's fields, whatever else the object carries. */
function copySource(origin: MessageOrigin): MessageOrigin {
  return origin.protocol === "pop3"
    ? { protocol: "pop3", uidl: origin.uidl }
    : {
        protocol: "imap",
        folder: origin.folder,
        uidValidity: origin.uidValidity,
        uid: origin.uid,
      };
}

/** The pointer form of `message`, referring to its full form stored at `metaRef`. */
export function toPointer(message: QueueMessageV2, metaRef: ObjectRef): QueuePointerV2 {
  return {
    schemaVersion: SCHEMA_VERSION,
    id: message.id,
    mailbox: message.mailbox,
    source: message.source,
    ingestedAt: message.ingestedAt,
    size: message.size,
    sha256: message.sha256,
    raw: message.raw,
    pointer: true,
    meta: { key: metaRef.key, uri: metaRef.uri },
  };
}

/** The serialisations of one message: the full JSON, its pointer form, and the queue body. */
export interface QueueBodies {
  /** The full message, as stored in `meta/…`. */
  readonly full: string;
  /** The pointer form, for transports with a smaller limit than the queue's. */
  readonly pointer: string;
  /** What the queue carries: `full` when it fits, else `pointer`. */
  readonly body: string;
}

/**
 * Serialises `message` once for every use. The queue body is the full JSON when it fits in
 * `maxBodyBytes` less {@link QUEUE_BODY_MARGIN_BYTES} (UTF-8 bytes), else the pointer form.
 * Throws MESSAGE_TOO_LARGE only if even the pointer does not fit, which means the limit is
 * misconfigured.
 */
export function queueBodies(
  message: QueueMessageV2,
  maxBodyBytes: number,
  metaRef: ObjectRef,
): QueueBodies {
  const full = JSON.stringify(message);
  const pointer = JSON.stringify(toPointer(message, metaRef));
  if (Buffer.byteLength(full, "utf8") <= maxBodyBytes - QUEUE_BODY_MARGIN_BYTES) {
    return { full, pointer, body: full };
  }
  if (Buffer.byteLength(pointer, "utf8") > maxBodyBytes) {
    throw new MailIngestError(
      ErrorCode.MESSAGE_TOO_LARGE,
      `Queue pointer for message ${message.id} exceeds the queue body limit of ${maxBodyBytes} bytes`,
    );
  }
  return { full, pointer, body: pointer };
}

/** The queue body alone (see {@link queueBodies}). */
export function toQueueBody(
  message: QueueMessageV2,
  maxBodyBytes: number,
  metaRef: ObjectRef,
): string {
  return queueBodies(message, maxBodyBytes, metaRef).body;
}
