/**
 * One message, from the source's bytes to stored objects:
 *
 *   fetch ─▶ meter (size, sha256, byte limit) ─┬─ raw store (create-only)
 *                                              └─ MIME parse → parts store
 *
 * then, in {@link describeStored}, the metadata object and the queue and state entries that the
 * commit sequence takes from there. Bytes stay Buffers end to end, with backpressure from the
 * slower consumer back to the socket.
 */
import { createHash } from "node:crypto";
import { PassThrough, type Readable, Writable } from "node:stream";
import type { MailboxConfig } from "../config/index.ts";
import { ErrorCode, isMailIngestError, MailIngestError } from "../errors.ts";
import { buildQueueMessage, type ParsedMessage, queueBodies } from "../message/schema.ts";
import { parseMessage, prepareParser } from "../mime/parse.ts";
import type { ObjectStore, SourceMessage } from "../ports.ts";
import { pipeInto } from "../util/pipe.ts";
import { type Committable, storageError } from "./commit.ts";
import { messageId, metaKey, partsPrefix, rawKey } from "./keys.ts";

/** Bytes a body may exceed maxMessageBytes by (line-ending differences) before it is cut off. */
export const RUNAWAY_SLACK_BYTES = 64 * 1024;

export interface MessageContext {
  readonly mailbox: MailboxConfig;
  readonly store: ObjectStore;
  /** Called with each chunk's length as it streams (progress, throughput). */
  readonly onBytes: (bytes: number) => void;
  /** The body is streaming; the caller may destroy it (with a DEADLINE error) to abandon it. */
  readonly onStreaming: (body: Readable) => void;
}

/** What became of one fetch. */
export type FetchOutcome =
  /** Raw and parts are stored; metadata is not written yet. */
  | {
      readonly kind: "stored";
      readonly id: string;
      readonly size: number;
      readonly sha256: string;
      readonly parsed: ParsedMessage;
    }
  /** The source refused this one message (POP3 -ERR): only it is skipped. */
  | { readonly kind: "refused"; readonly error: MailIngestError }
  /** The body ran past maxMessageBytes; the source discarded the rest, so the session goes on. */
  | { readonly kind: "runaway"; readonly error: MailIngestError }
  /** The deadline came first; nothing of it was committed (the raw put is atomic). */
  | { readonly kind: "abandoned"; readonly bytes: number };

/**
 * Fetches and stores one message, calling `streamed` once its bytes are all off the connection
 * (the next body may then flow). Throws when the connection or the storage can no longer be used.
 */
export async function fetchAndStore(
  ctx: MessageContext,
  message: SourceMessage,
  fetch: Promise<Readable>,
  streamed: () => void,
  deadline?: number,
): Promise<FetchOutcome> {
  const { mailbox, store } = ctx;
  const id = messageId(mailbox.id, message.key);
  let body: Readable;
  try {
    body = await fetch;
  } catch (err) {
    // A -ERR for one message (deleted by another client, server-side error) skips only it.
    if (isMailIngestError(err, ErrorCode.COMMAND_FAILED)) return { kind: "refused", error: err };
    throw err;
  }
  if (deadline !== undefined && Date.now() >= deadline) {
    body.destroy();
    return { kind: "abandoned", bytes: 0 };
  }
  ctx.onStreaming(body);

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
            `RETR ${message.ref} sent more than maxMessageBytes (${mailbox.maxMessageBytes}) although LIST said ${message.size}`,
          ),
        );
        return;
      }
      hash.update(chunk);
      ctx.onBytes(chunk.length);
      const room = writeToOpen([toRaw, toParser], chunk);
      if (room) room.then(() => done(), done);
      else done();
    },
    final: (done: (err?: Error | null) => void) => {
      for (const side of [toRaw, toParser]) if (!side.destroyed) side.end();
      done();
    },
  });
  const retrieved = pipeInto(body, tee);
  retrieved.then(streamed, streamed);
  retrieved.catch((err) => {
    // Forward the cause so both consumers fail instead of waiting on a stream that never ends.
    toRaw.destroy(err);
    toParser.destroy(err);
  });
  // If a consumer fails, keep draining its side (or, once destroyed, the tee skips it) so the
  // body still reaches its terminator and the connection stays usable for QUIT, which commits
  // earlier DELEs.
  const drainOnFailure = (side: PassThrough) => (err: unknown) => {
    side.resume();
    throw err;
  };
  const [fetched, stored, parsed] = await Promise.allSettled([
    retrieved,
    store
      .put(rawKey(mailbox.id, id), toRaw, { contentType: "message/rfc822", ifAbsent: true })
      .catch(drainOnFailure(toRaw)),
    parseMessage(toParser, store, partsPrefix(mailbox.id, id)).catch(drainOnFailure(toParser)),
  ]);
  if (fetched.status === "rejected") {
    if (isMailIngestError(fetched.reason, ErrorCode.DEADLINE))
      return { kind: "abandoned", bytes: size };
    // The client discards the rest of an abandoned body, so the connection stays in step; any
    // other broken fetch leaves it mid-response and nothing more can be sent on it.
    if (isMailIngestError(fetched.reason, ErrorCode.MESSAGE_TOO_LARGE)) {
      return { kind: "runaway", error: fetched.reason };
    }
    throw fetched.reason;
  }
  if (stored.status === "rejected") {
    throw storageError(ErrorCode.STORE_FAILED, "storing the raw message", stored.reason);
  }
  if (parsed.status === "rejected") {
    throw storageError(ErrorCode.STORE_FAILED, "storing message parts", parsed.reason);
  }
  return { kind: "stored", id, size, sha256: hash.digest("hex"), parsed: parsed.value };
}

/**
 * Readies what storing a message needs before its bytes arrive: the MIME parser's modules (tens of
 * milliseconds of main-thread work, once per process). Called once the first fetches are sent, so
 * the load overlaps their round trip instead of following it.
 */
export function prepareToStore(): void {
  prepareParser();
}

/** Writes the metadata object and returns what the commit sequence needs. */
export async function describeStored(
  mailbox: string,
  store: ObjectStore,
  maxQueueBodyBytes: number,
  message: SourceMessage,
  stored: Extract<FetchOutcome, { kind: "stored" }>,
  ingestedAt: string,
): Promise<Committable> {
  const { id, size, sha256, parsed } = stored;
  const raw = rawKey(mailbox, id);
  const queueMessage = buildQueueMessage({
    id,
    mailbox,
    source: message.origin,
    ingestedAt,
    size,
    sha256,
    raw: { key: raw, uri: store.uri(raw), bucket: store.bucket },
    parsed,
  });
  const meta = metaKey(mailbox, id);
  // Once: the fs store's uri is pathToFileURL, tens of microseconds a call.
  const metaUri = store.uri(meta);
  const { full, body, pointer } = queueBodies(queueMessage, maxQueueBodyBytes, {
    key: meta,
    uri: metaUri,
  });
  try {
    await store.put(meta, Buffer.from(full), { contentType: "application/json" });
  } catch (err) {
    throw storageError(ErrorCode.STORE_FAILED, "storing metadata", err);
  }
  return {
    message,
    // The queue body is the metadata object's bytes unless it had to be a pointer.
    entry: { id, body, pointer, ...(body === full ? { sameAs: metaUri } : {}) },
    state: {
      uidl: message.key,
      id,
      ingestedAt,
      size,
      sha256,
      messageId: queueMessage.headers.messageId ?? undefined,
    },
  };
}

/**
 * Writes `chunk` to every side not destroyed; returns a promise when one of them is full, which
 * settles once each full side drains or closes. A side whose consumer failed and destroyed it is
 * skipped: with pipe() it would never emit 'drain', and the fetch would stall mid-body.
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
