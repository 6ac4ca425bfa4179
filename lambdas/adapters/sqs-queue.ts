/**
 * {@link MessageQueue} on SQS. Batching, the SQS limits and the retry rule live in
 * {@link sendBatches} (`sqs-batch.ts`), shared with the handlers' jobs queue. On FIFO queues each
 * entry carries MessageDeduplicationId = its id, so a resend within SQS's 5-minute window is
 * dropped by SQS.
 */

import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { MessageQueue, QueueEntry } from "../ports.ts";
import {
  DEFAULT_RETRY_BASE_MS,
  DEFAULT_SEND_ATTEMPTS,
  SQS_MAX_BODY_BYTES,
  sendBatches,
} from "./sqs-batch.ts";

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
  /**
   * The queue's MaximumMessageSize, bytes (a queue may be configured below SQS's 1 MiB); the
   * session sends the pointer form of a message whose full body exceeds it.
   * @default SQS_MAX_BODY_BYTES
   */
  readonly maxBodyBytes?: number;
}

export class SqsQueue implements MessageQueue {
  readonly maxBodyBytes: number;
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
    this.maxAttempts = options.maxAttempts ?? DEFAULT_SEND_ATTEMPTS;
    this.baseDelayMs = options.baseDelayMs ?? DEFAULT_RETRY_BASE_MS;
    this.maxBodyBytes = Math.min(options.maxBodyBytes ?? SQS_MAX_BODY_BYTES, SQS_MAX_BODY_BYTES);
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
    await sendBatches(
      (input) => this.client.send(new SendMessageBatchCommand(input)),
      this.queueUrl,
      entries.map((entry) => ({
        key: entry.id,
        entry: {
          MessageBody: entry.body,
          ...(this.fifo
            ? { MessageGroupId: this.groupId(entry), MessageDeduplicationId: entry.id }
            : {}),
        },
      })),
      { maxAttempts: this.maxAttempts, baseDelayMs: this.baseDelayMs },
    );
  }
}
