/**
 * {@link MessageQueue} on SQS. Entries go out in SendMessageBatch calls of at most 10 entries and
 * at most 1 MiB of bodies (both SQS limits). Entries a batch reports as failed for a transient
 * reason are retried with exponential backoff and full jitter; sender faults (the request itself
 * is wrong) fail at once. Whole-request errors have already been retried by the SDK's own retry
 * strategy, so they fail the send. On FIFO queues each entry carries MessageDeduplicationId = its
 * id, so a resend within SQS's 5-minute window is dropped by SQS.
 */

import { setTimeout as sleep } from "node:timers/promises";
import {
  type BatchResultErrorEntry,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { MessageQueue, QueueEntry } from "../ports.ts";

/** SQS limits: one message, and one whole batch request, may carry at most 1 MiB (1,048,576 B). */
export const SQS_MAX_BODY_BYTES = 1_048_576;
export const SQS_MAX_BATCH_BYTES = 1_048_576;
/** SendMessageBatch takes at most 10 entries. */
export const SQS_MAX_BATCH_ENTRIES = 10;

export interface SqsQueueOptions {
  readonly client: SQSClient;
  readonly queueUrl: string;
  /** @default true when the queue URL ends with `.fifo` */
  readonly fifo?: boolean;
  /** FIFO message group; entries in one group are delivered in order. @default the entry id */
  readonly groupId?: (entry: QueueEntry) => string;
  /** Attempts per entry for transient batch-entry failures. @default 5 */
  readonly maxAttempts?: number;
  /** First retry delay in ms; doubles each attempt (full jitter). @default 100 */
  readonly baseDelayMs?: number;
}

export class SqsQueue implements MessageQueue {
  readonly maxBodyBytes = SQS_MAX_BODY_BYTES;
  readonly queueUrl: string;
  readonly fifo: boolean;
  private readonly client: SQSClient;
  private readonly groupId: (entry: QueueEntry) => string;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;

  constructor(options: SqsQueueOptions) {
    this.client = options.client;
    this.queueUrl = options.queueUrl;
    this.fifo = options.fifo ?? options.queueUrl.endsWith(".fifo");
    this.groupId = options.groupId ?? ((entry) => entry.id);
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.baseDelayMs = options.baseDelayMs ?? 100;
  }

  async send(entries: readonly QueueEntry[]): Promise<void> {
    for (const entry of entries) {
      if (Buffer.byteLength(entry.body, "utf8") > this.maxBodyBytes) {
        throw new MailIngestError(
          ErrorCode.QUEUE_FAILED,
          `Queue entry ${entry.id} exceeds ${this.maxBodyBytes} bytes`,
        );
      }
    }
    for (const batch of batches(entries)) {
      await this.sendBatch(batch);
    }
  }

  /** Sends one batch, retrying only the entries SQS reports as failed. */
  private async sendBatch(batch: readonly QueueEntry[]): Promise<void> {
    let pending = batch;
    for (let attempt = 1; ; attempt += 1) {
      // Batch entry Ids only need to be unique within the request and SQS restricts their
      // alphabet, so use positions rather than the (possibly longer, dotted) entry ids.
      const request: SendMessageBatchRequestEntry[] = pending.map((entry, index) => ({
        Id: String(index),
        MessageBody: entry.body,
        ...(this.fifo
          ? { MessageGroupId: this.groupId(entry), MessageDeduplicationId: entry.id }
          : {}),
      }));
      let failed: readonly BatchResultErrorEntry[];
      let succeeded: ReadonlySet<string>;
      try {
        const out = await this.client.send(
          new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: request }),
        );
        failed = out.Failed ?? [];
        succeeded = new Set((out.Successful ?? []).map((ok) => ok.Id ?? ""));
      } catch (err) {
        throw new MailIngestError(
          ErrorCode.QUEUE_FAILED,
          `SendMessageBatch failed for ${describeIds(pending)}`,
          { cause: err },
        );
      }
      const permanent = failed.filter((f) => f.SenderFault === true);
      if (permanent.length > 0) {
        const ids = permanent.map((f) => pending[Number(f.Id)]?.id ?? `#${f.Id}`);
        throw new MailIngestError(
          ErrorCode.QUEUE_FAILED,
          `SQS rejected ${ids.join(", ")}: ${permanent[0]?.Code ?? "unknown"}`,
        );
      }
      // Anything not explicitly successful is retried, including entries missing from both lists.
      const retry = pending.filter((_entry, index) => !succeeded.has(String(index)));
      if (retry.length === 0) return;
      if (attempt >= this.maxAttempts) {
        const codes = [...new Set(failed.map((f) => f.Code ?? "unknown"))].join(", ");
        throw new MailIngestError(
          ErrorCode.QUEUE_FAILED,
          `SQS did not accept ${describeIds(retry)} after ${attempt} attempts (${codes})`,
        );
      }
      await sleep(Math.random() * this.baseDelayMs * 2 ** (attempt - 1));
      pending = retry;
    }
  }
}

/** Splits entries into SendMessageBatch-sized groups: ≤ 10 entries and ≤ 1 MiB of bodies. */
export function batches(entries: readonly QueueEntry[]): QueueEntry[][] {
  const out: QueueEntry[][] = [];
  let current: QueueEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = Buffer.byteLength(entry.body, "utf8");
    if (
      current.length > 0 &&
      (current.length === SQS_MAX_BATCH_ENTRIES || bytes + size > SQS_MAX_BATCH_BYTES)
    ) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

function describeIds(entries: readonly QueueEntry[]): string {
  const shown = entries.slice(0, 20).map((e) => e.id);
  const more = entries.length - shown.length;
  return more > 0 ? `${shown.join(", ")} and ${more} more` : shown.join(", ");
}
