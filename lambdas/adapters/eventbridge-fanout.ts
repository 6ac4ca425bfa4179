/**
 * {@link MessageQueue} decorator that also publishes each queue message to an EventBridge bus,
 * for consumers that route on rules rather than poll a queue. The wrapped queue is sent first;
 * an entry counts as sent only once both have accepted it, so a failure is retried by the
 * session like any queue failure (consumers dedupe on `id`, as for SQS redeliveries).
 */
import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
} from "@aws-sdk/client-eventbridge";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { MessageQueue, QueueEntry } from "../ports.ts";

/** PutEvents takes at most 10 entries per call. */
const EVENTS_PER_CALL = 10;
/**
 * EventBridge's 256 KiB limit applies to each entry and to the sum of the entries in one PutEvents
 * request (over it, the whole request fails with a ValidationException). Bodies too large for one
 * entry are sent in pointer form, and requests are cut so their entries stay below the limit.
 */
export const MAX_EVENT_BYTES = 256 * 1024;
/** Room for Source, DetailType and bus name beside the detail. */
const EVENT_MARGIN_BYTES = 1024;
const MAX_ATTEMPTS = 3;

export interface EventBridgeFanoutOptions {
  readonly queue: MessageQueue;
  readonly client: EventBridgeClient;
  readonly eventBusName: string;
  /** @default "mail-ingest" */
  readonly source?: string;
  /** @default "MailIngested" */
  readonly detailType?: string;
}

export class EventBridgeFanout implements MessageQueue {
  readonly maxBodyBytes: number;

  constructor(private readonly options: EventBridgeFanoutOptions) {
    this.maxBodyBytes = options.queue.maxBodyBytes;
  }

  async send(entries: readonly QueueEntry[]): Promise<void> {
    await this.options.queue.send(entries);
    let batch: PutEventsRequestEntry[] = [];
    let batchBytes = 0;
    for (const event of entries.map((e) => this.toEvent(e))) {
      const bytes = entrySize(event);
      const full = batch.length === EVENTS_PER_CALL || batchBytes + bytes >= MAX_EVENT_BYTES;
      if (full && batch.length > 0) {
        await this.put(batch);
        batch = [];
        batchBytes = 0;
      }
      batch.push(event);
      batchBytes += bytes;
    }
    if (batch.length > 0) await this.put(batch);
  }

  private toEvent(entry: QueueEntry): PutEventsRequestEntry {
    return {
      EventBusName: this.options.eventBusName,
      Source: this.options.source ?? "mail-ingest",
      DetailType: this.options.detailType ?? "MailIngested",
      Detail:
        Buffer.byteLength(entry.body) <= MAX_EVENT_BYTES - EVENT_MARGIN_BYTES || !entry.pointer
          ? entry.body
          : entry.pointer,
    };
  }

  /** Retries only the entries EventBridge reports as failed. */
  private async put(events: PutEventsRequestEntry[]): Promise<void> {
    let pending = events;
    for (let attempt = 1; pending.length > 0; attempt++) {
      const out = await this.options.client
        .send(new PutEventsCommand({ Entries: pending }))
        .catch((err: unknown) => {
          // Say which step failed; the SDK error (ResourceNotFoundException, …) becomes the cause.
          throw new MailIngestError(ErrorCode.QUEUE_FAILED, "EventBridge PutEvents failed", {
            cause: err,
          });
        });
      if (!out.FailedEntryCount) return;
      const failed = pending.filter((_, i) => out.Entries?.[i]?.ErrorCode !== undefined);
      if (attempt >= MAX_ATTEMPTS) {
        const codes = [...new Set(out.Entries?.map((e) => e.ErrorCode).filter(Boolean))].join(", ");
        throw new MailIngestError(
          ErrorCode.QUEUE_FAILED,
          `EventBridge rejected ${failed.length} event(s) after ${attempt} attempts: ${codes}`,
        );
      }
      pending = failed;
    }
  }
}

/**
 * An entry's size as EventBridge counts it: the UTF-8 bytes of Source, DetailType and Detail
 * (Time and Resources, which we never set, would add to it).
 */
function entrySize(event: PutEventsRequestEntry): number {
  return (
    Buffer.byteLength(event.Source ?? "") +
    Buffer.byteLength(event.DetailType ?? "") +
    Buffer.byteLength(event.Detail ?? "")
  );
}
