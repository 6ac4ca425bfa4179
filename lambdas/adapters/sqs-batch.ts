/**
 * The one SQS SendMessageBatch sender, used by the output queue adapter ({@link SqsQueue}) and by
 * the handlers' jobs queue. Entries go out in requests of at most 10 entries and 1 MiB of bodies
 * (both SQS limits). One retry rule:
 *
 * - an entry SQS does not list as successful is retried, whether it is in `Failed` with a
 *   transient code (throttling, internal errors) or missing from both lists (SQS promises one or
 *   the other; counting a missing entry as sent could lose it, a resend cannot double it);
 * - retries wait with exponential back-off and full jitter, so pollers that were throttled
 *   together do not retry together;
 * - a sender fault (the request itself is wrong) fails at once: resending cannot fix it;
 * - a whole-request error fails at once too: the SDK's own retry strategy has already retried it.
 *
 * Resends are safe on FIFO queues because every entry carries a MessageDeduplicationId: SQS drops
 * a second copy within its 5-minute deduplication window.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type {
  BatchResultErrorEntry,
  SendMessageBatchCommandInput,
  SendMessageBatchRequestEntry,
} from "@aws-sdk/client-sqs";
import { ErrorCode, MailIngestError } from "../errors.ts";

/** SQS limits: one message, and one whole batch request, may carry at most 1 MiB (1,048,576 B). */
export const SQS_MAX_BODY_BYTES = 1_048_576;
export const SQS_MAX_BATCH_BYTES = 1_048_576;
/** SendMessageBatch takes at most 10 entries. */
export const SQS_MAX_BATCH_ENTRIES = 10;
/** Attempts per entry for transient failures. */
export const DEFAULT_SEND_ATTEMPTS = 5;
/** First retry's upper delay bound, ms; doubles each attempt (full jitter). */
export const DEFAULT_RETRY_BASE_MS = 100;

/** The one SQS call a sender makes; an `SQSClient` adapts with `(i) => client.send(new SendMessageBatchCommand(i))`. */
export type SendMessageBatch = (input: SendMessageBatchCommandInput) => Promise<{
  readonly Successful?: readonly { readonly Id?: string }[];
  readonly Failed?: readonly BatchResultErrorEntry[];
}>;

/** One message to send; `Id` is assigned per request (positions: SQS restricts its alphabet). */
export interface BatchMessage {
  /** Names the message in errors (a queue entry id, a job's deduplication id); never sent. */
  readonly key: string;
  readonly entry: Omit<SendMessageBatchRequestEntry, "Id">;
}

export interface SendBatchesOptions {
  /** Prefixes error messages, e.g. `jobs queue`. */
  readonly label?: string;
  /** @default {@link DEFAULT_SEND_ATTEMPTS} */
  readonly maxAttempts?: number;
  /** @default {@link DEFAULT_RETRY_BASE_MS} */
  readonly baseDelayMs?: number;
}

/** Sends every message, in request-sized groups, under the retry rule of the module comment. */
export async function sendBatches(
  send: SendMessageBatch,
  queueUrl: string,
  messages: readonly BatchMessage[],
  options: SendBatchesOptions = {},
): Promise<void> {
  for (const batch of batches(messages, (m) => m.entry.MessageBody ?? "")) {
    await sendOneBatch(send, queueUrl, batch, options);
  }
}

async function sendOneBatch(
  send: SendMessageBatch,
  queueUrl: string,
  batch: readonly BatchMessage[],
  options: SendBatchesOptions,
): Promise<void> {
  const maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_SEND_ATTEMPTS);
  const baseDelayMs = options.baseDelayMs ?? DEFAULT_RETRY_BASE_MS;
  const fail = (message: string, cause?: unknown) =>
    new MailIngestError(
      ErrorCode.QUEUE_FAILED,
      options.label ? `${options.label}: ${message}` : message,
      cause === undefined ? undefined : { cause },
    );
  let pending = batch;
  for (let attempt = 1; ; attempt += 1) {
    const entries = pending.map((m, index) => ({ ...m.entry, Id: String(index) }));
    let failed: readonly BatchResultErrorEntry[];
    let succeeded: ReadonlySet<string>;
    try {
      const out = await send({ QueueUrl: queueUrl, Entries: entries });
      failed = out.Failed ?? [];
      succeeded = new Set((out.Successful ?? []).map((ok) => ok.Id ?? ""));
    } catch (err) {
      throw fail(`SendMessageBatch failed for ${describeKeys(pending)}`, err);
    }
    const permanent = failed.filter((f) => f.SenderFault === true);
    if (permanent.length > 0) {
      const keys = permanent.map((f) => pending[Number(f.Id)]?.key ?? `#${f.Id}`);
      const first = permanent[0];
      throw fail(
        `SQS rejected ${keys.join(", ")}: ${first?.Code ?? "unknown"}${first?.Message ? ` (${first.Message})` : ""}`,
      );
    }
    const retry = pending.filter((_m, index) => !succeeded.has(String(index)));
    if (retry.length === 0) return;
    if (attempt >= maxAttempts) {
      const codes = [...new Set(failed.map((f) => f.Code ?? "unknown"))].join(", ");
      throw fail(
        `SQS did not accept ${describeKeys(retry)} after ${attempt} attempts (${codes || "no result"})`,
      );
    }
    await sleep(Math.random() * baseDelayMs * 2 ** (attempt - 1));
    pending = retry;
  }
}

/** Splits items into SendMessageBatch-sized groups: ≤ 10 entries and ≤ 1 MiB of bodies. */
export function batches<T>(items: readonly T[], body: (item: T) => string): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = Buffer.byteLength(body(item), "utf8");
    if (
      current.length > 0 &&
      (current.length === SQS_MAX_BATCH_ENTRIES || bytes + size > SQS_MAX_BATCH_BYTES)
    ) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

function describeKeys(messages: readonly BatchMessage[]): string {
  const shown = messages.slice(0, 20).map((m) => m.key);
  const more = messages.length - shown.length;
  return more > 0 ? `${shown.join(", ")} and ${more} more` : shown.join(", ");
}
