/**
 * The use case "replay a mailbox": re-send the metadata stored under `meta/{mailbox}/` to the
 * queue, for a consumer that lost messages (an outage longer than the output queue's retention,
 * a purged queue). It reads only the store and writes only the queue: nothing is fetched from
 * the mail server, and state is untouched.
 *
 * - Each stored metadata object is the full form exactly as it was built at ingest. It is sent
 *   as stored when it fits the queue's limit (the same rule as at ingest, {@link queueBodies}),
 *   else in pointer form referring to that object.
 * - Memory is bounded: keys stream from the store's listing, and at most one queue batch
 *   (one SQS batch, SQS_MAX_BATCH_ENTRIES) is held at a time.
 * - A replayed message carries its original `id`, so consumers dedupe it like any redelivery.
 *   A FIFO queue drops an `id` it has seen in the last 5 minutes (its deduplication window).
 */

import { SQS_MAX_BATCH_ENTRIES } from "../adapters/sqs-batch.ts";
import { describeError, ErrorCode, MailIngestError, mailboxMessage } from "../errors.ts";
import { QUEUE_BODY_MARGIN_BYTES, type QueueIdentity, toPointer } from "../message/schema.ts";
import type { MessageOrigin, MessageQueue, ObjectStore, QueueEntry } from "../ports.ts";
import { isRecord } from "../util/is-record.ts";
import { storageError } from "./commit.ts";
import { metaKey } from "./keys.ts";

export interface ReplayOptions {
  /** Only messages whose `ingestedAt` is at or after this instant. */
  readonly since?: Date;
  /** Told about each metadata object that cannot be replayed (it is skipped). */
  readonly onWarning?: (message: string) => void;
}

export interface ReplayReport {
  readonly mailbox: string;
  /** Metadata objects found under `meta/{mailbox}/`. */
  found: number;
  /** Sent to the queue, full or pointer form. */
  replayed: number;
  /** Of those, sent in pointer form because the full form exceeds the queue's limit. */
  pointers: number;
  /** Left out by `since`. */
  older: number;
  /** Unreadable or not a metadata object of this mailbox; each was named in a warning. */
  invalid: number;
}

const MESSAGE_ID = /^[0-9a-f]{32}$/;
/** Metadata objects are a few KiB; a larger one is not ours, and is not read into memory. */
const MAX_META_BYTES = 64 * 1024 * 1024;

/**
 * Replays one mailbox's stored metadata to `queue`. Throws a {@link MailIngestError} naming the
 * mailbox when the store or the queue fails; what was sent before that stays sent.
 */
export async function replayMailbox(
  mailbox: string,
  store: ObjectStore,
  queue: MessageQueue,
  options: ReplayOptions = {},
): Promise<ReplayReport> {
  const report: ReplayReport = {
    mailbox,
    found: 0,
    replayed: 0,
    pointers: 0,
    older: 0,
    invalid: 0,
  };
  const since = options.since?.getTime();
  const skip = (key: string, why: string) => {
    report.invalid++;
    options.onWarning?.(mailboxMessage(mailbox, `${key} skipped: ${why}`));
  };
  let batch: { entry: QueueEntry; pointer: boolean }[] = [];
  /** The queue's failure, already naming the mailbox; any other failure is the store's. */
  let queueFailure: MailIngestError | undefined;
  const flush = async () => {
    if (batch.length === 0) return;
    const sending = batch;
    batch = [];
    try {
      await queue.send(sending.map((b) => b.entry));
    } catch (err) {
      queueFailure = failed(mailbox, storageError(ErrorCode.QUEUE_FAILED, "queueing", err));
      throw queueFailure;
    }
    report.replayed += sending.length;
    report.pointers += sending.filter((b) => b.pointer).length;
  };

  try {
    for await (const key of store.list(`meta/${mailbox}/`)) {
      const id = /^meta\/[^/]+\/([^/]+)\.json$/.exec(key)?.[1];
      if (id === undefined || !MESSAGE_ID.test(id) || key !== metaKey(mailbox, id)) continue;
      report.found++;
      const text = await readText(store, key);
      if (text === undefined) {
        skip(key, "it vanished or is too large to be metadata");
        continue;
      }
      const identity = parseIdentity(text);
      if (identity === undefined || identity.id !== id || identity.mailbox !== mailbox) {
        skip(key, "not a queue message of this mailbox");
        continue;
      }
      if (since !== undefined && Date.parse(identity.ingestedAt) < since) {
        report.older++;
        continue;
      }
      const fits = Buffer.byteLength(text, "utf8") <= queue.maxBodyBytes - QUEUE_BODY_MARGIN_BYTES;
      const body = fits ? text : JSON.stringify(toPointer(identity, { key, uri: store.uri(key) }));
      batch.push({ entry: { id, body }, pointer: !fits });
      if (batch.length >= SQS_MAX_BATCH_ENTRIES) await flush();
    }
    await flush();
  } catch (err) {
    if (err === queueFailure) throw err;
    throw failed(mailbox, storageError(ErrorCode.STORE_FAILED, "reading stored metadata", err));
  }
  return report;
}

function failed(mailbox: string, err: MailIngestError): MailIngestError {
  return new MailIngestError(err.code, mailboxMessage(mailbox, describeError(err)), { cause: err });
}

/** The object's text, or undefined when it is gone or larger than any metadata object. */
async function readText(store: ObjectStore, key: string): Promise<string | undefined> {
  const body = await store.get(key);
  if (!body) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_META_BYTES) {
      body.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The identity fields of a stored queue message, checked one by one; undefined if any is off. */
function parseIdentity(text: string): QueueIdentity | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(json) || !isRecord(json.raw)) return undefined;
  const { schemaVersion, id, mailbox, source, ingestedAt, size, sha256, raw } = json;
  const origin = parseSource(source);
  if (
    schemaVersion !== 2 ||
    typeof id !== "string" ||
    typeof mailbox !== "string" ||
    origin === undefined ||
    typeof ingestedAt !== "string" ||
    !Number.isFinite(Date.parse(ingestedAt)) ||
    typeof size !== "number" ||
    typeof sha256 !== "string" ||
    typeof raw.key !== "string" ||
    typeof raw.uri !== "string" ||
    (raw.bucket !== undefined && typeof raw.bucket !== "string")
  ) {
    return undefined;
  }
  const rawRef =
    typeof raw.bucket === "string"
      ? { key: raw.key, uri: raw.uri, bucket: raw.bucket }
      : { key: raw.key, uri: raw.uri };
  return { schemaVersion, id, mailbox, source: origin, ingestedAt, size, sha256, raw: rawRef };
}

/** The schema v2 `source` object, copied field by field; undefined if it is not one. */
function parseSource(source: unknown): MessageOrigin | undefined {
  if (!isRecord(source)) return undefined;
  if (source.protocol === "pop3" && typeof source.uidl === "string") {
    return { protocol: "pop3", uidl: source.uidl };
  }
  const { folder, uidValidity, uid } = source;
  if (
    source.protocol === "imap" &&
    typeof folder === "string" &&
    Number.isSafeInteger(uidValidity) &&
    Number.isSafeInteger(uid)
  ) {
    return { protocol: "imap", folder, uidValidity: uidValidity as number, uid: uid as number };
  }
  return undefined;
}
